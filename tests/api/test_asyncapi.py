"""docs/asyncapi.yaml is what `shopcast asyncapi` generates, names every Socket.IO event the
server handles and sends, and is valid AsyncAPI 3 for the official parser (under Node.js)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from api.realtime.contract import RECEIVED, SENT, asyncapi_yaml
from tests.nodes import ROOT

DOCUMENT = ROOT / "docs" / "asyncapi.yaml"
CHECK = ROOT / "tests" / "js" / "asyncapi_check.mjs"
EVENT = re.compile(r'"((?:stream|product|auction|order|chat|moderation):[a-z_]+)"')
node = pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js (`node`)")


def parse(path: Path) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(
        ["node", str(CHECK), str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def socket_server_events(client: TestClient[Any, Any]) -> set[str]:
    """The events the app's Socket.IO server has handlers for, read from the server itself."""
    for route in client.server.app.router.routes():
        if route.resource is not None and route.resource.canonical.startswith("/socket.io"):
            engine = route.handler.__self__  # type: ignore[attr-defined]
            sio = engine.handlers["message"].__self__
            return set(sio.handlers["/"]) - {"connect", "disconnect"}
    raise AssertionError("no Socket.IO route")


def test_the_committed_document_is_the_generated_one() -> None:
    assert DOCUMENT.read_text() == asyncapi_yaml(version("shopcast")), (
        "run `python -m server asyncapi --output docs/asyncapi.yaml`"
    )


async def test_every_handled_event_is_documented(client: TestClient[Any, Any]) -> None:
    assert socket_server_events(client) == set(RECEIVED)


def test_every_event_the_code_names_is_documented_and_every_documented_one_is_used() -> None:
    named = {
        event
        for source in (ROOT / "api").rglob("*.py")
        if source.name != "contract.py"
        for event in EVENT.findall(source.read_text())
    }
    assert named <= set(RECEIVED) | set(SENT), f"undocumented: {named - set(RECEIVED) - set(SENT)}"
    assert set(SENT) <= named, f"documented but never sent: {set(SENT) - named}"


def test_operations_name_their_events_and_client_events_are_acked_or_refused() -> None:
    document = yaml.safe_load(DOCUMENT.read_text())
    messages = document["channels"]["room"]["messages"]

    def message(ref: dict[str, str]) -> dict[str, Any]:
        return dict(messages[ref["$ref"].rsplit("/", 1)[1]])

    events: dict[str, set[str]] = {"receive": set(), "send": set()}
    for operation in document["operations"].values():
        event = message(operation["messages"][0])["name"]
        events[operation["action"]].add(event)
        if operation["action"] == "receive":
            ack = message(operation["reply"]["messages"][0])["payload"]["oneOf"]
            assert any(s["$ref"].endswith("Refused") for s in ack), f"{event}: no refusal"
    assert events == {"receive": set(RECEIVED), "send": set(SENT)}


@node
def test_the_document_is_valid_asyncapi_3() -> None:
    status, report = parse(DOCUMENT)
    assert status == 0 and report["valid"], report["errors"]
    assert report["version"] == "3.0.0"
    assert not report["warnings"], report["warnings"]
    assert len(report["operations"]) == len(RECEIVED) + len(SENT)


@node
def test_the_parser_refuses_a_broken_document(tmp_path: Path) -> None:
    """The check can fail: an operation pointing at a channel that does not exist."""
    document = yaml.safe_load(DOCUMENT.read_text())
    next(iter(document["operations"].values()))["channel"] = {"$ref": "#/channels/nowhere"}
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(document))
    status, report = parse(broken)
    assert status == 1 and not report["valid"] and report["errors"]
