-- MPI search at scale: a person's phone, postal code and address, and the normalised keys that
-- searches and candidate lookups go through, each indexed. The keys are computed by the
-- application (renkei-identity's normalisation); `keys_version` says with which version, so a
-- change of normalisation re-keys the rows that need it.
ALTER TABLE persons ADD COLUMN phone TEXT NOT NULL DEFAULT '';
ALTER TABLE persons ADD COLUMN postal_code TEXT NOT NULL DEFAULT '';
ALTER TABLE persons ADD COLUMN address TEXT NOT NULL DEFAULT '';
ALTER TABLE persons ADD COLUMN kana_key TEXT NOT NULL DEFAULT '';
ALTER TABLE persons ADD COLUMN kanji_key TEXT NOT NULL DEFAULT '';
ALTER TABLE persons ADD COLUMN phone_key TEXT NOT NULL DEFAULT '';
ALTER TABLE persons ADD COLUMN address_key TEXT NOT NULL DEFAULT '';
ALTER TABLE persons ADD COLUMN keys_version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX persons_birth ON persons (birth_date);
CREATE INDEX persons_kana ON persons (kana_key, id);
CREATE INDEX persons_kanji ON persons (kanji_key, id);
CREATE INDEX persons_phone ON persons (phone_key);
CREATE INDEX persons_address ON persons (address_key, id);
CREATE INDEX persons_keys_version ON persons (keys_version);
