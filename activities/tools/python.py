"""`run_python`: run a model-written Python program in the sandbox (`activities.sandbox`) and report it.

Invariants: the code never runs outside bubblewrap (no sandbox: SandboxUnavailable, non-retryable); a run a limit
stopped is a non-retryable SandboxLimitExceeded naming the limit, with the typed run in the failure's details;
any other run is a `ToolResult` carrying the typed `SandboxRun` (ok when it exited 0). Declared outputs that came
back are written to the workspace through the store (which confines them and refuses symlinks), each hashed.

Its effect is the kept outputs, so a run is done once per call (`Idempotency`, by the call's stamped key): a retry
after a run that finished (the worker died before reporting it) returns the recorded run (exit code, streams, the
outputs' hashes) instead of running the program again, which could write other outputs (programs read the clock,
draw random numbers) over files a later step may already have changed. A run stopped by a limit is a failure and
is not recorded; an attempt that dies before the record runs the program again on a fresh scratch copy and
rewrites its outputs (each write atomic), so what the call reports is always what is in the workspace.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from activities.content_store import tool_result
from activities.sandbox import Sandbox, SandboxUnavailable
from activities.tools.idempotency import Idempotency
from activities.tools.registry import run_store, tool_activity, tool_error
from contracts.errors import ErrorType
from contracts.sandbox import OutputFile, SandboxRun
from contracts.tools import RunPythonArgs, ToolResult
from stores.protocols import ContentStore, Workspace

PROGRAM = "main.py"


def report(run: SandboxRun) -> str:
    """What the model sees: exit code, both streams (marked when cut), and the files kept."""
    lines = [f"exit code {run.exit_code}" + (f" (stopped by the {run.killed_by.value} limit)" if run.killed_by else "")]
    for name, text, cut in (("stdout", run.stdout, run.stdout_truncated), ("stderr", run.stderr, run.stderr_truncated)):
        if text or cut:
            lines += [f"--- {name}{' (truncated)' if cut else ''} ---", text.rstrip("\n")]
    for f in run.outputs:
        lines.append(f"output {f.path}: " + (f"not kept: {f.error}" if f.error else f"{f.size_bytes} bytes, sha256 {f.sha256}"))
    return "\n".join(lines)


class PythonTools:
    """`run_python`, bound to a sandbox (over the workspace it copies) and the content store."""

    def __init__(self, sandbox: Sandbox, workspace: Workspace, content: ContentStore, once: Idempotency | None = None) -> None:
        self._sandbox = sandbox
        self._workspace = workspace
        self._content = content
        self._once = once or Idempotency(None)

    @tool_activity("run_python")
    async def run_python(self, args: RunPythonArgs) -> ToolResult:
        """Run a Python 3 program in a sandbox; returns its exit code, stdout and stderr, and keeps declared outputs."""
        return await self._once.once("run_python", args.idempotency_key, lambda: self._run(args))

    async def _run(self, args: RunPythonArgs) -> ToolResult:
        try:
            run, texts = await self._sandbox.run({PROGRAM: args.code}, PROGRAM, self._sandbox.limits(args.timeout_seconds), args.outputs)
        except SandboxUnavailable as err:
            raise tool_error(ErrorType.SANDBOX_UNAVAILABLE, str(err)) from err
        if run.killed_by is not None:
            raise ApplicationError(
                f"the program was stopped by the sandbox's {run.killed_by.value} limit\n{report(run)}"[:4_000],
                run.model_dump(mode="json"), type=ErrorType.SANDBOX_LIMIT.value, non_retryable=True,
            )
        run.outputs = [await self._keep(entry, texts.get(entry.path)) for entry in run.outputs]
        result = tool_result(self._content, "run_python", report(run), ok=run.exit_code == 0)
        return result.model_copy(update={"sandbox": run})

    async def _keep(self, entry: OutputFile, text: str | None) -> OutputFile:
        """Write one output that came back into the workspace; the store may still refuse it (a symlinked folder)."""
        if text is None:
            return entry
        try:
            written = await run_store(self._workspace.write_text, entry.path, text)
        except ApplicationError as err:
            return entry.model_copy(update={"error": f"not written: {err.message}"})
        return entry.model_copy(update={"path": written.path, "sha256": written.sha256, "size_bytes": written.size_bytes})
