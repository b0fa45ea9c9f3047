"""Contracts for sandboxed code: the limits a run gets, the typed outcome it returns, and the request of the
verifier's `tests` check (test code run against a step's output in the same sandbox).

A limit that stops a run is named in `killed_by`; the run's stdout and stderr are capped and marked truncated;
files come back only as declared outputs, each checked (a regular file inside the scratch copy) and hashed.
"""

from enum import StrEnum

from pydantic import BaseModel, Field


class SandboxLimits(BaseModel):
    """Resource limits of one sandboxed run (rlimits inside the sandbox, plus the wall clock and output caps
    the worker enforces from outside)."""

    wall_seconds: float = Field(default=10.0, gt=0, le=600)
    cpu_seconds: int = Field(default=10, ge=1, le=600)
    memory_bytes: int = Field(default=512 * 1024**2, ge=32 * 1024**2, description="Address space (RLIMIT_AS).")
    processes: int = Field(default=32, ge=1, le=4096, description="Processes of the sandbox's uid (RLIMIT_NPROC).")
    open_files: int = Field(default=64, ge=16, le=65536)
    file_bytes: int = Field(default=16 * 1024**2, ge=1024, description="Largest file it may write (RLIMIT_FSIZE).")
    output_bytes: int = Field(default=64 * 1024, ge=1024, description="stdout and stderr each keep this much.")
    kill_output_bytes: int = Field(default=1024**2, ge=1024, description="More output than this (both streams) kills the run.")


class KilledBy(StrEnum):
    """The limit that stopped a run. Signals and the worker's own kills are certain; `memory`, `processes` and
    `open_files` are read from the Python error the program died of (the limit makes the call fail, not a signal)."""

    WALL_TIME = "wall_time"
    CPU_TIME = "cpu_time"
    OUTPUT_SIZE = "output_size"
    FILE_SIZE = "file_size"
    MEMORY = "memory"
    PROCESSES = "processes"
    OPEN_FILES = "open_files"


class OutputFile(BaseModel):
    """A declared output file after the run: written back to the workspace only if `error` is None."""

    path: str
    size_bytes: int = 0
    sha256: str | None = None
    error: str | None = Field(default=None, description="Why it did not come back (missing, a symlink, not a file, too large, not UTF-8).")


class SandboxRun(BaseModel):
    """What one sandboxed run did."""

    exit_code: int | None = Field(description="The program's exit status (128+N when a signal N ended it); None if never started.")
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False
    killed_by: KilledBy | None = None
    outputs: list[OutputFile] = Field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and self.killed_by is None


RUN_CHECK_TESTS_ACTIVITY = "run_check_tests"  # CheckTestsRequest -> SandboxRun


class CheckTestsRequest(BaseModel):
    """Input of `run_check_tests`: a step's output, and the test code of a `tests` check to run against it.
    In the sandbox the test code is /program/check_tests.py, beside the output (`output.txt`) and the Python in
    it (`solution.py`: its first fenced block, else all of it), so `import solution` works; the working folder
    is a scratch copy of the workspace. Exit status 0 passes."""

    step_id: str
    output: str
    code: str = Field(min_length=1, max_length=200_000)
    limits: SandboxLimits = Field(default_factory=SandboxLimits)
