"""Sandboxed code (`run_python`, the `tests` check's runs) under `ActivityEnvironment`: escapes attempted and
contained, each asserting the typed outcome; small limits keep every case within seconds.

Runs as whoever runs the suite (root here): the sandbox must still drop to an unprivileged uid. A dedicated uid
per test session lets the fork-bomb case check that nothing of the sandbox outlives its run.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import settings
from activities.check_tests import CheckTests, solution_code
from activities.sandbox import Sandbox
from activities.tools.idempotency import Idempotency
from activities.tools.python import PythonTools
from activities.verifier import verify_output
from contracts.errors import ErrorType
from contracts.sandbox import CheckTestsRequest, KilledBy, SandboxLimits, SandboxRun
from contracts.tools import RunPythonArgs, SideEffect, ToolResult
from contracts.verify import Decision, NonEmptyCheck, TestsCheck, VerifyRequest
from core.hashing import sha256_text
from core.policy import evaluate
from playbooks import load_default_policy
from stores.content_files import FileContentStore
from stores.idempotency_sqlite import SqliteIdempotencyLedger
from stores.workspace_files import LocalWorkspace

UID = 64_213  # no account has it: whatever runs as it is the sandbox's
SECRET = "TOP-SECRET-9f1c"


@pytest.fixture
def workspace(tmp_path: Path) -> LocalWorkspace:
    root = tmp_path / "workspace"
    (root / "data").mkdir(parents=True)
    (root / "data" / "numbers.txt").write_text("1 2 3 4\n")
    return LocalWorkspace(root)


@pytest.fixture
def sandbox(workspace: LocalWorkspace, sandbox_scratch: Path) -> Sandbox:
    config = settings.sandbox_settings()
    return Sandbox(
        settings.SandboxSettings(bwrap=config.bwrap, python=config.python, uid=UID, scratch_dir=sandbox_scratch,
                                 wall_seconds=3.0, memory_bytes=256 * 1024**2),
        workspace,
    )


@pytest.fixture
def tools(sandbox: Sandbox, workspace: LocalWorkspace, tmp_path: Path) -> PythonTools:
    return PythonTools(sandbox, workspace, FileContentStore(tmp_path / "content"))


async def run_python(tools: PythonTools, code: str, **args: object) -> ToolResult:
    return await ActivityEnvironment().run(tools.run_python, RunPythonArgs(code=code, **args))


async def stopped(tools: PythonTools, code: str, limit: KilledBy) -> SandboxRun:
    """The call fails non-retryably, naming `limit`; the typed run travels in the failure's details."""
    with pytest.raises(ApplicationError) as info:
        await run_python(tools, code)
    err = info.value
    assert err.type == ErrorType.SANDBOX_LIMIT and err.non_retryable and limit.value in err.message
    run = SandboxRun.model_validate(err.details[0])
    assert run.killed_by is limit
    return run


def sandbox_processes() -> list[int]:
    """Live host processes running as the sandbox's uid (a dead pid namespace's init may stay a zombie until the
    host's init reaps it: it runs nothing), after at most a second for the kernel to finish killing."""
    deadline = time.monotonic() + 1.0
    while True:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.stat(f"/proc/{pid}").st_uid == UID and "State:\tZ" not in Path(f"/proc/{pid}/status").read_text():
                    found.append(int(pid))
            except FileNotFoundError:
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


async def test_a_program_runs_unprivileged_with_nothing_of_the_host(tools: PythonTools) -> None:
    code = (
        "import os, subprocess, json\n"
        "print(json.dumps({'id': subprocess.run(['id', '-u'], capture_output=True, text=True).stdout.strip(),"
        " 'uid': os.getuid(), 'root': os.path.exists('/root'), 'home': os.path.exists('/home'), 'etc': os.path.exists('/etc'),"
        " 'top': sorted(os.listdir('/')), 'cwd': os.getcwd(), 'files': sorted(os.listdir('data'))}))\n"
    )
    result = await run_python(tools, code)
    assert result.ok and result.sandbox is not None and result.sandbox.exit_code == 0
    seen = json.loads(result.sandbox.stdout)
    assert seen["id"] == str(UID) and seen["uid"] == UID  # `id -u` inside: not 0
    assert not seen["root"] and not seen["home"] and not seen["etc"]
    assert seen["top"] == sorted(["bin", "dev", "lib", "lib64", "proc", "program", "sbin", "tmp", "usr", "work"])
    assert seen["cwd"] == "/work" and seen["files"] == ["numbers.txt"]  # the scratch copy of the workspace


async def test_reading_etc_shadow_and_root_is_contained(tools: PythonTools) -> None:
    code = (
        "for path in ('/etc/shadow', '/root', '/root/.bashrc', '/etc/passwd'):\n"
        "    try:\n        print(path, open(path).read()[:50])\n"
        "    except OSError as err:\n        print(path, type(err).__name__)\n"
    )
    run = (await run_python(tools, code)).sandbox
    assert run is not None and run.exit_code == 0 and run.killed_by is None
    assert run.stdout.split("\n")[:4] == [
        "/etc/shadow FileNotFoundError", "/root FileNotFoundError", "/root/.bashrc FileNotFoundError", "/etc/passwd FileNotFoundError",
    ]


async def test_writes_outside_the_scratch_copy_fail_and_undeclared_writes_never_come_back(
    tools: PythonTools, workspace: LocalWorkspace,
) -> None:
    outside = workspace.root.parent / "escaped.txt"
    code = (
        "import os\n"
        f"for path in ('/usr/evil', '/program/evil', '/evil', '/proc/evil', '../escaped.txt', '{outside}'):\n"
        "    try:\n        open(path, 'w').write('x'); print(path, 'written')\n"
        "    except OSError as err:\n        print(path, type(err).__name__)\n"
        "open('/tmp/private', 'w').write('gone after the run')\n"
        "open('data/numbers.txt', 'w').write('changed')\n"
        "open('undeclared.txt', 'w').write('never kept')\n"
    )
    run = (await run_python(tools, code)).sandbox
    assert run is not None and run.exit_code == 0, run
    outcomes = dict(line.rsplit(" ", 1) for line in run.stdout.strip().splitlines())
    # Read-only everywhere but /work and /tmp ("../escaped.txt" is /escaped.txt inside); the host path does not exist in there.
    assert set(outcomes.values()) == {"OSError", "FileNotFoundError"}, outcomes
    assert outcomes[str(outside)] == "FileNotFoundError"
    assert not outside.exists()
    assert (workspace.root / "data" / "numbers.txt").read_text() == "1 2 3 4\n"  # the real workspace is untouched
    assert not (workspace.root / "undeclared.txt").exists()


async def test_no_connection_reaches_a_canary_on_127_0_0_1(tools: PythonTools) -> None:
    canary = socket.socket()
    canary.bind(("127.0.0.1", 0))
    canary.listen()
    canary.settimeout(0.2)
    port = canary.getsockname()[1]
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(canary.accept())
            except (TimeoutError, OSError):
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    code = (
        "import socket\n"
        f"for target in [('127.0.0.1', {port}), ('localhost', {port}), ('10.0.2.2', 80), ('example.com', 80)]:\n"
        "    try:\n        socket.create_connection(target, timeout=1); print(target[0], 'connected')\n"
        "    except OSError as err:\n        print(target[0], type(err).__name__)\n"
        "print('interfaces', socket.if_nameindex())\n"
    )
    try:
        run = (await run_python(tools, code)).sandbox
    finally:
        stop.set()
        thread.join(timeout=2)
        canary.close()
    assert run is not None and run.exit_code == 0, run
    assert "connected" not in run.stdout
    assert "interfaces [(1, 'lo')]" in run.stdout  # a network namespace of its own: loopback only, not the host's
    assert accepted == []


async def test_a_fork_bomb_is_stopped_by_the_process_limit_and_leaves_nothing(tools: PythonTools) -> None:
    await stopped(tools, "import os\nwhile True:\n    os.fork()\n", KilledBy.PROCESSES)
    assert sandbox_processes() == []


async def test_a_fork_bomb_that_survives_its_errors_is_killed_at_the_wall_clock(tools: PythonTools) -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    run = await stopped(tools, code, KilledBy.WALL_TIME)
    assert run.timed_out and run.wall_seconds < 3.0 + 2.0
    assert sandbox_processes() == []  # the pid namespace died with bwrap


async def test_a_1_gb_allocation_fails_at_the_memory_limit(tools: PythonTools) -> None:
    run = await stopped(tools, "block = bytearray(1024 ** 3)\n", KilledBy.MEMORY)
    assert run.stderr.rstrip().endswith("MemoryError") and not run.timed_out


async def test_an_infinite_loop_is_stopped_by_the_cpu_limit(tools: PythonTools) -> None:
    run = await stopped(tools, "while True:\n    pass\n", KilledBy.CPU_TIME)
    assert run.exit_code == 128 + 24  # SIGXCPU


async def test_a_sleeping_program_is_killed_at_its_own_wall_clock(tools: PythonTools) -> None:
    with pytest.raises(ApplicationError) as info:
        await run_python(tools, "import time\ntime.sleep(60)\n", timeout_seconds=1)
    run = SandboxRun.model_validate(info.value.details[0])
    assert run.killed_by is KilledBy.WALL_TIME and run.timed_out and 1.0 <= run.wall_seconds < 3.0


async def test_the_environment_is_empty(tools: PythonTools, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREMAN_TEST_SECRET", SECRET)  # in the worker's environment, never in the sandbox's
    run = (await run_python(tools, "import os, json\nprint(json.dumps(dict(os.environ)))\n")).sandbox
    assert run is not None and run.exit_code == 0
    seen = json.loads(run.stdout)
    assert set(seen) <= {"PWD", "LC_CTYPE"}, seen  # what bwrap's --chdir and Python's locale coercion set
    assert SECRET not in run.stdout and "PATH" not in seen and "HOME" not in seen


async def test_proc_shows_only_the_sandbox(tools: PythonTools) -> None:
    code = (
        "import os, json\n"
        "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "print(json.dumps({'pids': pids, 'cmdlines': [open(f'/proc/{p}/cmdline').read() for p in pids],"
        "}))\n"
    )
    run = (await run_python(tools, code)).sandbox
    assert run is not None and run.exit_code == 0, run
    seen = json.loads(run.stdout)
    assert len(seen["pids"]) <= 3 and "1" in seen["pids"]  # bwrap's init and the program: its own pid namespace
    assert not any("pytest" in c for c in seen["cmdlines"])  # the worker's process (and every other host process) is not there


async def test_a_symlink_planted_in_the_workspace_leads_nowhere(tools: PythonTools, workspace: LocalWorkspace, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    (workspace.root / "planted").symlink_to(secret)
    (workspace.root / "rootdir").symlink_to("/root")
    code = (
        "import os\n"
        "for path in ('planted', 'rootdir/.bashrc'):\n"
        "    try:\n        print(path, open(path).read())\n"
        "    except OSError as err:\n        print(path, type(err).__name__, os.readlink(path.split('/')[0]))\n"
        "os.symlink('/etc/hostname', 'leak.txt')\n"
        "os.makedirs('real', exist_ok=True)\nos.symlink('real', 'via')\nopen('real/x.txt', 'w').write('x')\n"
    )
    result = await run_python(tools, code, outputs=["leak.txt", "via/x.txt", "missing.txt"])
    run = result.sandbox
    assert run is not None and run.exit_code == 0 and SECRET not in run.stdout
    assert f"planted FileNotFoundError {secret}" in run.stdout and "rootdir/.bashrc FileNotFoundError /root" in run.stdout
    errors = {f.path: f.error for f in run.outputs}
    assert errors == {"leak.txt": "a symlink: outputs must be regular files", "via/x.txt": "a symlink: outputs must be regular files",
                      "missing.txt": "the program did not write it"}
    assert not (workspace.root / "leak.txt").exists() and not (workspace.root / "via").exists()


async def test_100_mb_of_stdout_is_cut_and_the_program_killed(tools: PythonTools) -> None:
    run = await stopped(tools, "import sys\nsys.stdout.write('x' * (100 * 1024 * 1024))\n", KilledBy.OUTPUT_SIZE)
    assert run.stdout_truncated and len(run.stdout) == SandboxLimits().output_bytes and set(run.stdout) == {"x"}
    assert run.wall_seconds < 3.0


async def test_declared_outputs_come_back_hashed_into_the_workspace(tools: PythonTools, workspace: LocalWorkspace) -> None:
    code = "nums = [int(n) for n in open('data/numbers.txt').read().split()]\nopen('out/sum.txt', 'w').write(str(sum(nums)))\nprint(sum(nums))\n"
    result = await run_python(tools, f"import os\nos.makedirs('out')\n{code}", outputs=["out/sum.txt"])
    assert result.ok and result.sandbox is not None and result.sandbox.stdout == "10\n"
    assert [(f.path, f.sha256, f.error) for f in result.sandbox.outputs] == [("out/sum.txt", sha256_text("10"), None)]
    assert (workspace.root / "out" / "sum.txt").read_text() == "10"
    assert f"output out/sum.txt: 2 bytes, sha256 {sha256_text('10')}" in result.content


async def test_a_failing_program_is_a_result_with_its_exit_code(tools: PythonTools) -> None:
    result = await run_python(tools, "import sys\nprint('partial')\nsys.exit(3)\n")
    assert not result.ok and result.sandbox is not None and result.sandbox.exit_code == 3 and result.sandbox.killed_by is None
    assert result.content.startswith("exit code 3\n--- stdout ---\npartial")


async def test_without_bwrap_nothing_runs_and_the_error_is_typed(workspace: LocalWorkspace, tmp_path: Path, sandbox_scratch: Path) -> None:
    config = settings.SandboxSettings(bwrap=None, python="/usr/bin/python3", uid=UID, scratch_dir=sandbox_scratch,
                                      wall_seconds=3.0, memory_bytes=256 * 1024**2)
    tools = PythonTools(Sandbox(config, workspace), workspace, FileContentStore(tmp_path / "content"))
    marker = workspace.root / "ran.txt"
    with pytest.raises(ApplicationError) as info:
        await run_python(tools, f"open({str(marker)!r}, 'w').write('ran')")
    assert info.value.type == ErrorType.SANDBOX_UNAVAILABLE and info.value.non_retryable and "bubblewrap" in info.value.message
    assert not marker.exists()


# --- the verifier's `tests` check ------------------------------------------------------------------

TEST_CODE = "from solution import sum_squares\nassert sum_squares(3) == 14, sum_squares(3)\nprint('ok')\n"
GOOD = "Here it is:\n```python\ndef sum_squares(n):\n    return sum(i * i for i in range(1, n + 1))\n```\n"
BAD = "```python\ndef sum_squares(n):\n    return sum(range(n))\n```"


def test_the_solution_is_the_first_fenced_block_or_the_whole_output() -> None:
    assert solution_code(GOOD) == "def sum_squares(n):\n    return sum(i * i for i in range(1, n + 1))\n"
    assert solution_code("x = 1\n") == "x = 1\n"


@pytest.mark.parametrize("output, decision, score", [(GOOD, Decision.ACCEPT, 1.0), (BAD, Decision.REFINE, 0.5)])
async def test_tests_run_in_the_sandbox_and_decide_the_verdict(sandbox: Sandbox, output: str, decision: Decision, score: float) -> None:
    run = await ActivityEnvironment().run(CheckTests(sandbox).run_check_tests, CheckTestsRequest(step_id="code", output=output, code=TEST_CODE))
    checks = [NonEmptyCheck(), TestsCheck(code=TEST_CODE)]
    verdict = await ActivityEnvironment().run(
        verify_output, VerifyRequest(step_id="code", goal="g", output=output, checks=checks, test_runs=[run]),
    )
    assert verdict.decision is decision and verdict.score == score
    if decision is Decision.REFINE:
        assert verdict.reasons[0].startswith("tests: the tests failed (exit code 1): ") and "AssertionError: 3" in verdict.reasons[0]


async def test_tests_that_hit_a_limit_fail_the_check_with_the_limit_named(sandbox: Sandbox) -> None:
    limits = SandboxLimits(wall_seconds=1, cpu_seconds=1)
    run = await ActivityEnvironment().run(
        CheckTests(sandbox).run_check_tests, CheckTestsRequest(step_id="code", output=GOOD, code="while True:\n    pass\n", limits=limits),
    )
    verdict = await ActivityEnvironment().run(
        verify_output, VerifyRequest(step_id="code", goal="g", output=GOOD, checks=[TestsCheck(code="x")], test_runs=[run]),
    )
    assert verdict.decision is Decision.REFINE and verdict.score == 0.0 and "stopped by the" in verdict.reasons[0]


async def test_a_tests_check_without_a_run_never_passes() -> None:
    verdict = await ActivityEnvironment().run(
        verify_output, VerifyRequest(step_id="code", goal="g", output=GOOD, checks=[TestsCheck(code=TEST_CODE)]),
    )
    assert verdict.decision is Decision.REFINE and verdict.reasons == ["tests: the tests did not run"]


# --- the default policy ------------------------------------------------------------------------------


@pytest.mark.parametrize("role, outcome", [("coder", "allow"), ("analyst", "gate"), ("reviewer", "deny"), ("drafter", "deny")])
def test_the_default_policy_grants_run_python_to_coders_and_gates_or_denies_the_rest(role: str, outcome: str) -> None:
    decision = evaluate(load_default_policy(), role, "run_python", SideEffect.EXECUTE, RunPythonArgs(code="print(1)"))
    assert decision.outcome == outcome, decision
    if outcome == "gate":
        assert decision.rule is not None and decision.rule.name == "execute-ungranted"


async def test_a_retried_run_returns_the_recorded_run_and_leaves_its_outputs_alone(
    sandbox: Sandbox, workspace: LocalWorkspace, tmp_path: Path,
) -> None:
    """Its effect is the kept outputs: a retry of a call that ran (same key) does not run the program again, which
    would write another output (this one draws a random number) over a later change."""
    once = Idempotency(SqliteIdempotencyLedger(tmp_path / "idempotency.sqlite", 3600))
    tools = PythonTools(sandbox, workspace, FileContentStore(tmp_path / "content"), once)
    code = "import random\nopen('lucky.txt', 'w').write(str(random.random()))\nprint('drawn')"
    args = RunPythonArgs(code=code, outputs=["lucky.txt"], idempotency_key="idem:v2:run_python:" + "1" * 64)
    first = await ActivityEnvironment().run(tools.run_python, args)
    assert first.ok and first.sandbox is not None and first.sandbox.outputs[0].sha256
    lucky = workspace.root / "lucky.txt"
    lucky.write_text("changed by a later step")
    retried = await ActivityEnvironment().run(tools.run_python, args)
    assert retried == first and lucky.read_text() == "changed by a later step"
    again = await ActivityEnvironment().run(tools.run_python, args.model_copy(update={"idempotency_key": "idem:v2:run_python:" + "2" * 64}))
    assert again.ok and lucky.read_text() != "changed by a later step"  # another call runs it again
