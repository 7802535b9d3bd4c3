-- 名寄せ review: a facility's patient ID whose incoming demographics (from an SS-MIX2 file or an
-- HL7 message, stored all the same) disagree with the person it is linked to. Open until the
-- operator or the facility confirms the link (same person: the disagreement with this
-- signature is not raised again) or closes it. `fields` names the fields (氏名, カナ氏名,
-- 生年月日, 性別), never their values; `signature` is a digest of the facility's values.
CREATE TABLE link_reviews (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    facility_id      BIGINT NOT NULL,
    patient_local_id TEXT NOT NULL,
    person_id        BIGINT NOT NULL,
    fields           TEXT NOT NULL,
    signature        TEXT NOT NULL,
    opened_at        BIGINT NOT NULL,
    resolved_at      BIGINT,
    resolved_by      TEXT NOT NULL DEFAULT '',
    resolution       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX link_reviews_patient ON link_reviews (facility_id, patient_local_id);
CREATE INDEX link_reviews_person ON link_reviews (person_id);
