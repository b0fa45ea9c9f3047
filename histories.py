"""Workflow histories on the command line (`starter.py history` and `starter.py replay`).

Export: a goal's history as the JSON `temporal workflow show -o json` writes (`{"events": [...]}`,
protobuf JSON), one run or every run of a goal that continued as new. Replay: exported files against
today's workflow code, each under the workflow id recorded in its first event (a parent's subagent ids
derive from it and replay compares them). A failing replay is narrowed down to the first event where
today's code departs from the history: core's message names it for some mismatches only, so the
history's prefixes are replayed one workflow task at a time (binary search; replay is monotonic).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.json_format import ParseError
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from workflows.goal import GoalWorkflow
from workflows.runner import workflow_runner


class HistoryFileError(ValueError):
    """A file that is not a readable workflow history (the message says why, in one line)."""


@dataclass(frozen=True)
class Replayed:
    """One file's replay: `error` is None when today's code reproduces every command in it."""

    path: Path
    events: int
    nondeterministic: bool = False
    error: str | None = None
    event_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        if self.ok:
            return f"OK  {self.path} ({self.events} events)"
        kind = "NONDETERMINISTIC" if self.nondeterministic else "FAILED"
        return f"{kind} {self.path}: event {self.event_id}: {self.error}"


# --- export ----------------------------------------------------------------------------------------


async def fetch(client: Client, workflow_id: str, run_id: str | None = None, all_runs: bool = False) -> list[WorkflowHistory]:
    """The history of run `run_id` (default: the latest run); with `all_runs`, that run and every run it
    continued from, oldest first (each run's first event names the run it continued from)."""
    runs = [await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()]
    while all_runs and (previous := runs[0].events[0].workflow_execution_started_event_attributes.continued_execution_run_id):
        runs.insert(0, await client.get_workflow_handle(workflow_id, run_id=previous).fetch_history())
    return runs


def run_paths(out: Path, runs: int) -> list[Path]:
    """Where `runs` runs of one goal go, oldest first: FILE-run1.json, ... for the runs that continued as
    new, FILE.json for the last (the naming of tests/histories/)."""
    return [out.with_name(f"{out.stem}-run{n}{out.suffix}") for n in range(1, runs)] + [out]


def to_json(history: WorkflowHistory) -> str:
    return history.to_json() + "\n"


# --- replay ----------------------------------------------------------------------------------------


def load(path: Path) -> WorkflowHistory:
    """The history in `path`, under the workflow id its first event records."""
    try:
        parsed = json.loads(path.read_text(encoding="utf-8"))
        workflow_id = parsed["events"][0]["workflowExecutionStartedEventAttributes"]["workflowId"]
        history = WorkflowHistory.from_json(workflow_id, parsed)
    except OSError as err:
        raise HistoryFileError(f"cannot read {path}: {err.strerror or err}") from err
    except (ValueError, ParseError) as err:  # JSONDecodeError is a ValueError
        raise HistoryFileError(f"{path} is not a workflow history: {str(err).splitlines()[0]}") from err
    except (KeyError, IndexError, TypeError) as err:
        raise HistoryFileError(f"{path} is not a workflow history: no WorkflowExecutionStarted event with a "
                               f"workflowId first (expected {{\"events\": [...]}} as `temporal workflow show -o json` writes)") from err
    return history


async def replay_files(paths: Sequence[Path], workflows: Sequence[type] = (GoalWorkflow,)) -> list[Replayed]:
    """Every file replayed against `workflows` (today's code by default); raises HistoryFileError before
    replaying anything if a file is unreadable."""
    histories = [load(path) for path in paths]
    replayer = Replayer(workflows=list(workflows), data_converter=pydantic_data_converter, runtime=_quiet_runtime(),
                        workflow_runner=workflow_runner())
    # A failing activation logs its traceback; the search for the first divergence fails on purpose,
    # and the one-line answer already says what failed.
    activations = logging.getLogger("temporalio.worker._workflow_instance")
    level = activations.level
    activations.setLevel(logging.CRITICAL)
    try:
        return [await _replay(replayer, path, history) for path, history in zip(paths, histories, strict=True)]
    finally:
        activations.setLevel(level)


async def _replay(replayer: Replayer, path: Path, history: WorkflowHistory) -> Replayed:
    failure = await _failure(replayer, history)
    if failure is None:
        return Replayed(path, len(history.events))
    return Replayed(path, len(history.events), isinstance(failure, NondeterminismError), _message(failure),
                    await _first_divergence(replayer, history, failure))


async def _failure(replayer: Replayer, history: WorkflowHistory) -> Exception | None:
    return (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure


async def _first_divergence(replayer: Replayer, history: WorkflowHistory, failure: Exception) -> int:
    """The id of the first event today's code does not reproduce: core's message names it for some
    mismatches; otherwise the first workflow task whose commands fail (the shortest failing prefix ending
    at a task boundary), and in it the command event the message quotes, else its first command event."""
    named = re.search(r"HistoryEvent\(id: (\d+)", str(failure))
    if named:
        return int(named.group(1))
    events = history.events
    ends = [i for i, e in enumerate(events) if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED] + [len(events) - 1]
    low, high = 0, len(ends) - 1  # the prefix ending at ends[high] fails (the whole history does)
    while low < high:
        middle = (low + high) // 2
        if await _failure(replayer, WorkflowHistory(history.workflow_id, events[: ends[middle] + 1])) is None:
            low = middle + 1
        else:
            high = middle
    task = [i for i in range(ends[high] + 1) if events[i].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
    commands = events[task[-1] + 1: ends[high] + 1] if task else events[: ends[high] + 1]
    quoted = set(re.findall(r"'([^']+)'", _message(failure)))
    named_event = next((e for e in commands if quoted & _names(e)), None)
    return (named_event or (commands[0] if commands else events[ends[high]])).event_id


def _names(event: HistoryEvent) -> set[str]:
    """What a nondeterminism message may quote to name a command event: activity type and id, timer id,
    child workflow type and id, signal, marker name."""
    kind = event.WhichOneof("attributes")
    attributes = getattr(event, kind) if kind else None
    names = set()
    for field in ("activity_id", "timer_id", "workflow_id", "signal_name", "marker_name"):
        if attributes is not None and hasattr(attributes, field):
            names.add(getattr(attributes, field))
    for field in ("activity_type", "workflow_type"):
        if attributes is not None and hasattr(attributes, field):
            names.add(getattr(attributes, field).name)
    return names - {""}


def _message(failure: Exception) -> str:
    """Core's own one-line message ("[TMPRL1100] Nondeterminism error: ..."), not its Failure struct."""
    text = str(failure)
    found = re.search(r'message: "((?:[^"\\]|\\.)*)"', text)
    return (found.group(1).replace('\\"', '"') if found else text).splitlines()[0]


_runtime: Runtime | None = None


def _quiet_runtime() -> Runtime:
    """A runtime whose core logs only errors: every deliberate failing replay (the search above) would
    otherwise log a warning."""
    global _runtime
    if _runtime is None:
        filter_ = TelemetryFilter(core_level="ERROR", other_level="ERROR")
        _runtime = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=filter_), metrics=None))
    return _runtime
