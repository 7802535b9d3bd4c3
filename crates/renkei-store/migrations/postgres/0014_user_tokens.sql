-- Apps that act for a logged-in portal user (SMART App Launch, authorization code with PKCE):
-- the redirect URIs an app may receive codes at, the codes (hashed, single use, short-lived),
-- and the user a token acts for.
ALTER TABLE api_clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN user_id BIGINT REFERENCES users (id);
CREATE TABLE oauth_codes (
    code_hash       TEXT PRIMARY KEY,
    client_id       BIGINT NOT NULL REFERENCES api_clients (id),
    user_id         BIGINT NOT NULL REFERENCES users (id),
    scopes          TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    challenge       TEXT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used            BOOLEAN NOT NULL DEFAULT FALSE
);
