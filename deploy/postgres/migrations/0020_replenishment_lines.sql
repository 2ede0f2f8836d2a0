-- The 'lines' policy: demand kept as order lines (how many lines of each size a day), the
-- figures each item is decided by, and the planner's state (the price of stock in lines served
-- per unit held, and the event-time day it was set for).
CREATE TABLE demand_lines (
    sku text NOT NULL,
    location text NOT NULL,
    day date NOT NULL,
    qty integer NOT NULL CHECK (qty > 0),
    lines integer NOT NULL CHECK (lines > 0),
    PRIMARY KEY (sku, location, day, qty)
);

CREATE TABLE replenishment_plans (
    sku text NOT NULL,
    location text NOT NULL,
    reorder_point integer NOT NULL,
    order_up_to integer NOT NULL,
    expected_fill double precision NOT NULL,
    expected_units double precision NOT NULL,
    lines_per_day double precision NOT NULL,
    mean_line_size double precision NOT NULL,
    daily_demand double precision NOT NULL,
    ltd_p50 integer NOT NULL,
    ltd_p90 integer NOT NULL,
    ltd_p99 integer NOT NULL,
    planned_for date NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, location)
);

CREATE TABLE replenishment_planner (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    price double precision NOT NULL,
    planned_for date NOT NULL,
    expected_fill double precision NOT NULL,
    expected_units double precision NOT NULL,
    items integer NOT NULL,
    priors json NOT NULL DEFAULT '{}',
    computed_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE, DELETE ON demand_lines, replenishment_plans, replenishment_planner
    TO stockledger_replenisher;
GRANT SELECT ON replenishment_plans, replenishment_planner TO stockledger_api;
