-- Files that come with a document (the extended storage's content folders): kept byte for byte.
CREATE TABLE clinical_attachments (
    id            BIGSERIAL PRIMARY KEY,
    message_id    BIGINT NOT NULL REFERENCES clinical_messages (id),
    name          TEXT NOT NULL,
    size          BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    bytes         BYTEA NOT NULL
);
CREATE INDEX clinical_attachments_message ON clinical_attachments (message_id);
