-- The operator's mapping of facilities' local lab codes to JLAC10, so that their results line up
-- with other facilities' in the viewer's lab table.
CREATE TABLE lab_code_maps (
    facility_id   BIGINT NOT NULL REFERENCES facilities (id),
    local_code    TEXT NOT NULL,
    jlac10        TEXT NOT NULL,
    updated_at    BIGINT NOT NULL,
    updated_by    TEXT NOT NULL,
    PRIMARY KEY (facility_id, local_code)
);
CREATE INDEX clinical_items_category ON clinical_items (category, code_system);
