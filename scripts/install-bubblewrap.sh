#!/bin/sh
# bubblewrap (bwrap) for `run_python` and the verifier's `tests` check: without it sandboxed calls fail with
# SandboxUnavailable (code never runs unsandboxed). Does nothing where bwrap is already there.
set -eu

if command -v bwrap >/dev/null 2>&1; then
    exit 0
fi
sh "$(dirname "$0")/apt-install.sh" bubblewrap "sandboxed code (run_python, the tests check)"
command -v bwrap >/dev/null 2>&1 || { echo "bubblewrap installed but no bwrap found" >&2; exit 1; }
