-- Person merges (MPI): a merged person points at the survivor; unmerging clears it. Link history
-- keeps what moved.
ALTER TABLE persons ADD COLUMN merged_into INTEGER;
ALTER TABLE persons ADD COLUMN merged_at INTEGER;
