-- Systems that call the API (FHIR: PIXm, PDQm and later the whole record) with OAuth 2.0 client
-- credentials, authenticating with a JWT signed by a key whose public half is registered here
-- (SMART Backend Services). Tokens are stored hashed; each assertion's jti is kept until it
-- expires so that it cannot be replayed.
CREATE TABLE api_clients (
    id              BIGSERIAL PRIMARY KEY,
    client_id       TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    facility_id     BIGINT NOT NULL REFERENCES facilities (id),
    jwks            TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    cross_facility  BOOLEAN NOT NULL,
    active          BOOLEAN NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    token_hash      TEXT PRIMARY KEY,
    client_id       BIGINT NOT NULL REFERENCES api_clients (id),
    scopes          TEXT NOT NULL,
    issued_at       BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX api_tokens_expiry ON api_tokens (expires_at);

CREATE TABLE api_assertions (
    client_id       BIGINT NOT NULL REFERENCES api_clients (id),
    jti             TEXT NOT NULL,
    expires_at      BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
