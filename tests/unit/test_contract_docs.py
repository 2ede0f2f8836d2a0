"""The committed contract documents are what the wire models generate, and cover the contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared import contract_docs, topics
from shared.events.codec import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[2]

CONTRACT_INPUT_TYPES = {
    "scan.received",
    "scan.shipped",
    "scan.adjusted",
    "scan.counted",
    "scan.transferred",
    "scan.returned",
    "scan.moved",
    "scan.inspected",
    "order.placed",
    "order.cancelled",
    "order.fulfilled",
    "replenishment.confirmed",
    "replenishment.cancelled",
}
CONTRACT_TOPICS = {
    "inventory.scans.v1",
    "commerce.orders.v1",
    "replenishment.updates.v1",
    "inventory.scans.v1.dlq",
    "commerce.orders.v1.dlq",
    "replenishment.updates.v1.dlq",
    "stock.ledger.v1",
    "stock.levels.v1",
    "replenishment.requests.v1",
}


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, object]:
    document: dict[str, object] = json.loads(contract_docs.asyncapi_document())
    return document


def test_the_committed_asyncapi_document_is_what_the_code_generates() -> None:
    committed = (ROOT / contract_docs.ASYNCAPI_PATH).read_text(encoding="utf-8")
    assert committed == contract_docs.asyncapi_document(), (
        "docs/asyncapi.json is stale: run `python -m shared.contract_docs`"
    )


def test_the_committed_schemas_are_what_the_code_generates() -> None:
    schemas = ROOT / contract_docs.SCHEMAS_DIR
    generated = contract_docs.schema_documents()
    assert {p.name for p in schemas.glob("*.json")} == set(generated)
    for name, text in generated.items():
        assert (schemas / name).read_text(encoding="utf-8") == text, f"{name} is stale"


def test_nothing_committed_is_stale() -> None:
    assert contract_docs.stale(ROOT) == []


def test_generating_twice_gives_the_same_documents() -> None:
    assert contract_docs.documents() == contract_docs.documents()


def test_the_asyncapi_document_lists_every_contract_topic(asyncapi: dict[str, object]) -> None:
    channels = asyncapi["channels"]
    assert isinstance(channels, dict)
    assert {c["address"] for c in channels.values()} == CONTRACT_TOPICS
    assert {spec.name for spec in topics.topic_specs()} == CONTRACT_TOPICS


def test_input_topics_are_received_and_outputs_sent(asyncapi: dict[str, object]) -> None:
    operations = asyncapi["operations"]
    assert isinstance(operations, dict)
    actions = {
        op["channel"]["$ref"].removeprefix("#/channels/"): op["action"]
        for op in operations.values()
    }
    inputs = set(topics.INPUT_TOPICS)
    assert actions == {t: "receive" if t in inputs else "send" for t in CONTRACT_TOPICS}


def test_every_contract_topic_is_described(asyncapi: dict[str, object]) -> None:
    channels = asyncapi["channels"]
    assert isinstance(channels, dict)
    assert all(c.get("description") for c in channels.values())


def test_dead_letter_topics_document_the_error_headers(asyncapi: dict[str, object]) -> None:
    channels = asyncapi["channels"]
    assert isinstance(channels, dict)
    for topic in topics.INPUT_TOPICS:
        description = channels[topic + topics.DLQ_SUFFIX]["description"]
        assert "error.reason" in description
        assert "error.detail" in description


def test_every_contract_input_event_type_has_a_schema_file() -> None:
    assert len(CONTRACT_INPUT_TYPES) == 13
    assert set(EVENT_TYPES) == CONTRACT_INPUT_TYPES
    names = {p.name for p in (ROOT / contract_docs.SCHEMAS_DIR).glob("*.json")}
    assert {f"{t}.json" for t in CONTRACT_INPUT_TYPES} <= names


def test_every_output_message_has_a_schema_file() -> None:
    names = {p.name for p in (ROOT / contract_docs.SCHEMAS_DIR).glob("*.json")}
    expected = {"stock.ledger.v1.json", "stock.levels.v1.json", "replenishment.requested.json"}
    assert expected <= names


def test_each_input_schema_pins_its_event_type() -> None:
    for event_type in CONTRACT_INPUT_TYPES:
        path = ROOT / contract_docs.SCHEMAS_DIR / f"{event_type}.json"
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["properties"]["type"]["const"] == event_type


def test_a_stale_missing_or_extra_schema_is_reported_once_each(tmp_path: Path) -> None:
    contract_docs.write(tmp_path)
    assert contract_docs.stale(tmp_path) == []
    schemas = tmp_path / contract_docs.SCHEMAS_DIR
    (schemas / "scan.moved.json").write_text("{}\n")
    (schemas / "order.placed.json").unlink()
    (schemas / "scan.teleported.json").write_text("{}\n")
    assert [p.split(":")[0] for p in contract_docs.stale(tmp_path)] == [
        "docs/schemas/scan.moved.json",
        "docs/schemas/order.placed.json",
        "docs/schemas/scan.teleported.json",
    ]


def test_the_check_command_fails_with_one_line_per_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contract_docs.write(tmp_path)
    (tmp_path / contract_docs.ASYNCAPI_PATH).write_text("{}\n")
    (tmp_path / contract_docs.SCHEMAS_DIR / "scan.moved.json").unlink()
    assert contract_docs.main(["--check", "--root", str(tmp_path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("docs/asyncapi.json: ")
    assert lines[1].startswith("docs/schemas/scan.moved.json: ")


def test_writing_brings_stale_documents_back_and_removes_extra_schemas(tmp_path: Path) -> None:
    contract_docs.write(tmp_path)
    (tmp_path / contract_docs.ASYNCAPI_PATH).write_text("{}\n")
    (tmp_path / contract_docs.SCHEMAS_DIR / "scan.teleported.json").write_text("{}\n")
    assert contract_docs.main(["--root", str(tmp_path)]) == 0
    assert contract_docs.stale(tmp_path) == []
    assert contract_docs.write(tmp_path) == []


def test_the_check_command_passes_on_the_committed_documents() -> None:
    assert contract_docs.main(["--check"]) == 0
