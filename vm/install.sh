#!/usr/bin/env bash
# Installs what the VM tier needs, idempotently, on a Debian bookworm host:
# QEMU, Debian's kernel (booted as the guest kernel, never by the host),
# lvm2 with thin-provisioning-tools, busybox and cpio for the guest's
# initramfs, and ZFS: zfs-dkms from the archive's contrib component, which
# dkms compiles for the guest kernel's headers.
#
# Safe to run again: each step is skipped when what it provides is there.
# KILN_VM_NO_ZFS=1 leaves ZFS out (the zfs-zvol half of the tier then fails,
# loudly).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

apt_install() {
    # Other jobs on the machine may hold the dpkg lock: wait for it.
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=900 "$@"
}

updated=0
apt_update() {
    if [ "$updated" = 0 ]; then
        apt-get update -q -o DPkg::Lock::Timeout=900
        updated=1
    fi
}

have_kernel() { compgen -G '/boot/vmlinuz-*-amd64' >/dev/null; }

base=(qemu-system-x86 linux-image-amd64 lvm2 thin-provisioning-tools busybox-static cpio kmod)
missing=()
for pkg in "${base[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ] || ! have_kernel; then
    echo "vm/install.sh: installing ${missing[*]:-linux-image-amd64}"
    apt_update
    apt_install "${base[@]}"
fi

kernel_release() {
    find /lib/modules -mindepth 1 -maxdepth 1 -name '*-amd64' -printf '%f\n' | sort -V | tail -n 1
}

if [ "${KILN_VM_NO_ZFS:-0}" != 1 ]; then
    release=$(kernel_release)
    if ! modinfo -k "$release" zfs >/dev/null 2>&1 || ! command -v zfs >/dev/null 2>&1; then
        sources=/etc/apt/sources.list.d/kiln-vm-contrib.sources
        if ! grep -rqs 'contrib' /etc/apt/sources.list /etc/apt/sources.list.d/; then
            # The same mirror as the machine's main component, contrib only.
            uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources \
                2>/dev/null || true)
            uri=${uri:-http://deb.debian.org/debian}
            codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
            {
                echo "Types: deb"
                echo "URIs: $uri"
                echo "Suites: $codename"
                echo "Components: contrib"
                echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
            } >"$sources"
            updated=0
        fi
        echo "vm/install.sh: installing ZFS (dkms builds it for $release; a few minutes)"
        apt_update
        apt_install linux-headers-amd64 dkms
        apt_install zfs-dkms zfsutils-linux
        if ! modinfo -k "$release" zfs >/dev/null 2>&1; then
            echo "vm/install.sh: zfs.ko was not built for $release" >&2
            exit 1
        fi
    fi
    echo "vm/install.sh: zfs $(modinfo -k "$release" -F version zfs) for $release"
fi
echo "vm/install.sh: kernel $(kernel_release), $(qemu-system-x86_64 --version | head -n 1)"
