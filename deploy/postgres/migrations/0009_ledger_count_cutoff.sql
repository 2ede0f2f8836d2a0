-- When an item's latest count occurred: its count cut-off. A count saw every movement that
-- occurred by then, so a movement reported later with an earlier time is recorded and taken
-- back by a compensating entry dated at the count (see services/ledger/domain/rules.py). Part
-- of the item's running state, next to its balance; the ledger's grants on ledger_balances
-- cover the new column.
ALTER TABLE ledger_balances ADD COLUMN counted_at timestamptz;
