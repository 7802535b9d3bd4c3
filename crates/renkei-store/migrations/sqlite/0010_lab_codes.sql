-- The operator's mapping of facilities' local lab codes to JLAC10, so that their results line up
-- with other facilities' in the viewer's lab table; indexes for the viewer.
CREATE TABLE lab_code_maps (
    facility_id   INTEGER NOT NULL REFERENCES facilities (id),
    local_code    TEXT NOT NULL,
    jlac10        TEXT NOT NULL,
    updated_at    INTEGER NOT NULL,
    updated_by    TEXT NOT NULL,
    PRIMARY KEY (facility_id, local_code)
);
CREATE INDEX clinical_items_category ON clinical_items (category, code_system);
-- The viewer's calendar groups a patient's items by category, event and day: with the code in
-- the patient index, that grouping reads the index alone, not the rows (with their JSON).
DROP INDEX clinical_items_patient;
CREATE INDEX clinical_items_patient ON clinical_items (facility_id, patient_local_id, active, category, effective_date, code);
