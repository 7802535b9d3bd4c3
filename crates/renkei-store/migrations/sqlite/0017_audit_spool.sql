-- How far each audit spool file is in the chain (SQLite files only: a read's audit event is
-- written to its process's spool file before the read is answered and committed into the
-- chain by the audit writer's next group commit; see renkei-store/src/direct.rs). `done` is the
-- byte offset after the last record committed; it is updated in the same transaction as the
-- events, so a replay after a crash starts exactly where the chain stops.
CREATE TABLE audit_spool (
    name  TEXT PRIMARY KEY,
    done  INTEGER NOT NULL
);
