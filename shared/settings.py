"""Settings for every service, read from the environment when a service is built, never at import.

Every variable has the prefix ``STOCKLEDGER_``; the Kafka and PostgreSQL addresses also accept the
common unprefixed names ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL``.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    topic_prefix: str = Field(
        default="",
        description="Prepended to every topic name; lets tests and tenants share one broker.",
    )
    consumer_group_prefix: str = Field(default="stockledger", description="Consumer group prefix.")
    batch_max_records: int = Field(default=5000, ge=1, description="Records per fetch and batch.")
    batch_timeout_ms: int = Field(default=50, ge=0, description="How long a fetch waits for data.")
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP API binds to.")
    http_port: int = Field(default=8080, ge=0, le=65535, description="Port of the HTTP API.")
    api_token: SecretStr = Field(
        default=SecretStr("dev-token"),
        description="Bearer token required by write endpoints (PUT /v1/policies).",
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Port for /metrics of services without the API."
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    db_pool_size: int = Field(default=4, ge=1, description="PostgreSQL connections per service.")
    forecast_interval_s: float = Field(
        default=300.0, gt=0, description="How often the replenisher recomputes its forecasts."
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
