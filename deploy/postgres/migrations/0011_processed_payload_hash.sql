-- What each recorded event said, hashed (services/ledger/adapters/store.py, payload_hash): a
-- later delivery of the same event_id with the same content stays a silent duplicate, and one
-- with other content is refused to the dead-letter topic as a conflict instead of being taken
-- for a duplicate. Events recorded before this column have no hash and are taken as duplicates.
-- The ledger's grants on processed_events (SELECT, INSERT) cover the new column.
ALTER TABLE processed_events ADD COLUMN payload_hash bytea;
