"""No password, token or database URL reaches a service's output, even at DEBUG level."""

from __future__ import annotations

import secrets
import signal
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from shared.settings import Settings

from .. import events as ev
from ..kafka_io import eventually
from ..services import free_port, start_process
from .test_projector import publish

pytestmark = pytest.mark.integration


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


async def test_the_services_output_holds_no_secret(
    settings: Settings, role_urls: dict[str, str], tmp_path: Path
) -> None:
    token, sasl = f"tok-{secrets.token_hex(8)}", f"sasl-{secrets.token_hex(8)}"
    common = {
        "STOCKLEDGER_LOG_LEVEL": "DEBUG",
        "STOCKLEDGER_API_TOKEN": token,
        "STOCKLEDGER_KAFKA_SASL_PASSWORD": sasl,  # set, though this broker takes no SASL
    }
    port = free_port()
    log = tmp_path / "services.log"
    ledger = start_process("ledger", settings, log, DATABASE_URL=role_urls["ledger"], **common)
    projector = start_process(
        "projector",
        settings,
        log,
        DATABASE_URL=role_urls["projector"],
        STOCKLEDGER_API_DATABASE_URL=role_urls["api"],
        STOCKLEDGER_HTTP_PORT=str(port),
        **common,
    )
    try:
        await publish(settings, [ev.received("MUG", "UK", 3)])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def shown() -> bool:
                try:
                    got = await client.get("/v1/stock", params={"sku": "MUG", "location": "UK"})
                except httpx.TransportError:
                    return False
                return got.status_code == 200

            await eventually(shown, 60)
            where = {"sku": "MUG", "location": "UK"}
            denied = await client.put("/v1/policies", params=where, json={}, headers={})
            assert denied.status_code == 401
    finally:
        _stop(ledger)
        _stop(projector)
    output = log.read_text()
    assert '"message":"ledger started"' in output
    assert '"message":"projector started"' in output
    assert '"level":"debug"' in output  # DEBUG was on
    urls = [role_urls["ledger"], role_urls["projector"], role_urls["api"]]
    passwords = [urlsplit(u).password or "" for u in urls]
    for secret in [token, sasl, *urls, *passwords, *map(unquote, passwords)]:
        assert secret
        assert secret not in output
