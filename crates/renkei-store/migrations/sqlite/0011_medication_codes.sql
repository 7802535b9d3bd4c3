-- One-time codes (ワンタイムコード) with which an external medication-notebook app reads a
-- patient's dispensing history once. Stored as digests; used or expired codes stay as history.
CREATE TABLE medication_codes (
    code_hash     TEXT PRIMARY KEY,
    person_id     INTEGER NOT NULL REFERENCES persons (id),
    facility_id   INTEGER REFERENCES facilities (id),
    issued_by     TEXT NOT NULL,
    issued_at     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER,
    used_by       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX medication_codes_person ON medication_codes (person_id);
