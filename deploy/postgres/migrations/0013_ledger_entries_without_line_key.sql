-- An entry's (source_event_id, line_no) was kept unique by an index of its own, which the ledger
-- never reads. An event's entries are appended in the transaction that claims its event_id in
-- processed_events (services/ledger/adapters/postgres.py), whose primary key admits each event
-- once: a redelivery, on any channel or from a concurrent instance, claims nothing and appends
-- nothing, and an event's entries are numbered 0, 1, 2... as they are made. The index only
-- repeated that check, at a random place in a b-tree for every entry: a fifth to a quarter of
-- what the ledger's backend spent on its entries' COPY (2.2 to 3.0 of 11.7 to 12.7 µs of CPU an
-- entry, copying 75,000 ledger rows again in transactions of 3,600). The item indexes stay.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_source_line;
