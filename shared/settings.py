"""Settings for every service, read from the environment when a service is built, never at import.

Every variable has the prefix ``STOCKLEDGER_``; the Kafka and PostgreSQL addresses also accept the
common unprefixed names ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL``. Passwords, tokens and
connection URLs are ``SecretStr``: printed or logged, they show as ``**********``.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]


FETCH_MAX_BYTES = 64 * 1024 * 1024  # a consumer's fetch (Kafka's fetch.max.bytes), by default
PARTITION_FETCH_BYTES = 8 * 1024 * 1024  # and of one partition (max.partition.fetch.bytes)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STOCKLEDGER_", extra="ignore", frozen=True, populate_by_name=True
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "STOCKLEDGER_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="Kafka brokers, host:port[,host:port].",
    )
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://stockledger:stockledger@127.0.0.1:5433/stockledger"),
        validation_alias=AliasChoices("STOCKLEDGER_DATABASE_URL", "DATABASE_URL"),
        description="PostgreSQL connection URL (libpq form).",
    )
    api_database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL of the HTTP API's pool (its own role); unset: database_url.",
    )
    database_sslmode: SslMode | None = Field(
        default=None,
        description="libpq sslmode for every PostgreSQL connection; unset: the URL's, or prefer.",
    )
    database_sslrootcert: str | None = Field(
        default=None, description="CA certificate file that verifies the PostgreSQL server."
    )
    kafka_security_protocol: KafkaProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        default="SCRAM-SHA-512", description="SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN."
    )
    kafka_sasl_username: str = Field(default="", description="SASL user name.")
    kafka_sasl_password: SecretStr = Field(default=SecretStr(""), description="SASL password.")
    kafka_ssl_cafile: str | None = Field(
        default=None, description="CA certificate file that verifies the brokers (PEM)."
    )
    topic_prefix: str = Field(
        default="",
        description="Prepended to every topic name; lets tests and tenants share one broker.",
    )
    consumer_group_prefix: str = Field(default="stockledger", description="Consumer group prefix.")
    batch_max_records: int = Field(default=10_000, ge=1, description="Records per fetch and batch.")
    batch_timeout_ms: int = Field(default=50, ge=0, description="How long a fetch waits for data.")
    replenisher_gather_ms: int = Field(
        default=1000,
        ge=0,
        description="How long the replenisher gathers a busy stream of ledger entries (a fetch "
        "of 1,000 or more) into one batch, up to batch_max_records, before deciding: each item is "
        "then updated once for many entries. A quiet stream is decided on at once; 0 never waits.",
    )
    replenisher_fetch_max_bytes: int = Field(
        default=FETCH_MAX_BYTES,
        ge=64 * 1024,
        description="Bytes of ledger entries the replenisher's consumer fetches at once (Kafka's "
        "fetch.max.bytes; a larger entry still comes, alone). aiokafka holds a fetch twice while "
        "it decodes it, then until its last record is handed out: catching up with the demo's "
        "entries, 64 MB took the replenisher to 234-253 MB, 4 MB (1 MB a partition) to 185-196 MB "
        "but with 109 -> 137 ms of CPU per 1,000 entries, so the default stays where it was.",
    )
    replenisher_partition_fetch_bytes: int = Field(
        default=PARTITION_FETCH_BYTES,
        ge=64 * 1024,
        description="Of those, at most this many from one partition (max.partition.fetch.bytes).",
    )
    ledger_relay: bool = Field(
        default=True,
        description="Run the relay to stock.ledger.v1 inside the ledger process; false where it "
        "runs as its own process (python -m services.ledger.relay).",
    )
    shutdown_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="How long a stopping service may take to finish its in-flight batch; past "
        "it, the batch is abandoned uncommitted (redelivered after restart) and the service exits.",
    )
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP API binds to.")
    http_port: int = Field(default=8080, ge=0, le=65535, description="Port of the HTTP API.")
    api_token: SecretStr = Field(
        default=SecretStr("dev-token"),
        description="Bearer token required by write endpoints (PUT /v1/policies).",
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Port for /metrics of services without the API."
    )
    gateway_port: int = Field(
        default=8084, ge=0, le=65535, description="Port of the HTTP gateway (services.gateway)."
    )
    shopify_webhook_secret: SecretStr = Field(
        default=SecretStr("dev-shopify-secret"),
        description="Key of the Shopify webhooks' X-Shopify-Hmac-Sha256 (the app's client secret); "
        "several, comma-separated, are all accepted (during a rotation).",
    )
    shopify_locations: dict[str, str] = Field(
        default_factory=dict,
        description='Shopify location id -> our location code, as JSON ({"655441491": "UK"}).',
    )
    shopify_default_location: str = Field(
        default="main", description="Location of Shopify orders whose location is not mapped."
    )
    shopify_return_condition: Literal["sellable", "damaged", "inspect"] = Field(
        default="inspect", description="Condition of units a Shopify refund restocks."
    )
    woocommerce_webhook_secret: SecretStr = Field(
        default=SecretStr("dev-woocommerce-secret"),
        description="Secret of the WooCommerce webhooks' X-WC-Webhook-Signature; several, "
        "comma-separated, are all accepted.",
    )
    woocommerce_location: str = Field(
        default="main", description="Location of WooCommerce orders (WooCommerce has one)."
    )
    webhook_retry_hours: float = Field(
        default=24.0, gt=0, description="How long an outbound webhook delivery is retried."
    )
    webhook_backoff_initial_s: float = Field(
        default=5.0, gt=0, description="First wait before retrying a delivery (doubles, +jitter)."
    )
    webhook_backoff_max_s: float = Field(
        default=3600.0, gt=0, description="Longest wait between two attempts of a delivery."
    )
    webhook_timeout_s: float = Field(
        default=15.0, gt=0, description="How long a receiver may take to answer one attempt."
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    db_pool_size: int = Field(default=4, ge=1, description="PostgreSQL connections per service.")
    db_keepalives_idle_s: int = Field(
        default=10,
        ge=1,
        description="TCP keepalives of the connection that holds a publisher's leader lock (the "
        "ledger relay's, the replenisher outbox's): seconds of silence before the server probes.",
    )
    db_keepalives_interval_s: int = Field(
        default=5, ge=1, description="Seconds between the server's keepalive probes."
    )
    db_keepalives_count: int = Field(
        default=3,
        ge=1,
        description="Probes unanswered before the server drops the connection, which releases the "
        "leader lock: a publisher whose host died is replaced after idle + interval x count "
        "seconds (25 by default), not after the operating system's two hours.",
    )
    forecast_interval_s: float = Field(
        default=300.0,
        gt=0,
        description="How often (wall clock) the replenisher refreshes its gauges and the reorder"
        " points the API filters by; forecasts and plans follow event time (plan_every_days).",
    )
    default_policy: Literal["lines", "normal", "static", "min_max"] = Field(
        default="lines",
        description="Policy of items without one of their own: lines (the default), normal.",
    )
    target_fill: float = Field(
        default=0.92,  # services.replenisher.lines.DEFAULT_TARGET_FILL (tests keep them equal)
        gt=0,
        lt=1,
        description="lines: the expected order-line fill over all items that sets the price of"
        " stock (lines served per unit held).",
    )
    stock_budget_units: float | None = Field(
        default=None,
        ge=0,
        description="lines: expected units held over all items, instead of target_fill.",
    )
    plan_every_days: int = Field(
        default=7,
        ge=1,
        le=365,
        description="Forecasts and the lines plan are recomputed when the ledger's event time"
        " passes a day whose ordinal is a multiple of this (and after the first day seen).",
    )
    default_lead_time_days: float = Field(
        default=7.0, gt=0, description="Lead time of items without a policy of their own."
    )
    default_review_days: float = Field(
        default=7.0, ge=0, description="Review period of items without a policy of their own."
    )
    default_service_level: float = Field(
        default=0.98,
        gt=0.5,
        lt=1,
        description="Service level of items without a policy (for lines of one unit).",
    )

    def leader_session_settings(self) -> dict[str, str]:
        """Session settings of a publisher's leader connection: the server's TCP keepalives, and
        ``tcp_user_timeout`` as long as they take, for data the dead host never acknowledges."""
        idle, interval, count = (
            self.db_keepalives_idle_s,
            self.db_keepalives_interval_s,
            self.db_keepalives_count,
        )
        return {
            "tcp_keepalives_idle": str(idle),
            "tcp_keepalives_interval": str(interval),
            "tcp_keepalives_count": str(count),
            "tcp_user_timeout": str((idle + interval * count) * 1000),
        }

    def database_dsn(self) -> str:
        """The URL the service connects with, the TLS settings added."""
        return self._with_tls(self.database_url)

    def api_database_dsn(self) -> str:
        """The URL of the HTTP API's pool, the TLS settings added."""
        return self._with_tls(self.api_database_url or self.database_url)

    def secret_values(self) -> list[str]:
        """Every secret the settings hold, as it could appear in text: the API token, the SASL
        password, and the database URLs and their passwords (as written and decoded)."""
        values = [self.api_token.get_secret_value(), self.kafka_sasl_password.get_secret_value()]
        for webhook_secrets in (self.shopify_webhook_secret, self.woocommerce_webhook_secret):
            values += [v.strip() for v in webhook_secrets.get_secret_value().split(",")]
        for url in (self.database_url, self.api_database_url):
            if url is not None:
                parts = urlsplit(url.get_secret_value())
                values.append(parts.geturl())
                # a password equal to its user name hides nothing the log does not show, and
                # blanking it would blank the name everywhere (the local owner's, for one)
                if parts.password and parts.password != parts.username:
                    values += [parts.password, unquote(parts.password)]
        return [v for v in values if v]

    def _with_tls(self, url: SecretStr) -> str:
        """``url`` with ``sslmode`` and ``sslrootcert`` set from the settings, when given."""
        options = {"sslmode": self.database_sslmode, "sslrootcert": self.database_sslrootcert}
        given = {k: v for k, v in options.items() if v is not None}
        parts = urlsplit(url.get_secret_value())
        if not given:
            return parts.geturl()
        query = dict(parse_qsl(parts.query)) | given
        return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
