-- Events the ledger's rules refused (an inspection of more units than quality control holds):
-- they are claimed in processed_events like any other, have no effect on stock, and go to the
-- dead-letter topic. Kept here so that a redelivery, after a crash between the commit and the
-- dead letter, is dead-lettered again instead of passing as a silent duplicate. Append-only, like
-- processed_events.
CREATE TABLE ledger_refusals (
    event_id uuid PRIMARY KEY REFERENCES processed_events (event_id),
    reason   text NOT NULL,
    detail   text NOT NULL
);

GRANT SELECT, INSERT ON ledger_refusals TO stockledger_ledger;
