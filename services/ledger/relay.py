"""``python -m services.ledger.relay``: the ledger's relay as its own process.

It publishes committed ledger rows to ``stock.ledger.v1`` (see adapters/relay.py), and serves
health and metrics on ``STOCKLEDGER_METRICS_PORT``. Run it beside ledger processes started with
``STOCKLEDGER_LEDGER_RELAY=false``, so that publishing does not take CPU time from ingesting.
Several relays may run: one publishes, the others wait to take over.
"""

from shared.runner import run_service
from shared.settings import Settings

from .app import LedgerService

if __name__ == "__main__":
    settings = Settings()
    run_service(LedgerService(settings, ingest=False, relay=True), settings)
