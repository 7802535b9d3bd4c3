-- Parts of a medication-notebook QR code split over several symbols (JAHIS record 911), held
-- until every part of the code has been read, then merged and stored as one notebook and
-- deleted. Never shown, never stored as clinical records part by part. `person_id` is the card
-- the part was read with (NULL for a file that arrived without its card); `received_at` is
-- when this part was read (unix microseconds).
CREATE TABLE jahis_split_parts (
    facility_id BIGINT NOT NULL,
    data_id TEXT NOT NULL,
    part BIGINT NOT NULL,
    total BIGINT NOT NULL,
    person_id BIGINT,
    text TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (facility_id, data_id, part)
);
CREATE INDEX jahis_split_parts_received ON jahis_split_parts (received_at);
