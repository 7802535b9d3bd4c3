-- Medication-notebook apps registered by the operator, their subscriptions to patients (linked
-- by the HM card), and the outbox of signed webhook deliveries (retried with back-off).
CREATE TABLE medication_apps (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL,
    url           TEXT NOT NULL,
    secret        TEXT NOT NULL,
    active        BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE medication_subscriptions (
    id            BIGSERIAL PRIMARY KEY,
    app_id        BIGINT NOT NULL REFERENCES medication_apps (id),
    person_id     BIGINT NOT NULL REFERENCES persons (id),
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    active        BOOLEAN NOT NULL,
    UNIQUE (app_id, person_id)
);
CREATE INDEX medication_subscriptions_person ON medication_subscriptions (person_id);

CREATE TABLE webhook_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    subscription_id  BIGINT NOT NULL REFERENCES medication_subscriptions (id),
    payload          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    delivered_at     BIGINT,
    failed_at        BIGINT,
    last_error       TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at);
