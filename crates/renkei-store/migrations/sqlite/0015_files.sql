-- File consultation (ファイル開示相談) and HM-Box: resumable uploads in progress, stored files (the
-- bytes live in the object store under object_key), HM-Box shares, and consultation cases with
-- their recipients, message thread and double-reading findings.
CREATE TABLE consultation_cases (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    facility_id     INTEGER NOT NULL REFERENCES facilities (id),
    user_id         INTEGER NOT NULL REFERENCES users (id),
    title           TEXT NOT NULL,
    body            TEXT NOT NULL,
    person_id       INTEGER REFERENCES persons (id),
    allow_download  INTEGER NOT NULL,
    double_reading  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX consultation_cases_user ON consultation_cases (user_id);

-- A recipient is a whole facility (every user there) or one user.
CREATE TABLE case_recipients (
    case_id      INTEGER NOT NULL REFERENCES consultation_cases (id),
    facility_id  INTEGER REFERENCES facilities (id),
    user_id      INTEGER REFERENCES users (id)
);
CREATE INDEX case_recipients_case ON case_recipients (case_id);
CREATE INDEX case_recipients_facility ON case_recipients (facility_id);
CREATE INDEX case_recipients_user ON case_recipients (user_id);

CREATE TABLE case_messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id     INTEGER NOT NULL REFERENCES consultation_cases (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    body        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX case_messages_case ON case_messages (case_id);

CREATE TABLE case_readings (
    case_id       INTEGER NOT NULL REFERENCES consultation_cases (id),
    user_id       INTEGER NOT NULL REFERENCES users (id),
    findings      TEXT NOT NULL,
    submitted_at  INTEGER NOT NULL,
    PRIMARY KEY (case_id, user_id)
);

CREATE TABLE uploads (
    id            TEXT PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    case_id       INTEGER REFERENCES consultation_cases (id),
    file_name     TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    length        INTEGER NOT NULL,
    received      INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX uploads_user ON uploads (user_id);
CREATE INDEX uploads_case ON uploads (case_id);
CREATE INDEX uploads_expiry ON uploads (expires_at);

CREATE TABLE files (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    object_key    TEXT NOT NULL UNIQUE,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    case_id       INTEGER REFERENCES consultation_cases (id),
    file_name     TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    version       INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX files_user ON files (user_id);
CREATE INDEX files_case ON files (case_id);
CREATE INDEX files_expiry ON files (expires_at);

CREATE TABLE file_shares (
    file_id     INTEGER NOT NULL REFERENCES files (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (file_id, user_id)
);
CREATE INDEX file_shares_user ON file_shares (user_id);
