-- Consent and access control. A disclosing facility's own rule (policy); each patient's consents
-- to a facility's disclosure (targets, categories, data period, withdrawal) with the signed
-- paper's scan; referrals (for "facilities the patient was referred to"); opt-outs from a
-- facility-level consent; the profession rights matrix; card-less grants (the card was read at
-- a facility: one year from the last read); emergency (break-the-glass) grants; notifications to
-- facilities. Rows are never deleted: a withdrawal is a timestamp.
CREATE TABLE disclosure_policies (
    facility_id   BIGINT PRIMARY KEY REFERENCES facilities (id),
    mode          TEXT NOT NULL,
    categories    TEXT NOT NULL,
    updated_at    BIGINT NOT NULL,
    updated_by    TEXT NOT NULL
);

CREATE TABLE consents (
    id            BIGSERIAL PRIMARY KEY,
    person_id     BIGINT NOT NULL REFERENCES persons (id),
    facility_id   BIGINT NOT NULL REFERENCES facilities (id),
    target_mode   TEXT NOT NULL,
    categories    TEXT NOT NULL,
    data_from     TEXT,
    data_to       TEXT,
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    withdrawn_at  BIGINT,
    withdrawn_by  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX consents_person ON consents (person_id);

CREATE TABLE consent_targets (
    consent_id    BIGINT NOT NULL REFERENCES consents (id),
    facility_id   BIGINT NOT NULL REFERENCES facilities (id),
    PRIMARY KEY (consent_id, facility_id)
);

CREATE TABLE consent_scans (
    id            BIGSERIAL PRIMARY KEY,
    consent_id    BIGINT NOT NULL REFERENCES consents (id),
    file_name     TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    bytes         BYTEA NOT NULL,
    uploaded_at   BIGINT NOT NULL,
    uploaded_by   TEXT NOT NULL
);
CREATE INDEX consent_scans_consent ON consent_scans (consent_id);

CREATE TABLE referrals (
    id            BIGSERIAL PRIMARY KEY,
    person_id     BIGINT NOT NULL REFERENCES persons (id),
    from_facility BIGINT NOT NULL REFERENCES facilities (id),
    to_facility   BIGINT NOT NULL REFERENCES facilities (id),
    referred_at   BIGINT NOT NULL,
    recorded_by   TEXT NOT NULL
);
CREATE INDEX referrals_person ON referrals (person_id);

CREATE TABLE consent_opt_outs (
    person_id     BIGINT NOT NULL REFERENCES persons (id),
    facility_id   BIGINT NOT NULL REFERENCES facilities (id),
    opted_out_at  BIGINT NOT NULL,
    recorded_by   TEXT NOT NULL,
    PRIMARY KEY (person_id, facility_id)
);

CREATE TABLE profession_rights (
    profession    TEXT PRIMARY KEY,
    categories    TEXT NOT NULL,
    updated_at    BIGINT NOT NULL,
    updated_by    TEXT NOT NULL
);

CREATE TABLE cardless_grants (
    facility_id     BIGINT NOT NULL REFERENCES facilities (id),
    person_id       BIGINT NOT NULL REFERENCES persons (id),
    -- 0: an HM card (every facility's items); else the hospital of a disclosure card.
    scope_facility  BIGINT NOT NULL,
    last_access_at  BIGINT NOT NULL,
    hidden          BOOLEAN NOT NULL,
    PRIMARY KEY (facility_id, person_id, scope_facility)
);
CREATE INDEX cardless_grants_person ON cardless_grants (person_id);

CREATE TABLE emergency_grants (
    id            BIGSERIAL PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id),
    facility_id   BIGINT NOT NULL REFERENCES facilities (id),
    person_id     BIGINT NOT NULL REFERENCES persons (id),
    reason        TEXT NOT NULL,
    granted_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX emergency_grants_person ON emergency_grants (person_id);

CREATE TABLE notifications (
    id            BIGSERIAL PRIMARY KEY,
    facility_id   BIGINT NOT NULL REFERENCES facilities (id),
    kind          TEXT NOT NULL,
    message       TEXT NOT NULL,
    person_id     BIGINT REFERENCES persons (id),
    created_at    BIGINT NOT NULL,
    read_at       BIGINT
);
CREATE INDEX notifications_facility ON notifications (facility_id, created_at);

-- Who read a patient's record: audit events by target.
CREATE INDEX audit_events_target ON audit_events (target);
