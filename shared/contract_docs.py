"""The contract's generated documents: the AsyncAPI document and one JSON Schema per message.

``python -m shared.contract_docs`` writes them under ``docs/``; ``--check`` exits 1, naming each
stale file, when the committed documents differ from what the wire models generate.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, get_args

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel, Field

from shared import topics
from shared.events.ledger import LedgerEntryMessage
from shared.events.orders import OrderEvent
from shared.events.outputs import DEAD_LETTER_HEADERS, ReplenishmentRequested, StockLevelMessage
from shared.events.replenishment import ReplenishmentEvent
from shared.events.scans import ScanEvent

ROOT = Path(__file__).resolve().parents[1]
ASYNCAPI_PATH = Path("docs/asyncapi.json")
OPENAPI_PATH = Path("docs/openapi.json")
SCHEMAS_DIR = Path("docs/schemas")
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

OUTPUT_MESSAGES: dict[str, type[BaseModel]] = {
    topics.LEDGER: LedgerEntryMessage,
    topics.LEVELS: StockLevelMessage,
    "replenishment.requested": ReplenishmentRequested,
}
"""Schema file name (without ``.json``) of each output message."""

DESCRIPTION = """\
Stock ledger suite: every unit movement recorded once, stock per location in real time, and
replenishment that triggers itself.

Every message value is one JSON object, UTF-8, at most 1 MiB. Quantities are integer units; SKUs
and location codes are case-sensitive; times are RFC 3339 with an offset. Input events share one
envelope (`event_id`, `type`, `schema_version`, `occurred_at`, `source`, `data`), and `type`
selects the model of `data`. A redelivered `event_id` has no further effect. A message that
cannot be accepted goes to `<input topic>.dlq`.
"""


def input_events() -> dict[str, type[BaseModel]]:
    """Each input event model by its ``type``, in contract order."""
    models: list[type[BaseModel]] = [
        *get_args(ScanEvent),
        *get_args(OrderEvent),
        *get_args(ReplenishmentEvent),
    ]
    return {get_args(m.model_fields["type"].annotation)[0]: m for m in models}


def _dead_letter_description(topic: str) -> str:
    headers = "".join(f"\n- `{name}`: {meaning}" for name, meaning in DEAD_LETTER_HEADERS.items())
    return (
        f"Messages from `{topic}` that could not be accepted: the original value bytes (not "
        f"necessarily JSON) and key, unchanged (unless `error.truncated` says otherwise), plus "
        f"these headers:{headers}"
    )


def build_broker() -> KafkaBroker:
    """A broker that only describes the contract: it is never started and never connects."""
    broker = KafkaBroker(
        "127.0.0.1:9092", description="The local stack started by `make up`.", logger=None
    )

    @broker.subscriber(topics.SCANS, title=topics.SCANS)
    async def scans(event: Annotated[ScanEvent, Field(discriminator="type")]) -> None:
        """What scanners and warehouses saw happen to units. Key: `<location>|<sku>`."""

    @broker.subscriber(topics.ORDERS, title=topics.ORDERS)
    async def orders(event: Annotated[OrderEvent, Field(discriminator="type")]) -> None:
        """What shops sold, cancelled and fulfilled. Key: `order_id`."""

    @broker.subscriber(topics.REPLENISHMENT_UPDATES, title=topics.REPLENISHMENT_UPDATES)
    async def replenishment_updates(
        event: Annotated[ReplenishmentEvent, Field(discriminator="type")],
    ) -> None:
        """What suppliers and warehouses confirmed or cancelled. Key: `request_id`."""

    for topic in topics.INPUT_TOPICS:
        dlq = topic + topics.DLQ_SUFFIX
        broker.publisher(dlq, title=dlq, description=_dead_letter_description(topic), schema=bytes)

    broker.publisher(
        topics.LEDGER,
        title=topics.LEDGER,
        schema=LedgerEntryMessage,
        description="Every ledger entry, in ledger order per key. Key: `<location>|<sku>`.",
    )
    broker.publisher(
        topics.LEVELS,
        title=topics.LEVELS,
        schema=StockLevelMessage,
        description="The level after each change; log-compacted. Key: `<location>|<sku>`.",
    )
    broker.publisher(
        topics.REPLENISHMENT_REQUESTS,
        title=topics.REPLENISHMENT_REQUESTS,
        schema=ReplenishmentRequested,
        description=(
            "One request per crossing of the reorder point, in the input envelope with a "
            "deterministic `event_id`. Key: `<location>|<sku>`."
        ),
    )
    return broker


def _dumps(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def asyncapi_document() -> str:
    """The AsyncAPI document of every topic the suite reads or writes, as committed."""
    specification = AsyncAPI(
        build_broker(), title="stockledger", version="1.0.0", description=DESCRIPTION
    ).to_specification()
    return _dumps(json.loads(specification.to_json()))


def schema_documents() -> dict[str, str]:
    """One JSON Schema per input event type and per output message, by file name."""
    models = {**input_events(), **OUTPUT_MESSAGES}
    return {
        f"{name}.json": _dumps({"$schema": JSON_SCHEMA_DIALECT, **model.model_json_schema()})
        for name, model in models.items()
    }


def openapi_document() -> str:
    """The HTTP API's OpenAPI document (the API is served by the projector)."""
    from services.projector.api.openapi import full_document

    return _dumps(full_document())


def documents() -> dict[Path, str]:
    """Every generated document by its path relative to the project root."""
    return {
        ASYNCAPI_PATH: asyncapi_document(),
        OPENAPI_PATH: openapi_document(),
        **{SCHEMAS_DIR / name: text for name, text in schema_documents().items()},
    }


def stale(root: Path = ROOT) -> list[str]:
    """One line per committed document that differs from the generated one; empty if none."""
    expected = documents()
    problems = []
    for path, text in expected.items():
        file = root / path
        if not file.exists():
            problems.append(f"{path}: missing")
        elif file.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from what the code generates")
    for file in sorted((root / SCHEMAS_DIR).glob("*.json")):
        if file.relative_to(root) not in expected:
            problems.append(f"{file.relative_to(root)}: no longer generated")
    return problems


def write(root: Path = ROOT) -> list[Path]:
    """Write the documents that changed and remove schemas no longer generated."""
    expected = documents()
    changed = []
    for path, text in expected.items():
        file = root / path
        if not file.exists() or file.read_text(encoding="utf-8") != text:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text, encoding="utf-8")
            changed.append(path)
    for file in sorted((root / SCHEMAS_DIR).glob("*.json")):
        if file.relative_to(root) not in expected:
            file.unlink()
            changed.append(file.relative_to(root))
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.contract_docs", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="fail if the committed documents are stale"
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the project root (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = stale(args.root)
        for problem in problems:
            print(f"{problem}; run `python -m shared.contract_docs`", file=sys.stderr)
        return 1 if problems else 0
    changed = write(args.root)
    for path in changed:
        print(f"updated {path}")
    if not changed:
        print("contract documents already current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
