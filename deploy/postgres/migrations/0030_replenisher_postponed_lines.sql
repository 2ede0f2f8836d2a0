-- Order lines larger than their item's order-up-to level, held out of the replenisher's
-- decisions until the event-time day they were placed on is over: an outsized line is often
-- taken back within minutes, and the units bought for it could not be sold to anyone else.
-- A line cancelled before then leaves no request behind; one still standing is decided on at
-- the first ledger entry of a later day (the closed loop decides once a day, at its close).
CREATE TABLE replenisher_postponed (
    sku text NOT NULL,
    location text NOT NULL,
    reference text NOT NULL,  -- the order of the line
    day date NOT NULL,  -- the event-time day the line was placed on
    units integer NOT NULL CHECK (units > 0),
    PRIMARY KEY (sku, location, reference)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON replenisher_postponed TO stockledger_replenisher;
