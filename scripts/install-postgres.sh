#!/bin/sh
# PostgreSQL server binaries for the store tests (tests/store_servers.py starts a throw-away cluster from
# them on a free port). Does nothing where initdb is already there; installs Debian's package where not.
set -eu

if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; }; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    # No "main" cluster: the tests make their own, so nothing needs to listen on 5432.
    $SUDO mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/foreman-tests.conf >/dev/null
fi
sh "$(dirname "$0")/apt-install.sh" postgresql "the store tests (a PostgreSQL server)"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "postgresql installed but no initdb found" >&2; exit 1; }
