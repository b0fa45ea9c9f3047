"""Recorded histories replay against today's workflow code: a failure here means a change would
break determinism for goals already in flight (re-record only when that is intended)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from tests.helpers import replay

HISTORIES = sorted((Path(__file__).resolve().parent / "histories").glob("*.json"))


def test_histories_are_recorded() -> None:
    assert HISTORIES, "tests/histories/ holds no recorded history"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    assert any(e.activity_task_scheduled_event_attributes.activity_type.name == "call_model" for e in history.events)
    await replay(history)
