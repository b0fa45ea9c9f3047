"""The sandbox: runs one Python program with bubblewrap (`bwrap`) and returns a typed `SandboxRun`.

Invariants: there is no unsandboxed path; without bwrap (or an interpreter under the mounted system folders) a
run is `SandboxUnavailable`. Inside: every namespace unshared (no network at all), the system folders
read-only and nothing else of the host (no /etc, no /root, no home), a private /proc and /tmp, the program
read-only at /program, a per-call scratch copy of the workspace at /work (the only writable place), an empty
environment, a new session, killed with its parent, an unprivileged uid (also outside: as root the worker
drops to it with setpriv before bwrap, so the code's files and processes belong to no one). Rlimits (address
space, processes, CPU seconds, open files, file size) are set inside before the program starts; the worker
enforces the wall clock and the output caps from outside and kills the whole process group. Files come back
only as declared outputs: regular files reached without a symlink, read with O_NOFOLLOW, hashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import settings
from contracts.sandbox import KilledBy, OutputFile, SandboxLimits, SandboxRun
from core.hashing import sha256_bytes
from stores.protocols import StoreError, Workspace

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
WORKSPACE_COPY_BYTES = 50 * 1024**2  # a bigger workspace is refused rather than copied for every call
MAX_OUTPUT_FILE_BYTES = 1024**2
TMP_BYTES = 64 * 1024**2  # the private /tmp is a tmpfs of this size (host memory, so bounded)
KILL_GRACE_SECONDS = 5.0
UID_POLL_SECONDS = 0.05

# Runs first inside the sandbox: lowers the limits, then becomes the program (rlimits survive exec).
LAUNCHER = """
import os, resource, sys
limits = {getattr(resource, name): value for name, value in __import__("json").loads(sys.argv[1]).items()}
for res, (soft, hard) in limits.items():
    resource.setrlimit(res, (soft, hard))
os.execv(sys.executable, [sys.executable, "-E", "-s", "-B", *sys.argv[2:]])
"""

# The Python error a program dies of when a limit makes a call fail (its last stderr line), by limit.
PROCESS_LIMIT_ERROR = "[Errno 11] Resource temporarily unavailable"  # fork/exec at RLIMIT_NPROC
_LIMIT_ERRORS = (
    ("MemoryError", KilledBy.MEMORY),
    (PROCESS_LIMIT_ERROR, KilledBy.PROCESSES),
    ("[Errno 24] Too many open files", KilledBy.OPEN_FILES),
    ("[Errno 27] File too large", KilledBy.FILE_SIZE),
)


class SandboxUnavailable(Exception):
    """bwrap or the interpreter cannot be had on this worker: code is then never run at all."""


@dataclass
class _Capture:
    """One stream's first `keep` bytes, and how much came in all."""

    keep: int
    data: bytearray = field(default_factory=bytearray)
    total: int = 0

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)


class Sandbox:
    """Runs programs in bubblewrap over scratch copies of one workspace."""

    def __init__(self, config: settings.SandboxSettings, workspace: Workspace) -> None:
        self.config = config
        self.workspace = workspace

    @classmethod
    def from_settings(cls, workspace: Workspace) -> "Sandbox":
        return cls(settings.sandbox_settings(), workspace)

    def limits(self, wall_seconds: float | None = None) -> SandboxLimits:
        """The worker's limits, the wall clock cut to `wall_seconds` when that is lower."""
        wall = min(wall_seconds or self.config.wall_seconds, self.config.wall_seconds)
        # CPU seconds are half the wall clock: a busy loop is then stopped by (and named after) the CPU limit.
        return SandboxLimits(wall_seconds=wall, cpu_seconds=max(1, int(wall / 2)), memory_bytes=self.config.memory_bytes)

    def check(self) -> None:
        """Raise SandboxUnavailable unless a run can happen here."""
        bwrap = self.config.bwrap
        if not bwrap or not os.access(bwrap, os.X_OK):
            raise SandboxUnavailable("bubblewrap (bwrap) is not installed on this worker: `make sandbox` or apt-get install bubblewrap")
        python = Path(self.config.python)
        if not python.is_file() or not any(python.is_relative_to(d) for d in SYSTEM_DIRS):
            raise SandboxUnavailable(f"the sandbox interpreter {python} is missing or outside the read-only system folders {SYSTEM_DIRS}")
        if self.config.uid_count < 1 or self.config.uid - self.config.uid_count < 0:
            raise SandboxUnavailable(f"FOREMAN_SANDBOX_UIDS={self.config.uid_count} below FOREMAN_SANDBOX_UID={self.config.uid} is not a pool of uids")
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                raise SandboxUnavailable("running as root needs setpriv (util-linux) to drop to an unprivileged uid")
            self.config.scratch_dir.mkdir(parents=True, exist_ok=True)
            closed = [p for p in (self.config.scratch_dir, *self.config.scratch_dir.parents) if not p.stat().st_mode & stat.S_IXOTH]
            if closed:
                raise SandboxUnavailable(f"the sandbox's uid cannot pass through {closed[0]}: set FOREMAN_SANDBOX_SCRATCH to a folder it can reach")

    async def run(self, program: dict[str, str], entry: str, limits: SandboxLimits, outputs: list[str] = ()) -> tuple[SandboxRun, dict[str, str]]:
        """Run `/program/<entry>` (with the other `program` files beside it, all read-only) in /work, a scratch
        copy of the workspace; (the run, declared outputs that came back as text by path)."""
        self.check()
        self.config.scratch_dir.mkdir(parents=True, exist_ok=True)
        async with self._uid(limits.wall_seconds) as uid:
            return await self._run_as(uid, program, entry, limits, outputs)

    @contextlib.asynccontextmanager
    async def _uid(self, patience: float):
        """A uid of the pool no other run on this machine holds (a lock file each, so across worker processes too):
        runs never share a uid, so on kernels that count the process limit per uid across namespaces (before 5.14) a
        fork bomb in one run cannot starve another, and no run's files or processes are another's. Without root the
        worker cannot switch uids: every run is the worker's own user outside, `uid` inside."""
        if os.geteuid() != 0:
            yield self.config.uid
            return
        locks = self.config.scratch_dir / ".uids"
        locks.mkdir(mode=0o700, exist_ok=True)
        deadline = time.monotonic() + patience
        while True:
            for uid in range(self.config.uid, self.config.uid - self.config.uid_count, -1):
                fd = os.open(locks / str(uid), os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                try:
                    yield uid
                finally:
                    os.close(fd)  # closing drops the lock
                return
            if time.monotonic() > deadline:
                raise SandboxUnavailable(f"all {self.config.uid_count} sandbox uids are busy (FOREMAN_SANDBOX_UIDS)")
            await asyncio.sleep(UID_POLL_SECONDS)

    async def _run_as(self, uid: int, program: dict[str, str], entry: str, limits: SandboxLimits, outputs: list[str]) -> tuple[SandboxRun, dict[str, str]]:
        scratch = Path(tempfile.mkdtemp(prefix="run-", dir=self.config.scratch_dir))
        try:
            scratch.chmod(0o711)  # the sandbox's uid passes through (bwrap resolves the paths as that uid); its name is random
            work, code = scratch / "work", scratch / "program"
            work.mkdir()
            code.mkdir()
            try:
                await asyncio.to_thread(self.workspace.export, str(work), WORKSPACE_COPY_BYTES)
            except StoreError as err:
                return SandboxRun(exit_code=None, stderr=f"the workspace could not be copied: {err}"), {}
            for name, text in program.items():
                (code / name).write_text(text, encoding="utf-8")
            if os.geteuid() == 0:
                _chown_tree(work, uid)  # the unprivileged uid must be able to write its scratch copy
            run = await self._execute(self._command(scratch, entry, limits, uid), limits)
            kept = await asyncio.to_thread(_collect, work, outputs)
            run.outputs = [f for f, _ in kept]
            return run, {f.path: text for f, text in kept if text is not None}
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    def _command(self, scratch: Path, entry: str, limits: SandboxLimits, run_uid: int) -> list[str]:
        uid = str(run_uid)
        drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--"] if os.geteuid() == 0 else []
        mounts: list[str] = []
        for folder in SYSTEM_DIRS:
            path = Path(folder)
            if path.is_symlink():
                mounts += ["--symlink", os.readlink(path), folder]
            elif path.is_dir():
                mounts += ["--ro-bind", folder, folder]
        rlimits = {
            "RLIMIT_AS": [limits.memory_bytes] * 2,
            "RLIMIT_CPU": [limits.cpu_seconds, limits.cpu_seconds + 1],  # SIGXCPU at the soft limit: a named kill
            "RLIMIT_NPROC": [limits.processes] * 2,
            "RLIMIT_NOFILE": [limits.open_files] * 2,
            "RLIMIT_FSIZE": [limits.file_bytes] * 2,
            "RLIMIT_CORE": [0, 0],
        }
        return [
            *drop, str(self.config.bwrap),
            "--unshare-all", "--unshare-user", "--uid", uid, "--gid", uid, "--hostname", "sandbox", "--disable-userns",
            "--die-with-parent", "--new-session", "--clearenv", "--cap-drop", "ALL",
            *mounts, "--proc", "/proc", "--dev", "/dev", "--size", str(TMP_BYTES), "--tmpfs", "/tmp",
            "--ro-bind", str(scratch / "program"), "/program", "--bind", str(scratch / "work"), "/work",
            "--remount-ro", "/", "--chdir", "/work",  # the root bwrap builds is a tmpfs: read-only, so /work and /tmp are all it may write
            self.config.python, "-E", "-s", "-B", "-c", LAUNCHER, json.dumps(rlimits), f"/program/{entry}",
        ]

    async def _execute(self, command: list[str], limits: SandboxLimits) -> SandboxRun:
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={}, start_new_session=True,  # its own process group: one kill reaches setpriv, bwrap and all below
        )
        out, err = _Capture(limits.output_bytes), _Capture(limits.output_bytes)
        too_much = asyncio.Event()

        async def drain(stream: asyncio.StreamReader, capture: _Capture) -> None:
            # Read to EOF whatever happens: an unread pipe would keep the process transport (and `wait()`) open.
            while chunk := await stream.read(65536):
                capture.data += chunk[: max(0, capture.keep - len(capture.data))]
                capture.total += len(chunk)
                if out.total + err.total > limits.kill_output_bytes:
                    too_much.set()

        assert process.stdout is not None and process.stderr is not None
        readers = asyncio.gather(drain(process.stdout, out), drain(process.stderr, err))
        overflow = asyncio.create_task(too_much.wait())
        killed_by: KilledBy | None = None
        try:
            done, _ = await asyncio.wait({readers, overflow}, timeout=limits.wall_seconds, return_when=asyncio.FIRST_COMPLETED)
            if overflow in done:
                killed_by = KilledBy.OUTPUT_SIZE
            elif readers not in done:
                killed_by = KilledBy.WALL_TIME
            if killed_by is None:
                await asyncio.wait_for(process.wait(), timeout=max(0.1, limits.wall_seconds - (time.monotonic() - started)))
        except asyncio.TimeoutError:
            killed_by = KilledBy.WALL_TIME  # streams closed (the program closed them) but it kept running
        finally:
            overflow.cancel()
            if process.returncode is None:
                _kill_group(process.pid)
            try:
                await asyncio.wait_for(process.wait(), timeout=KILL_GRACE_SECONDS)
            finally:
                readers.cancel()
        code = process.returncode if process.returncode is None or process.returncode >= 0 else 128 - process.returncode
        stderr = err.text()
        return SandboxRun(
            exit_code=code, stdout=out.text(), stderr=stderr, stdout_truncated=out.truncated, stderr_truncated=err.truncated,
            timed_out=killed_by is KilledBy.WALL_TIME, killed_by=killed_by or _limit_hit(code, stderr),
            wall_seconds=round(time.monotonic() - started, 3),
        )


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # bwrap dies; --die-with-parent and the pid namespace take the rest
    except ProcessLookupError:
        pass


def _limit_hit(code: int | None, stderr: str) -> KilledBy | None:
    """The limit a finished program was stopped by: a signal the kernel sends for it, or the error it died of."""
    if code == 128 + signal.SIGXCPU:
        return KilledBy.CPU_TIME
    if code == 128 + signal.SIGXFSZ:
        return KilledBy.FILE_SIZE
    if not code:
        return None
    last = next((line for line in reversed(stderr.strip().splitlines()) if line.strip()), "")
    named = next((limit for marker, limit in _LIMIT_ERRORS if marker in last), None)
    if named is None and PROCESS_LIMIT_ERROR in stderr:
        # A fork bomb's children die too, their tracebacks interleaved: the last line may be any of theirs.
        return KilledBy.PROCESSES
    return named


def _chown_tree(root: Path, uid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [".", *dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)


def _collect(work: Path, outputs: list[str]) -> list[tuple[OutputFile, str | None]]:
    """Each declared output: its text, size and SHA-256, or why it does not come back."""
    return [_collect_one(work, path) for path in outputs]


def _collect_one(work: Path, path: str) -> tuple[OutputFile, str | None]:
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        return OutputFile(path=path, error="not a path inside the workspace"), None
    current = work
    for part in relative.parts:  # no component may be a symlink: the file must be the program's own, inside /work
        current = current / part
        try:
            mode = current.lstat().st_mode
        except FileNotFoundError:
            return OutputFile(path=path, error="the program did not write it"), None
        if stat.S_ISLNK(mode):
            return OutputFile(path=path, error="a symlink: outputs must be regular files"), None
    try:
        fd = os.open(current, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        return OutputFile(path=path, error=f"cannot be opened: {err.strerror}"), None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return OutputFile(path=path, error="not a regular file"), None
        if info.st_size > MAX_OUTPUT_FILE_BYTES:
            return OutputFile(path=path, size_bytes=info.st_size, error=f"larger than {MAX_OUTPUT_FILE_BYTES} bytes"), None
        data = handle.read(MAX_OUTPUT_FILE_BYTES + 1)
    entry = OutputFile(path=relative.as_posix(), size_bytes=len(data), sha256=sha256_bytes(data))
    try:
        return entry, data.decode("utf-8")
    except UnicodeDecodeError:
        return entry.model_copy(update={"error": "not UTF-8 text"}), None
