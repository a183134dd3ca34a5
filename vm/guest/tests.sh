#!/usr/bin/env bash
# Runs in the VM tier's guest: prepares the driver's storage on the
# scratch disk /dev/vda, then runs the given test binaries' VM tests
# (the ones ignored on the host) against it.
#
#   vm/guest/tests.sh lvm-thin|zfs-zvol TEST_BINARY [FILTER]...
#
# lvm-thin gets the volume group KILN_VM_VG, zfs-zvol the pool
# KILN_VM_ZPOOL; the tests make their own thin pools and datasets in them.
set -euo pipefail
driver=$1 binary=$2
shift 2

case $driver in
    lvm-thin)
        pvcreate --yes --force --force /dev/vda >/dev/null
        vgcreate --yes kilnvm /dev/vda >/dev/null
        export KILN_VM_VG=kilnvm
        ;;
    zfs-zvol)
        modprobe zfs
        zpool create -f -O mountpoint=none kilnvm /dev/vda
        export KILN_VM_ZPOOL=kilnvm
        ;;
    *)
        echo "vm/guest/tests.sh: unknown driver $driver" >&2
        exit 2
        ;;
esac

echo "kiln-vm: $driver storage ready, running $(basename "$binary")"
# Two threads: the guest has two emulated CPUs, and each test is mostly
# waiting on LVM or ZFS.
exec "$binary" --ignored --test-threads=2 "$@"
