-- The projector's read model: the level of every item, as applied from stock.ledger.v1.
--
-- position is the last ledger position applied to the row, in the same transaction as its
-- effect: an entry at or below it (a redelivery, or a republish by the relay) changes nothing.

CREATE TABLE stock_levels (
    sku             text        NOT NULL,
    location        text        NOT NULL,
    on_hand         bigint      NOT NULL DEFAULT 0,
    committed       bigint      NOT NULL DEFAULT 0,
    damaged         bigint      NOT NULL DEFAULT 0,
    quality_control bigint      NOT NULL DEFAULT 0,
    incoming        bigint      NOT NULL DEFAULT 0,
    available       bigint      GENERATED ALWAYS AS
                                (on_hand - committed - damaged - quality_control) STORED,
    position        bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, location)
);
CREATE INDEX stock_levels_by_location ON stock_levels (location, sku);
CREATE INDEX stock_levels_oversold ON stock_levels (location, sku) WHERE available < 0;

-- The reorder point in force per item, written by the replenisher, read for the
-- below_reorder_point filter of the API.
CREATE TABLE reorder_points (
    sku           text    NOT NULL,
    location      text    NOT NULL,
    reorder_point numeric NOT NULL,
    PRIMARY KEY (sku, location)
);

-- Stock as of an event time is summed from the item's entries up to that time: an index-only
-- range scan over one item, never a scan of the ledger.
DROP INDEX ledger_entries_item_occurred;
CREATE INDEX ledger_entries_item_occurred ON ledger_entries (sku, location, occurred_at)
    INCLUDE (on_hand, committed, damaged, quality_control, incoming);
