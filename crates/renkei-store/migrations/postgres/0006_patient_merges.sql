-- ADT^A40 merges of a facility's own patient IDs: the prior ID's records now count as the surviving
-- ID's; each merge is kept.
CREATE TABLE patient_merges (
    id            BIGSERIAL PRIMARY KEY,
    facility_id   BIGINT NOT NULL REFERENCES facilities (id),
    prior_id      TEXT NOT NULL,
    surviving_id  TEXT NOT NULL,
    control_id    TEXT NOT NULL,
    merged_at     BIGINT NOT NULL
);
CREATE INDEX patient_merges_facility ON patient_merges (facility_id, prior_id);
