"""Secrets stay out of the logs: the settings list them, the log formatter blanks them out."""

from __future__ import annotations

import logging
import sys

import orjson
from pydantic import SecretStr

from shared.logs import REDACTED, JsonFormatter
from shared.roles import login_url
from shared.settings import Settings

PASSWORD = 'p@ss:w"rd\\1'


def _settings() -> Settings:
    url = login_url("postgresql://owner:x@db.example:5432/stock", "stockledger_ledger", PASSWORD)
    return Settings(
        database_url=SecretStr(url),
        api_database_url=SecretStr("postgresql://api:api-secret-9@db.example/stock"),
        api_token=SecretStr("token-1234"),
        kafka_sasl_password=SecretStr("sasl-secret-5"),
    )


def _line(formatter: JsonFormatter, message: str, **extra: object) -> str:
    record = logging.LogRecord("test", logging.ERROR, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return formatter.format(record)


def test_the_settings_list_every_secret_as_it_could_be_written() -> None:
    values = _settings().secret_values()
    assert PASSWORD in values  # decoded
    assert "p%40ss%3Aw%22rd%5C1" in values  # as the URL writes it
    assert {"api-secret-9", "token-1234", "sasl-secret-5"} <= set(values)
    assert all(v != "**********" for v in values)


def test_secrets_printed_with_the_settings_are_masked() -> None:
    shown = repr(_settings())
    for secret in _settings().secret_values():
        assert secret not in shown


def test_a_secret_in_a_message_an_extra_field_or_a_traceback_is_blanked_out() -> None:
    settings = _settings()
    formatter = JsonFormatter(settings.secret_values())
    url = settings.database_url.get_secret_value()
    try:
        raise ConnectionError(f"could not reach {url}")
    except ConnectionError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
        traced = formatter.format(record)
    lines = [
        _line(formatter, f"password {PASSWORD} and token token-1234"),
        _line(formatter, "connecting", url=url, sasl="sasl-secret-5"),
        traced,
    ]
    for line in lines:
        entry = orjson.loads(line)  # still one valid JSON object
        assert REDACTED in line, entry
        for secret in settings.secret_values():
            assert secret not in line
            assert orjson.dumps(secret).decode()[1:-1] not in line


def test_lines_without_secrets_are_unchanged() -> None:
    plain = orjson.loads(_line(JsonFormatter(), "ledger started", topics=["a"]))
    scrubbed = orjson.loads(_line(JsonFormatter(["token-1234"]), "ledger started", topics=["a"]))
    assert {**scrubbed, "time": None} == {**plain, "time": None}


def test_a_password_equal_to_its_user_name_is_not_blanked_everywhere() -> None:
    owner = Settings(database_url=SecretStr("postgresql://stockledger:stockledger@h/stockledger"))
    assert "stockledger" not in owner.secret_values()
    assert "postgresql://stockledger:stockledger@h/stockledger" in owner.secret_values()
