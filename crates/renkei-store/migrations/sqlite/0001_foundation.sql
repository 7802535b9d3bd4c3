-- Foundation: provider directory, users and their second factor, sessions, notices, audit trail,
-- and the national medical-institution code master. Times are microseconds since the Unix epoch (UTC).

CREATE TABLE facilities (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    code                    TEXT UNIQUE,
    facility_type           TEXT NOT NULL,
    name                    TEXT NOT NULL,
    name_kana               TEXT NOT NULL DEFAULT '',
    postal_code             TEXT NOT NULL DEFAULT '',
    address                 TEXT NOT NULL DEFAULT '',
    phone                   TEXT NOT NULL DEFAULT '',
    discloses               INTEGER NOT NULL DEFAULT 0,
    issues_hm_card          INTEGER NOT NULL DEFAULT 0,
    issues_disclosure_card  INTEGER NOT NULL DEFAULT 0,
    max_accounts            INTEGER NOT NULL DEFAULT 20,
    active                  INTEGER NOT NULL DEFAULT 1,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL
);
CREATE INDEX facilities_type ON facilities (facility_type);

CREATE TABLE users (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    facility_id          INTEGER NOT NULL REFERENCES facilities (id),
    login_id             TEXT NOT NULL UNIQUE,
    name                 TEXT NOT NULL,
    name_kana            TEXT NOT NULL DEFAULT '',
    profession           TEXT NOT NULL,
    role                 TEXT NOT NULL,
    password_hash        TEXT NOT NULL,
    must_change_password INTEGER NOT NULL DEFAULT 1,
    totp_secret          TEXT,
    totp_enabled         INTEGER NOT NULL DEFAULT 0,
    totp_last_step       INTEGER NOT NULL DEFAULT 0,
    failed_logins        INTEGER NOT NULL DEFAULT 0,
    locked_until         INTEGER,
    emergency            INTEGER NOT NULL DEFAULT 0,
    active               INTEGER NOT NULL DEFAULT 1,
    last_login_at        INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX users_facility ON users (facility_id);

CREATE TABLE recovery_codes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    code_hash  TEXT NOT NULL,
    used_at    INTEGER
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    stage         TEXT NOT NULL,
    csrf_token    TEXT NOT NULL,
    client        TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE notices (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    title           TEXT NOT NULL,
    body            TEXT NOT NULL,
    important       INTEGER NOT NULL DEFAULT 0,
    published_from  INTEGER NOT NULL,
    published_until INTEGER,
    created_by      INTEGER REFERENCES users (id),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE audit_events (
    seq          INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    user_id      INTEGER,
    login_id     TEXT NOT NULL,
    facility_id  INTEGER,
    profession   TEXT,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    detail       TEXT NOT NULL,
    client       TEXT NOT NULL,
    emergency    INTEGER NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_user ON audit_events (user_id);

CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The audit trail is append-only: the database itself refuses edits and deletions.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;

CREATE TABLE institution_master (
    code            TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    postal_code     TEXT NOT NULL,
    address         TEXT NOT NULL,
    check_digit_ok  INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
