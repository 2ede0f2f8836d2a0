-- One role per service, allowed what that service does and nothing more. The roles cannot log in
-- until given a password (python -m shared.roles passwords, which stack.sh runs) or granted to a
-- login role of the operator's (GRANT stockledger_ledger TO ledger_login). Roles belong to the
-- cluster, grants to this database: the roles are created once, the grants in every database.

DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['stockledger_ledger', 'stockledger_projector', 'stockledger_api',
                                'stockledger_replenisher'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- created meanwhile by a migration of another database of the cluster
            END;
        END IF;
    END LOOP;
END $$;

-- No role creates objects (PostgreSQL 15 and later refuse it by default already).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO stockledger_ledger, stockledger_projector, stockledger_api,
    stockledger_replenisher;

-- The ledger appends entries and keeps its own state. No UPDATE or DELETE on ledger_entries (the
-- trigger refuses them too, even to the owner) nor on processed_events: both are append-only.
GRANT SELECT, INSERT ON ledger_entries, processed_events TO stockledger_ledger;
GRANT SELECT, INSERT, UPDATE ON ledger_balances, ledger_orders, ledger_inbound, relay_positions
    TO stockledger_ledger;

-- The projector's consumer writes the read model; it reads only the ledger's head position, to
-- measure its lag.
GRANT SELECT, INSERT, UPDATE ON stock_levels TO stockledger_projector;
GRANT SELECT (position) ON ledger_entries TO stockledger_projector;

-- The HTTP API reads, and writes only policies (PUT /v1/policies).
GRANT SELECT ON ledger_entries, stock_levels, reorder_points, replenishment_policies,
    replenishment_forecasts, replenishment_requests TO stockledger_api;
GRANT INSERT, UPDATE ON replenishment_policies TO stockledger_api;

-- The replenisher writes its own tables and the reorder points it computes, and reads policies.
GRANT SELECT, INSERT, UPDATE ON replenisher_items, demand_daily, replenishment_forecasts,
    replenishment_requests TO stockledger_replenisher;
GRANT SELECT, INSERT, DELETE ON reorder_points TO stockledger_replenisher;
GRANT SELECT ON replenishment_policies TO stockledger_replenisher;
