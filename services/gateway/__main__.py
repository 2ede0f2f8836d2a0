"""``python -m services.gateway``: run the HTTP gateway (default 127.0.0.1:8084)."""

from __future__ import annotations

from shared.runner import run_service
from shared.settings import Settings

from .app import create_service


def main() -> None:
    settings = Settings()
    run_service(create_service(settings), settings)


if __name__ == "__main__":
    main()
