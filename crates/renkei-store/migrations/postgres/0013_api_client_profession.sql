-- The profession an API client reads the record as (its consent and profession rights): a
-- hospital's EHR reading for its doctors is "doctor"; a system that only matches patients stays
-- "clerk", which sees no clinical data by default.
ALTER TABLE api_clients ADD COLUMN profession TEXT NOT NULL DEFAULT 'clerk';
