"""The ledger's edges: PostgreSQL storage (and its in-memory twin), Kafka consumer and relay."""
