"""``python -m services.ledger``: run the ledger service with settings from the environment."""

from shared.runner import run_service
from shared.settings import Settings

from .app import GC_THRESHOLD, create_service

if __name__ == "__main__":
    settings = Settings()
    run_service(create_service(settings), settings, gc_threshold=GC_THRESHOLD)
