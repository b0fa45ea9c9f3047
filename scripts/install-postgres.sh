#!/bin/sh
# PostgreSQL server binaries for the store tests (tests/store_servers.py starts a throw-away cluster from
# them on a free port). Does nothing where initdb is already there; installs Debian's package where not.
set -eu

if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL (initdb) is missing: install your system's PostgreSQL server package" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "PostgreSQL is missing and installing it needs root (apt-get install -y postgresql)" >&2; exit 1; }
    SUDO=sudo
fi
echo "installing PostgreSQL (Debian package postgresql) for the store tests"
# No "main" cluster: the tests make their own, so nothing needs to listen on 5432.
$SUDO mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/foreman-tests.conf >/dev/null
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "postgresql installed but no initdb found" >&2; exit 1; }
