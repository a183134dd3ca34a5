#!/bin/sh
# The second stage of the kiln test guest: runs in the host's userspace
# (chrooted by vm/init) with the shared folder as $1. Loads the block and
# device-mapper modules, starts udevd unless told not to (the /dev/zvol
# links come from its rules), then runs the command vm/run.sh
# wrote into the shared folder, in that folder.
share=$1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LC_ALL=C
# systemd tools (udevd, udevadm) decline to act in a chroot unless told
# this one is intended.
export SYSTEMD_IGNORE_CHROOT=1

modprobe -a virtio_blk loop dm_thin_pool ext4 || echo "kiln-vm: a module did not load"

if [ -e "$share/.kiln-vm/no-udev" ]; then
    echo "kiln-vm: udevd not started (--no-udev)"
elif /lib/systemd/systemd-udevd --daemon; then
    udevadm trigger --action=add
    udevadm settle --timeout=30
else
    echo "kiln-vm: udevd did not start"
fi

cd "$share" || exit 125
/bin/bash "$share/.kiln-vm/command"
