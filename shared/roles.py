"""The services' PostgreSQL roles (created and granted by migration 0004_roles.sql), their login
passwords, and the URL each service connects with.

``python -m shared.roles passwords`` lets each role log in with the password in
``PG_<SERVICE>_PASSWORD`` (LEDGER, PROJECTOR, API, REPLENISHER, GATEWAY; unset ones are left alone),
connecting as the owner in ``DATABASE_URL``. The server receives a SCRAM verifier computed here,
never the password itself, so the password cannot reach its log. ``python -m shared.roles url
SERVICE`` prints ``DATABASE_URL`` with the service's role and password in place of the owner's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import sys
import unicodedata
from collections.abc import Mapping
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from .db import Connection

ROLES = {
    "ledger": "stockledger_ledger",
    "projector": "stockledger_projector",
    "api": "stockledger_api",
    "replenisher": "stockledger_replenisher",
    "gateway": "stockledger_gateway",  # migration 0021_gateway.sql
}
SCRAM_ITERATIONS = 4096


def password_variable(service: str) -> str:
    return f"PG_{service.upper()}_PASSWORD"


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier of ``password``, as ``pg_authid`` stores it."""
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac(
        "sha256", unicodedata.normalize("NFKC", password).encode(), salt, SCRAM_ITERATIONS
    )
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


async def set_password(conn: Connection, role: str, password: str) -> None:
    """Let ``role`` log in with ``password`` (only its verifier is sent)."""
    statement = await conn.fetchval(
        "SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)",
        role,
        scram_verifier(password),
    )
    await conn.execute(statement)


async def set_passwords(owner_dsn: str, passwords: Mapping[str, str]) -> list[str]:
    """Let each service's role log in with its password; returns the roles changed."""
    conn = await asyncpg.connect(owner_dsn)
    try:
        for service, password in passwords.items():
            await set_password(conn, ROLES[service], password)
    finally:
        await conn.close()
    return [ROLES[s] for s in passwords]


def login_url(owner_url: str, role: str, password: str) -> str:
    """``owner_url`` with ``role`` and its password in place of the owner's."""
    parts = urlsplit(owner_url)
    host = parts.netloc.rpartition("@")[2]
    userinfo = f"{quote(role, safe='')}:{quote(password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def main() -> None:
    from shared.settings import Settings

    command = sys.argv[1:2]
    if command == ["passwords"]:
        given = {s: os.environ[v] for s in ROLES if (v := password_variable(s)) in os.environ}
        changed = asyncio.run(set_passwords(Settings().database_dsn(), given))
        print(f"roles: {len(changed)} given a login password ({', '.join(changed) or 'none'})")
    elif command == ["url"] and sys.argv[2:3] and sys.argv[2] in ROLES:
        service = sys.argv[2]
        owner = Settings().database_url.get_secret_value()
        password = os.environ.get(password_variable(service), "")
        print(login_url(owner, ROLES[service], password))
    else:
        sys.exit(f"usage: python -m shared.roles passwords | url {{{','.join(ROLES)}}}")


if __name__ == "__main__":
    main()
