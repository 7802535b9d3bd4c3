-- Foundation: provider directory, users and their second factor, sessions, notices, audit trail,
-- and the national medical-institution code master. Times are microseconds since the Unix epoch (UTC).

CREATE TABLE facilities (
    id                      BIGSERIAL PRIMARY KEY,
    code                    TEXT UNIQUE,
    facility_type           TEXT NOT NULL,
    name                    TEXT NOT NULL,
    name_kana               TEXT NOT NULL DEFAULT '',
    postal_code             TEXT NOT NULL DEFAULT '',
    address                 TEXT NOT NULL DEFAULT '',
    phone                   TEXT NOT NULL DEFAULT '',
    discloses               BOOLEAN NOT NULL DEFAULT FALSE,
    issues_hm_card          BOOLEAN NOT NULL DEFAULT FALSE,
    issues_disclosure_card  BOOLEAN NOT NULL DEFAULT FALSE,
    max_accounts            BIGINT NOT NULL DEFAULT 20,
    active                  BOOLEAN NOT NULL DEFAULT TRUE,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);
CREATE INDEX facilities_type ON facilities (facility_type);

CREATE TABLE users (
    id                   BIGSERIAL PRIMARY KEY,
    facility_id          BIGINT NOT NULL REFERENCES facilities (id),
    login_id             TEXT NOT NULL UNIQUE,
    name                 TEXT NOT NULL,
    name_kana            TEXT NOT NULL DEFAULT '',
    profession           TEXT NOT NULL,
    role                 TEXT NOT NULL,
    password_hash        TEXT NOT NULL,
    must_change_password BOOLEAN NOT NULL DEFAULT TRUE,
    totp_secret          TEXT,
    totp_enabled         BOOLEAN NOT NULL DEFAULT FALSE,
    totp_last_step       BIGINT NOT NULL DEFAULT 0,
    failed_logins        BIGINT NOT NULL DEFAULT 0,
    locked_until         BIGINT,
    emergency            BOOLEAN NOT NULL DEFAULT FALSE,
    active               BOOLEAN NOT NULL DEFAULT TRUE,
    last_login_at        BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX users_facility ON users (facility_id);

CREATE TABLE recovery_codes (
    id         BIGSERIAL PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    code_hash  TEXT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id),
    stage         TEXT NOT NULL,
    csrf_token    TEXT NOT NULL,
    client        TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE notices (
    id              BIGSERIAL PRIMARY KEY,
    title           TEXT NOT NULL,
    body            TEXT NOT NULL,
    important       BOOLEAN NOT NULL DEFAULT FALSE,
    published_from  BIGINT NOT NULL,
    published_until BIGINT,
    created_by      BIGINT REFERENCES users (id),
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE audit_events (
    seq          BIGINT PRIMARY KEY,
    at           BIGINT NOT NULL,
    user_id      BIGINT,
    login_id     TEXT NOT NULL,
    facility_id  BIGINT,
    profession   TEXT,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    detail       TEXT NOT NULL,
    client       TEXT NOT NULL,
    emergency    BOOLEAN NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_user ON audit_events (user_id);

CREATE TABLE audit_head (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The audit trail is append-only: the database itself refuses edits and deletions.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TABLE institution_master (
    code            TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    postal_code     TEXT NOT NULL,
    address         TEXT NOT NULL,
    check_digit_ok  BOOLEAN NOT NULL,
    updated_at      BIGINT NOT NULL
);
