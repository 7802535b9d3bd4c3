-- Medication-notebook apps registered by the operator, their subscriptions to patients (linked
-- by the HM card), and the outbox of signed webhook deliveries (retried with back-off).
CREATE TABLE medication_apps (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    url           TEXT NOT NULL,
    secret        TEXT NOT NULL,
    active        INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE medication_subscriptions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id        INTEGER NOT NULL REFERENCES medication_apps (id),
    person_id     INTEGER NOT NULL REFERENCES persons (id),
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    active        INTEGER NOT NULL,
    UNIQUE (app_id, person_id)
);
CREATE INDEX medication_subscriptions_person ON medication_subscriptions (person_id);

CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id  INTEGER NOT NULL REFERENCES medication_subscriptions (id),
    payload          TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    delivered_at     INTEGER,
    failed_at        INTEGER,
    last_error       TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at);
