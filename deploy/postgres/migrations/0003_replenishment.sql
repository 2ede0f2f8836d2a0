-- The replenisher: its view of each item, demand history, forecasts, policies and requests.

-- Levels as the replenisher has applied them from stock.ledger.v1; position makes redelivered
-- entries no-ops, requests_made numbers the item's requests (their ids derive from it).
CREATE TABLE replenisher_items (
    sku             text   NOT NULL,
    location        text   NOT NULL,
    on_hand         bigint NOT NULL DEFAULT 0,
    committed       bigint NOT NULL DEFAULT 0,
    damaged         bigint NOT NULL DEFAULT 0,
    quality_control bigint NOT NULL DEFAULT 0,
    incoming        bigint NOT NULL DEFAULT 0,
    position        bigint NOT NULL DEFAULT 0,
    requests_made   integer NOT NULL DEFAULT 0,
    last_event_at   timestamptz,
    PRIMARY KEY (sku, location)
);

-- Units ordered per item per day (event time), from the ledger's commitment entries.
CREATE TABLE demand_daily (
    sku      text   NOT NULL,
    location text   NOT NULL,
    day      date   NOT NULL,
    units    bigint NOT NULL,
    PRIMARY KEY (sku, location, day)
);

CREATE TABLE replenishment_policies (
    sku        text        NOT NULL,
    location   text        NOT NULL,
    policy     jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, location)
);

-- The latest forecast per item, recomputed on a schedule and on demand.
CREATE TABLE replenishment_forecasts (
    sku          text             NOT NULL,
    location     text             NOT NULL,
    method       text             NOT NULL,
    daily_demand double precision NOT NULL,
    demand_sd    double precision NOT NULL,
    holdout_mae  double precision NOT NULL,
    history_days integer          NOT NULL,
    computed_at  timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, location)
);

-- Requests raised, and the outbox of replenishment.requests.v1 (published_at is null until the
-- broker has the message).
CREATE TABLE replenishment_requests (
    request_id    text        PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE,
    seq           bigint      GENERATED ALWAYS AS IDENTITY,
    sku           text        NOT NULL,
    location      text        NOT NULL,
    qty           integer     NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('purchase', 'transfer')),
    from_location text,
    status        text        NOT NULL DEFAULT 'open'
                  CHECK (status IN ('open', 'confirmed', 'received', 'cancelled')),
    confirmed_qty integer     NOT NULL DEFAULT 0,
    received_qty  integer     NOT NULL DEFAULT 0,
    needed_by     timestamptz NOT NULL,
    reason        jsonb       NOT NULL,
    message       jsonb       NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX replenishment_requests_item ON replenishment_requests (sku, location, status);
CREATE INDEX replenishment_requests_unpublished ON replenishment_requests (seq)
    WHERE published_at IS NULL;
