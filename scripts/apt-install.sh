#!/bin/sh
# Install one Debian package the set-up needs (the callers first check whether it is already there):
#   sh scripts/apt-install.sh PACKAGE "WHAT IT IS FOR"
# Without apt-get, or without root and sudo, it says what to install and fails.
set -eu

package="$1"
purpose="$2"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "$package is missing: install your system's $package package ($purpose)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "$package is missing and installing it needs root (apt-get install -y $package)" >&2; exit 1; }
    SUDO=sudo
fi
echo "installing $package (Debian package) for $purpose"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
