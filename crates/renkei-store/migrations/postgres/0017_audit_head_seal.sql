-- The head record's seal: an HMAC under the audit key over (seq, hash), written with every
-- head update, so that the head cannot be pointed at an older event without the key. Empty
-- until the first open with the key seals the head as it stands (see Store::seal_audit_head).
ALTER TABLE audit_head ADD COLUMN mac TEXT NOT NULL DEFAULT '';
