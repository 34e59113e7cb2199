#!/usr/bin/env bash
# A loop-mounted XFS with reflinks, to measure the block transfer where the
# blocks a file keeps are shared (`FICLONERANGE`), not copied, and to run
# the test that needs one. Root only (mkfs, losetup, mount).
#
#   bench/xfs.sh up [IMAGE] [MOUNT]   # default /var/tmp/lab3-xfs.img (24 GiB, sparse), /mnt/lab3-xfs
#   TMPDIR=/mnt/lab3-xfs cargo bench --bench delta
#   LAB3_TEST_REFLINK_DIR=/mnt/lab3-xfs cargo test --release -p common -- --ignored reflink
#   bench/xfs.sh down [IMAGE] [MOUNT]
#
# The loop device does direct I/O (`losetup --direct-io=on`): reads and
# writes reach the disk below, not the host's page cache of the image.
# The image is sparse but grows on the host's disk by all the bench
# writes (13 GiB after two runs of `cargo bench --bench delta`) and does
# not shrink when files are deleted: `down` deletes it.
set -euo pipefail

what=${1:-up}
img=${2:-/var/tmp/lab3-xfs.img}
mnt=${3:-/mnt/lab3-xfs}

if [ "$(id -u)" -ne 0 ]; then
    echo "bench/xfs.sh: needs root (mkfs, losetup, mount)" >&2
    exit 1
fi
case "$what" in
up)
    if ! command -v mkfs.xfs >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends xfsprogs
    fi
    if mountpoint -q "$mnt"; then
        echo "bench/xfs.sh: $mnt is mounted already"
        exit 0
    fi
    truncate -s 24G "$img"
    mkfs.xfs -q -f -m reflink=1 "$img"
    dev=$(losetup --direct-io=on -f --show "$img")
    mkdir -p "$mnt"
    mount "$dev" "$mnt"
    echo "bench/xfs.sh: XFS (reflink=1) on $dev at $mnt: TMPDIR=$mnt"
    ;;
down)
    dev=$(findmnt -n -o SOURCE "$mnt" || true)
    if [ -n "$dev" ]; then
        umount "$mnt"
        losetup -d "$dev"
    fi
    rm -f "$img"
    ;;
*)
    echo "usage: bench/xfs.sh up|down [IMAGE] [MOUNT]" >&2
    exit 2
    ;;
esac
