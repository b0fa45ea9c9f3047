"""`python -m console` serves the web console (FOREMAN_CONSOLE_ADDRESS/PORT, default http://localhost:8090);
`python -m console adduser NAME [--key FILE]` adds a user (or sets their password) in FOREMAN_CONSOLE_USERS."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

import settings
from console.sessions import SessionStoreError
from console.users import UsersFileError, add_user


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m console", description="Foreman's web console.")
    sub = root.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the console (the default)")
    serve.add_argument("--address", help="interface to listen on (default FOREMAN_CONSOLE_ADDRESS or localhost)")
    serve.add_argument("--port", type=int, help="port (default FOREMAN_CONSOLE_PORT or 8090)")
    add = sub.add_parser("adduser", help="add a user, or set an existing user's password")
    add.add_argument("name")
    add.add_argument("--key", help="the user's Ed25519 private key (default: the one `starter.py keygen --as NAME` made, if any)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input (one line)")
    return root


def adduser(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return 2
    path = settings.console_users_path()
    try:
        add_user(path, args.name, password, args.key)
    except UsersFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.name} can log in to the console (users file: {path})")
    return 0


async def serve(address: str, port: int) -> int:
    from console.app import create_app, server
    from temporal_client import connect

    try:
        app = create_app()
    except (UsersFileError, SessionStoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        app.state.client = await connect()
    except Exception as err:  # noqa: BLE001 - any connection failure gets the same one-line answer
        print(f"error: cannot reach Temporal at {settings.temporal_address()} ({type(err).__name__}: {err})", file=sys.stderr)
        return 3
    if not app.state.users.users():
        print(f"note: no users in {settings.console_users_path()}: add one with python -m console adduser NAME", file=sys.stderr)
    print(f"Foreman console on http://{address}:{port} (Temporal at {settings.temporal_address()})", file=sys.stderr)
    await server(app, address, port).serve()
    return 0


def main() -> int:
    args = parser().parse_args()
    if args.command == "adduser":
        return adduser(args)
    try:
        address = getattr(args, "address", None) or settings.console_address()
        port = getattr(args, "port", None) or settings.console_port()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return asyncio.run(serve(address, port))


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: the Temporal client's Rust threads can abort it (SIGABRT, sdk-python#300).
    os._exit(code)
