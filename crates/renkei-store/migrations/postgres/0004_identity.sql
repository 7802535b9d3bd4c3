-- Regional identity: persons with their common ID, the cards that carry it, and the links from
-- each facility's own patient ID to the person (名寄せ). Links are never deleted: unlinking
-- closes a link and keeps it as history.

CREATE TABLE common_id_serials (
    prefecture   BIGINT PRIMARY KEY,
    next_serial  BIGINT NOT NULL
);

CREATE TABLE persons (
    id                BIGSERIAL PRIMARY KEY,
    common_id         TEXT NOT NULL UNIQUE,
    kanji_name        TEXT NOT NULL,
    kana_name         TEXT NOT NULL,
    birth_date        TEXT,
    sex               TEXT NOT NULL,
    issuer_facility   BIGINT NOT NULL REFERENCES facilities (id),
    created_at        BIGINT NOT NULL
);

CREATE TABLE cards (
    id                BIGSERIAL PRIMARY KEY,
    person_id         BIGINT NOT NULL REFERENCES persons (id),
    kind              TEXT NOT NULL,
    issuer_facility   BIGINT NOT NULL REFERENCES facilities (id),
    status            TEXT NOT NULL,
    issued_at         BIGINT NOT NULL,
    ended_at          BIGINT,
    end_reason        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX cards_person ON cards (person_id);

CREATE TABLE person_links (
    id                BIGSERIAL PRIMARY KEY,
    person_id         BIGINT NOT NULL REFERENCES persons (id),
    facility_id       BIGINT NOT NULL REFERENCES facilities (id),
    patient_local_id  TEXT NOT NULL,
    source            TEXT NOT NULL,
    linked_at         BIGINT NOT NULL,
    linked_by         TEXT NOT NULL,
    unlinked_at       BIGINT,
    active            BOOLEAN NOT NULL
);
CREATE INDEX person_links_person ON person_links (person_id);
CREATE UNIQUE INDEX person_links_active ON person_links (facility_id, patient_local_id) WHERE active;
