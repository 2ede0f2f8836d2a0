-- Units written off at an item beyond what was damaged there: their damage scan has not arrived
-- yet (events arrive out of order), and when it does it nets against them instead of leaving the
-- damaged state stuck above zero. Part of the item's running state, next to its balance; the
-- ledger's existing grants on ledger_balances cover the new column.
ALTER TABLE ledger_balances ADD COLUMN written_off bigint NOT NULL DEFAULT 0;
