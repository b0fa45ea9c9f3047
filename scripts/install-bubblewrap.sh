#!/bin/sh
# bubblewrap (bwrap) for `run_python` and the verifier's `tests` check: without it sandboxed calls fail with
# SandboxUnavailable (code never runs unsandboxed). Does nothing where bwrap is already there.
set -eu

if command -v bwrap >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "bubblewrap (bwrap) is missing: install your system's bubblewrap package" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "bubblewrap is missing and installing it needs root (apt-get install -y bubblewrap)" >&2; exit 1; }
    SUDO=sudo
fi
echo "installing bubblewrap (Debian package bubblewrap) for sandboxed code"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
command -v bwrap >/dev/null 2>&1 || { echo "bubblewrap installed but no bwrap found" >&2; exit 1; }
