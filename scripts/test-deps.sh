#!/usr/bin/env bash
# Installs the system tools some integration tests need beyond the Rust
# toolchain: mkfs.ext4 (e2fsprogs) for tests/sync_precision.rs, which
# loop-mounts a small ext4 with whole-second mtimes, and mount/losetup
# (util-linux, mount); strace for tests/power_cut.rs, which checks from a
# trace that received files and folders are flushed to disk in order;
# mkfs.fat (dosfstools) and fusefat for tests/sync_names.rs, which mounts a
# FAT image through FUSE as a folder without permission bits that ignores
# letter case and refuses the names Windows refuses; setpriv (util-linux)
# for tests/sync_unreadable.rs, which runs a server as root without the
# capabilities that override file modes; ip (iproute2) for
# tests/two_hosts.rs, which puts each server in a network namespace of its
# own. .ci/run calls it before the tests;
# the test calls it too when mkfs.ext4 is missing. Safe to run again: it installs only what
# is missing, and without apt-get it says so and leaves the tests to skip.
set -euo pipefail

need=()
command -v mkfs.ext4 >/dev/null 2>&1 || [ -x /sbin/mkfs.ext4 ] || [ -x /usr/sbin/mkfs.ext4 ] || need+=(e2fsprogs)
{ command -v losetup >/dev/null 2>&1 || [ -x /sbin/losetup ] || [ -x /usr/sbin/losetup ]; } \
    && command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v mount >/dev/null 2>&1 || [ -x /bin/mount ] || need+=(mount)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v mkfs.fat >/dev/null 2>&1 || [ -x /sbin/mkfs.fat ] || [ -x /usr/sbin/mkfs.fat ] || need+=(dosfstools)
command -v fusefat >/dev/null 2>&1 || need+=(fusefat)
command -v ip >/dev/null 2>&1 || [ -x /sbin/ip ] || [ -x /usr/sbin/ip ] || need+=(iproute2)
if [ ${#need[@]} -eq 0 ]; then
    echo "scripts/test-deps.sh: mkfs.ext4, losetup, setpriv, mount, strace, mkfs.fat, fusefat and ip are installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test-deps.sh: no apt-get here; install ${need[*]} yourself (the loop-mount tests skip without them)" >&2
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "scripts/test-deps.sh: not root and no sudo; install ${need[*]} yourself" >&2
        exit 0
    fi
    sudo="sudo"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
