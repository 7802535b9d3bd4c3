-- In-place editing of HM-Box files by an office server (WOPI): access tokens handed to the
-- editor for one file and one user (stored as digests), and the editor's locks.
CREATE TABLE wopi_tokens (
    digest      TEXT PRIMARY KEY,
    file_id     INTEGER NOT NULL REFERENCES files (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    can_write   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX wopi_tokens_file ON wopi_tokens (file_id);

CREATE TABLE wopi_locks (
    file_id     INTEGER PRIMARY KEY REFERENCES files (id),
    lock_id     TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);
