-- The append-only ledger and the ledger service's own state.
--
-- ledger_entries is the system of record and the outbox of stock.ledger.v1: rows are only ever
-- inserted (a trigger refuses UPDATE, DELETE and TRUNCATE). Running balances are kept apart, in
-- ledger_balances, so a late event never rewrites a ledger row.

CREATE TABLE ledger_entries (
    position            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id            uuid        NOT NULL, -- uuid5(source_event_id, line_no): unique with them
    source_event_id     uuid        NOT NULL,
    line_no             integer     NOT NULL,
    sku                 text        NOT NULL,
    location            text        NOT NULL,
    kind                text        NOT NULL,
    on_hand             bigint      NOT NULL DEFAULT 0,
    committed           bigint      NOT NULL DEFAULT 0,
    damaged             bigint      NOT NULL DEFAULT 0,
    quality_control     bigint      NOT NULL DEFAULT 0,
    incoming            bigint      NOT NULL DEFAULT 0,
    occurred_at         timestamptz NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    source_type         text        NOT NULL,
    reference           text,
    detail              jsonb,
    CONSTRAINT ledger_entries_source_line UNIQUE (source_event_id, line_no)
);

-- The audit trail of one item by position, and stock as of an event time.
CREATE INDEX ledger_entries_item_position ON ledger_entries (sku, location, position);
CREATE INDEX ledger_entries_item_occurred ON ledger_entries (sku, location, occurred_at, position);

CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER ledger_entries_no_update_delete
    BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
CREATE TRIGGER ledger_entries_no_truncate
    BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only();

-- Every input event accepted once: the idempotency key (decision 2). An event with no effect on
-- stock is still recorded here, so its redelivery stays a no-op.
CREATE TABLE processed_events (
    event_id     uuid        PRIMARY KEY,
    event_type   text        NOT NULL,
    topic        text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The ledger's running balance per item. Batches lock items, orders and references with
-- transaction-scoped advisory locks taken in sorted order (see services/ledger/adapters/postgres.py).
CREATE TABLE ledger_balances (
    sku             text   NOT NULL,
    location        text   NOT NULL,
    on_hand         bigint NOT NULL DEFAULT 0,
    committed       bigint NOT NULL DEFAULT 0,
    damaged         bigint NOT NULL DEFAULT 0,
    quality_control bigint NOT NULL DEFAULT 0,
    incoming        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (sku, location)
);

-- Order-line state (placed, shipped, cancelled per line), one row per order.
CREATE TABLE ledger_orders (
    order_id text  PRIMARY KEY,
    state    jsonb NOT NULL
);

-- Expected and received units per inbound reference (replenishment request or transfer).
CREATE TABLE ledger_inbound (
    reference text  PRIMARY KEY,
    state     jsonb NOT NULL
);

-- How far each relay has published the ledger.
CREATE TABLE relay_positions (
    relay    text   PRIMARY KEY,
    position bigint NOT NULL
);
