-- A replenishment request cancelled before any confirmation names only its request_id. The
-- ledger records the closure against the request's item, so that the replenisher, which follows
-- its requests through the ledger, closes it; for a request the replenisher raised, the ledger
-- reads that item here. It reads those three columns and nothing else of the replenisher's.
GRANT SELECT (request_id, sku, location) ON replenishment_requests TO stockledger_ledger;
