#!/usr/bin/env bash
# Boots Debian's kernel in a QEMU guest that runs this host's own userspace,
# runs one command there and exits with that command's exit code.
#
#   vm/run.sh [--disk FILE]... [--share DIR] [--env NAME=VALUE]... [--no-udev]
#             [--memory MIB] [--timeout SECONDS] -- PROGRAM [ARG]...
#
# The guest's root is the host's / shared read-only over 9p, under an
# overlay whose upper layer is guest RAM: the guest may write anywhere
# (/etc/lvm, /tmp, /run) and nothing reaches the host. DIR (default: a
# fresh temporary folder) is shared read-write at the same path, and is the
# command's working directory; each --disk FILE is a raw virtio disk
# (/dev/vda, /dev/vdb, ... in order). The guest loads virtio_blk and
# dm-thin-pool, starts udevd (unless --no-udev: LVM then makes its own
# device nodes, several times faster under emulation), and sets KILN_VM=1.
#
# QEMU emulates the CPU (TCG): the host's KVM cannot boot a stock kernel.
# Exit codes: the command's; 124 when the guest ran past the timeout;
# 125 when it stopped without reporting one (a panic, a boot failure).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
disks=() envs=() share="" memory=3072 timeout_s=900 udev=1
while [ $# -gt 0 ]; do
    case $1 in
        --disk) disks+=("$(realpath "$2")"); shift 2 ;;
        --share) share=$(realpath "$2"); shift 2 ;;
        --env) envs+=("$2"); shift 2 ;;
        --no-udev) udev=0; shift ;;
        --memory) memory=$2; shift 2 ;;
        --timeout) timeout_s=$2; shift 2 ;;
        --) shift; break ;;
        *) echo "vm/run.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
if [ $# -eq 0 ]; then
    echo "vm/run.sh: no command given" >&2
    exit 2
fi

release=${KILN_VM_KERNEL:-$(find /lib/modules -mindepth 1 -maxdepth 1 -name '*-amd64' \
    -printf '%f\n' | sort -V | tail -n 1)}
if [ -z "$release" ] || [ ! -f "/boot/vmlinuz-$release" ]; then
    echo "vm/run.sh: no Debian kernel in /boot (run vm/install.sh)" >&2
    exit 2
fi
cache=${KILN_VM_CACHE:-$here/../target/vm}
mkdir -p "$cache"
kernel=$cache/vmlinux-$release
initrd=$cache/initrd-$release-$(cat "$here/init" | sha256sum | cut -c1-12).cpio.gz

# An ELF vmlinux boots through its PVH entry point, about twice as fast
# under TCG as the self-decompressing bzImage.
if [ ! -s "$kernel" ]; then
    python3 - "/boot/vmlinuz-$release" "$kernel.part" <<'PY'
import lzma, sys
image = open(sys.argv[1], "rb").read()
start = image.find(b"\xfd7zXZ\x00")  # Debian compresses its kernels with xz
if start < 0:
    sys.exit("vm/run.sh: no xz stream in " + sys.argv[1])
elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(image[start:])
open(sys.argv[2], "wb").write(elf)
PY
    mv "$kernel.part" "$kernel"
fi

# The initramfs: static busybox, the modules the first stage needs (virtio
# PCI, 9p over virtio, overlayfs) and the first stage itself, vm/init.
if [ ! -s "$initrd" ]; then
    tree=$(mktemp -d)
    trap 'rm -rf "$tree"' EXIT
    mkdir -p "$tree/bin" "$tree/proc" "$tree/sys" "$tree/dev" "$tree/newroot"
    cp /bin/busybox "$tree/bin/busybox"
    for applet in sh mount mkdir chroot poweroff insmod cat dd printf sync sleep echo; do
        ln -s busybox "$tree/bin/$applet"
    done
    for module in virtio_pci 9pnet_virtio 9p overlay; do
        modprobe --set-version "$release" --show-depends "$module"
    done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' >"$tree/modules"
    while read -r ko; do
        mkdir -p "$tree$(dirname "$ko")"
        cp "$ko" "$tree$ko"
    done <"$tree/modules"
    install -m 0755 "$here/init" "$tree/init"
    (cd "$tree" && find . | cpio --quiet -o -H newc | gzip -1) >"$initrd.part"
    mv "$initrd.part" "$initrd"
    rm -rf "$tree"
    trap - EXIT
fi

if [ -z "$share" ]; then
    share=$(mktemp -d "${TMPDIR:-/tmp}/kiln-vm-share.XXXXXX")
fi
# The second stage (vm/guest.sh) runs this script: the environment and the
# command, quoted.
control=$share/.kiln-vm
mkdir -p "$control"
rm -f "$control/no-udev"
if [ "$udev" = 0 ]; then
    touch "$control/no-udev"
fi
{
    echo "export KILN_VM=1"
    for kv in "${envs[@]}"; do
        printf 'export %q=%q\n' "${kv%%=*}" "${kv#*=}"
    done
    printf 'exec'
    printf ' %q' "$@"
    printf '\n'
} >"$control/command"

drives=()
for d in "${disks[@]}"; do
    drives+=(-drive "file=$d,if=virtio,format=raw,cache=unsafe,discard=unmap")
done

set +e
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp "$(nproc)" -m "$memory" \
    -nographic -no-reboot -nic none \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 quiet panic=-1 kiln.share=$share kiln.stage2=$here/guest.sh" \
    -virtfs "local,path=/,mount_tag=kilnroot,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$share,mount_tag=kilnshare,security_model=none,multidevs=remap" \
    "${drives[@]}" </dev/null
rc=$?
set -e
rm -rf "$control"

# isa-debug-exit makes QEMU exit with 2*code+1 for the code the guest wrote.
if [ "$rc" = 124 ]; then
    echo "vm/run.sh: the guest ran past ${timeout_s}s and was stopped" >&2
    exit 124
fi
if [ $((rc % 2)) = 1 ]; then
    exit $((rc / 2))
fi
echo "vm/run.sh: the guest stopped without an exit code (QEMU exited $rc)" >&2
exit 125
