-- The ledger's working state per order and per inbound reference is written and read back whole
-- by the ledger alone, never queried inside: kept as json (checked on input, stored as written)
-- rather than jsonb, it is not converted to jsonb's binary form on every write and back to text
-- on every read. The ledger's own rows (ledger_entries) are unchanged.
ALTER TABLE ledger_orders ALTER COLUMN state TYPE json USING state::json;
ALTER TABLE ledger_inbound ALTER COLUMN state TYPE json USING state::json;
