-- Files that come with a document (the extended storage's content folders): kept byte for byte.
CREATE TABLE clinical_attachments (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id    INTEGER NOT NULL REFERENCES clinical_messages (id),
    name          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    bytes         BLOB NOT NULL
);
CREATE INDEX clinical_attachments_message ON clinical_attachments (message_id);
