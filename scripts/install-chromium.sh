#!/bin/sh
# Chromium for the console's browser tests (tests/test_console.py drives /usr/bin/chromium through Playwright; Playwright's
# own browser download is never used). Does nothing where it is already there.
set -eu

if [ -x /usr/bin/chromium ]; then
    exit 0
fi
sh "$(dirname "$0")/apt-install.sh" chromium "the web console's browser tests (headless Chromium)"
[ -x /usr/bin/chromium ] || { echo "chromium installed but /usr/bin/chromium is missing" >&2; exit 1; }
