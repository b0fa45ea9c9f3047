"""`run_check_tests`: the verifier's `tests` check runs its test code against a step's output in the sandbox.

Invariants: the same sandbox as `run_python` (`activities.sandbox`), never anything else; the test program sees
the step's output read-only beside it (`output.txt`, and `solution.py`: the Python in it) and a scratch copy of
the workspace as its working folder. Whatever the tests do, even hit a limit, comes back as the typed run for the
verdict; only a worker without a sandbox fails (SandboxUnavailable, non-retryable).
"""

from __future__ import annotations

import re

from temporalio import activity

from activities.sandbox import Sandbox, SandboxUnavailable
from activities.tools.registry import tool_error
from contracts.errors import ErrorType
from contracts.sandbox import RUN_CHECK_TESTS_ACTIVITY, CheckTestsRequest, SandboxRun

_FENCED = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


def solution_code(output: str) -> str:
    """The Python in a step's output: its first fenced code block, else the whole output."""
    found = _FENCED.search(output)
    return found.group(1) if found else output


class CheckTests:
    """`run_check_tests`, bound to a sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    @activity.defn(name=RUN_CHECK_TESTS_ACTIVITY)
    async def run_check_tests(self, request: CheckTestsRequest) -> SandboxRun:
        """Run a `tests` check's code against a step's output; exit 0 passes."""
        program = {"check_tests.py": request.code, "solution.py": solution_code(request.output), "output.txt": request.output}
        try:
            run, _ = await self._sandbox.run(program, "check_tests.py", request.limits)
        except SandboxUnavailable as err:
            raise tool_error(ErrorType.SANDBOX_UNAVAILABLE, str(err)) from err
        return run
