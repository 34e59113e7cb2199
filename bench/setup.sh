#!/usr/bin/env bash
# Installs what `cargo bench --bench sync` compares lab3 against:
# rsync (rows 2-4) and lsyncd (row 1's peer, optional), from Debian's packages.
# Safe to run again: it installs only what is missing.
set -euo pipefail

need=()
command -v rsync >/dev/null 2>&1 || need+=(rsync)
command -v lsyncd >/dev/null 2>&1 || need+=(lsyncd)
if [ ${#need[@]} -eq 0 ]; then
    echo "bench/setup.sh: rsync and lsyncd are already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "bench/setup.sh: no apt-get here; install ${need[*]} yourself (the bench skips the missing peers)" >&2
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
$sudo apt-get update -qq
# rsync is required for the peer columns; lsyncd only for row 1's peer.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends rsync
if [[ " ${need[*]} " == *" lsyncd "* ]]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends lsyncd ||
        echo "bench/setup.sh: lsyncd is not installable; row 1 will cite PEERS.md instead" >&2
fi
rsync --version | head -1
command -v lsyncd >/dev/null 2>&1 && lsyncd --version | head -1 || true
