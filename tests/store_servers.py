"""Real servers for the store backends' tests, on 127.0.0.1 and free ports: PostgreSQL from the machine's
own binaries in a temporary data directory, and moto's S3 server in a subprocess (real HTTP, no patched client).

PostgreSQL refuses to run as root, so as root its processes run as the `postgres` account (which Debian's
package creates) or else `nobody`, switched by `subprocess` itself (no sudo, no login shell). The binaries
come from `scripts/install-postgres.sh` (run by `make install`/`make test`). Startup is bounded; shutdown is
a fast stop, then a kill; the data directory is removed after.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from tests.llama_server import free_port

STARTUP_TIMEOUT_SECONDS = 30.0
SUPERUSER = "foreman"


class ServerUnavailable(RuntimeError):
    """A test server could not be started; the message says why and what to install."""


def postgres_bindir() -> Path | None:
    """The newest Debian PostgreSQL's bin folder (initdb is not on PATH there), else wherever initdb is on PATH."""
    versions = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    if versions:
        return max(versions, key=lambda bindir: int(bindir.parent.name) if bindir.parent.name.isdigit() else 0)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def _unprivileged_account() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as when we are root; None when we are not (it then runs as us)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise ServerUnavailable("running as root and there is no 'postgres' or 'nobody' account to run PostgreSQL as")


def _end(process: subprocess.Popen | None, stop_signal: signal.Signals) -> None:
    """Ask `process` to stop; kill it if it has not within 15 s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(stop_signal)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class PostgresServer:
    """A throw-away PostgreSQL cluster (fsync off: test data only) with one database, `foreman`."""

    def __init__(self) -> None:
        self.port = free_port()
        # Not under pytest's tmp_path (nor a root-only TMPDIR): as root, the server's account must reach the folder.
        self.root = Path(tempfile.mkdtemp(prefix="foreman-pg-", dir="/tmp" if os.geteuid() == 0 else None))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.process: subprocess.Popen | None = None

    def url(self, database: str = "foreman", **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}" + (f"?{query}" if query else "")

    def start(self) -> PostgresServer:
        bindir = postgres_bindir()
        if bindir is None:
            raise ServerUnavailable("PostgreSQL is not installed (no initdb): run `make install` or `apt-get install -y postgresql`")
        account = _unprivileged_account()
        as_account: dict = {} if account is None else {"user": account[0], "group": account[1], "extra_groups": []}
        if account is not None:
            os.chown(self.root, *account)
        initdb = subprocess.run(
            [str(bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"],
            cwd=self.root, capture_output=True, text=True, timeout=120, **as_account,
        )
        if initdb.returncode != 0:
            raise ServerUnavailable(f"initdb failed ({initdb.returncode}): {initdb.stderr.strip() or initdb.stdout.strip()}")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.root),
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                cwd=self.root, stdout=log, stderr=subprocess.STDOUT, **as_account,
            )
        self._wait_ready()
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute("CREATE DATABASE foreman")
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ServerUnavailable(f"postgres exited with {self.process.returncode}:\n{_tail(self.log)}")
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise ServerUnavailable(f"postgres did not accept connections in {STARTUP_TIMEOUT_SECONDS:.0f} s:\n{_tail(self.log)}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        _end(self.process, signal.SIGINT)  # SIGINT is postgres's "fast" shutdown: it does not wait for clients
        shutil.rmtree(self.root, ignore_errors=True)


class MotoS3Server:
    """moto's server mode in its own process: an S3 endpoint that the store reaches over HTTP like MinIO."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        # A file, not a pipe: werkzeug logs every request, and a full pipe would stall the server.
        self.log = Path(tempfile.mkstemp(prefix="foreman-moto-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def start(self) -> MotoS3Server:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            if self.process.poll() is not None:
                raise ServerUnavailable(f"moto server exited with {self.process.returncode}:\n{_tail(self.log)}")
            try:
                httpx.get(f"{self.endpoint_url}/moto-api/", timeout=2)
                return self
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise ServerUnavailable(f"moto server did not answer in {STARTUP_TIMEOUT_SECONDS:.0f} s (pip install 'moto[server]')") from None
                time.sleep(0.1)

    def stop(self) -> None:
        _end(self.process, signal.SIGTERM)
        self.log.unlink(missing_ok=True)
