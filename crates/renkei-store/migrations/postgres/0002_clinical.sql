-- The clinical repository: every received message with its original bytes, the items mapped
-- from it, and each facility's view of its patients. A patient is (facility, local patient ID)
-- until the identity layer links them to a regional ID.

CREATE TABLE clinical_messages (
    id                BIGSERIAL PRIMARY KEY,
    facility_id       BIGINT NOT NULL REFERENCES facilities (id),
    source            TEXT NOT NULL,
    source_key        TEXT NOT NULL,
    order_key         TEXT NOT NULL,
    data_kind         TEXT NOT NULL,
    condition         TEXT NOT NULL,
    occurred_at       TEXT NOT NULL,
    content_hash      TEXT NOT NULL,
    raw               BYTEA NOT NULL,
    message_type      TEXT NOT NULL,
    control_id        TEXT NOT NULL,
    patient_local_id  TEXT NOT NULL,
    status            TEXT NOT NULL,
    warnings          TEXT NOT NULL,
    received_at       BIGINT NOT NULL,
    UNIQUE (facility_id, source, source_key)
);
CREATE INDEX clinical_messages_order ON clinical_messages (facility_id, order_key);
CREATE INDEX clinical_messages_patient ON clinical_messages (facility_id, patient_local_id);

CREATE TABLE clinical_items (
    id                BIGSERIAL PRIMARY KEY,
    message_id        BIGINT NOT NULL REFERENCES clinical_messages (id),
    facility_id       BIGINT NOT NULL,
    patient_local_id  TEXT NOT NULL,
    category          TEXT NOT NULL,
    code              TEXT NOT NULL,
    code_system       TEXT NOT NULL,
    display           TEXT NOT NULL,
    effective         TEXT,
    effective_date    TEXT,
    end_at            TEXT,
    status            TEXT NOT NULL,
    detail            TEXT NOT NULL,
    active            BOOLEAN NOT NULL
);
CREATE INDEX clinical_items_message ON clinical_items (message_id);
CREATE INDEX clinical_items_patient ON clinical_items (facility_id, patient_local_id, active, category, effective_date);

CREATE TABLE clinical_patients (
    facility_id       BIGINT NOT NULL REFERENCES facilities (id),
    patient_local_id  TEXT NOT NULL,
    kanji_name        TEXT NOT NULL,
    kana_name         TEXT NOT NULL,
    birth_date        TEXT,
    sex               TEXT NOT NULL,
    postal_code       TEXT NOT NULL,
    address           TEXT NOT NULL,
    phone             TEXT NOT NULL,
    occurred_at       TEXT NOT NULL,
    message_id        BIGINT NOT NULL,
    PRIMARY KEY (facility_id, patient_local_id)
);
