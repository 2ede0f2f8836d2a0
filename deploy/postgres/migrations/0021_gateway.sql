-- The gateway's own tables: the receivers of our outbound webhooks, one delivery per (endpoint,
-- message) with its state, every attempt, and the replenishment requests it has seen (so that a
-- warehouse confirming over HTTP need not repeat the request's sku and location). The gateway
-- faces the internet: its role reads and writes these tables and nothing else.

CREATE TABLE webhook_endpoints (
    name        text PRIMARY KEY,
    url         text NOT NULL,
    secret      text NOT NULL,
    locations   text[],                      -- NULL: every location
    types       text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- seq orders the deliveries of one item (key) to one endpoint: a delivery is sent only once every
-- earlier one of its endpoint and key is delivered or given up.
CREATE TABLE webhook_deliveries (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint        text NOT NULL,
    message_id      text NOT NULL,
    type            text NOT NULL,
    item_key        text NOT NULL,
    body            bytea NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    delivered_at    timestamptz,
    last_status     integer,
    last_error      text,
    UNIQUE (endpoint, message_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_item ON webhook_deliveries (endpoint, item_key, seq)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_status ON webhook_deliveries (status, seq);

CREATE TABLE webhook_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_seq bigint NOT NULL REFERENCES webhook_deliveries (seq) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    at           timestamptz NOT NULL,
    status_code  integer,
    error        text,
    duration_ms  double precision NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_seq, attempt);

CREATE TABLE gateway_requests (
    request_id  text PRIMARY KEY,
    sku         text NOT NULL,
    location    text NOT NULL
);

-- What a warehouse confirmed or cancelled over HTTP, as first published: a repeated call
-- publishes the same event again (same id, same content), which the ledger counts once.
CREATE TABLE gateway_request_updates (
    request_id  text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('confirmed', 'cancelled')),
    event       jsonb NOT NULL,
    PRIMARY KEY (request_id, kind)
);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'stockledger_gateway') THEN
        BEGIN
            CREATE ROLE stockledger_gateway NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created meanwhile by a migration of another database of the cluster
        END;
    END IF;
END $$;

GRANT USAGE ON SCHEMA public TO stockledger_gateway;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_endpoints TO stockledger_gateway;
GRANT SELECT, INSERT, UPDATE ON webhook_deliveries TO stockledger_gateway;
GRANT SELECT, INSERT ON webhook_attempts TO stockledger_gateway;
GRANT SELECT, INSERT ON gateway_requests, gateway_request_updates TO stockledger_gateway;
