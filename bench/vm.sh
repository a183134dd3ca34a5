#!/usr/bin/env bash
# Clone and snapshot of a 10 GiB volume holding 1 GiB, on lvm-thin and on
# zfs-zvol, next to ext4-file in the same guest (the host kernel has
# neither device-mapper thin nor ZFS, so all of it runs in the VM tier's
# QEMU guest, under emulation).
#
#   bench/vm.sh          (as root; installs with vm/install.sh, builds kilnd and kiln;
#                         KILN_BENCH_SKIP_BUILD=1 uses the release binaries as they are)
#
# One boot per driver. In each, a kilnd with three pools: the driver's, an
# ext4-file pool on a reflink-capable XFS disk (clones by reflink), and an
# ext4-file pool on an ext4 disk, which has no reflinks, so clones are
# hole-preserving copies (the baseline). Each pool gets
# a 10 GiB volume with 1 GiB of files written through a sandbox mount;
# then `kiln volume clone` is timed, and the snapshot the driver takes for
# a backup (lvcreate --snapshot, zfs snapshot, cp --reflink / a sparse
# copy) is timed on its own. Prints seconds and the ratio to the copy.
set -euo pipefail

if [ "${1:-}" = --in-guest ]; then
    driver=$2 bin=$3
    cd "$(mktemp -d)"
    udev_cfg=()
    if [ ! -e /run/udev/control ]; then
        udev_cfg=(--config 'activation { udev_sync = 0 udev_rules = 0 }')
    fi
    case $driver in
        lvm-thin)
            pvcreate -y /dev/vda >/dev/null
            vgcreate "${udev_cfg[@]}" kbench /dev/vda >/dev/null
            lvcreate "${udev_cfg[@]}" --yes --type thin-pool -L 14g -n pool kbench >/dev/null
            pool_yaml="    driver: lvm-thin\n    volume_group: kbench\n    thin_pool: pool\n"
            ;;
        zfs-zvol)
            modprobe zfs
            zpool create -f -O mountpoint=none kbench /dev/vda
            zfs create kbench/kiln
            pool_yaml="    driver: zfs-zvol\n    dataset: kbench/kiln\n"
            ;;
    esac
    modprobe xfs
    mkfs.xfs -q -f -m reflink=1 /dev/vdb
    mkdir -p xfs ext4
    mount /dev/vdb xfs
    mkfs.ext4 -q -F /dev/vdc
    mount /dev/vdc ext4
    mkdir -p xfs/reflink ext4/copy

    printf "data_dir: $PWD/data\nlisten:\n  socket: $PWD/kiln.sock\ndefault_pool: vol\n" >config.yaml
    printf "quotas:\n  default_mib: 1048576\n" >>config.yaml
    printf "pools:\n  vol:\n$pool_yaml" >>config.yaml
    printf "  reflink:\n    driver: ext4-file\n    path: $PWD/xfs/reflink\n    reflink: always\n" \
        >>config.yaml
    printf "  copy:\n    driver: ext4-file\n    path: $PWD/ext4/copy\n    reflink: never\n" \
        >>config.yaml
    "$bin/kilnd" --config config.yaml >kilnd.log 2>&1 &
    for _ in $(seq 600); do
        "$bin/kiln" --socket kiln.sock pool list >/dev/null 2>&1 && break
        sleep 0.2
    done
    kiln() { "$bin/kiln" --socket kiln.sock "$@"; }

    # 1 GiB of incompressible data: 64 MiB of random bytes, 16 times.
    head -c 64M /dev/urandom >chunk
    now() { date +%s.%N; }
    results=()
    for pool in vol reflink copy; do
        kiln volume create --name "v-$pool" --size 10G --pool "$pool" >/dev/null
        dev=$(kiln --json sandbox create --name "s-$pool" --volume "v-$pool:/data" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["volumes"][0]["device"])')
        mkdir -p "m-$pool"
        mount "$dev" "m-$pool"
        for i in $(seq 16); do cp chunk "m-$pool/f$i"; done
        umount "m-$pool"
        kiln sandbox destroy "s-$pool" --yes >/dev/null
        sync

        t0=$(now)
        kiln volume clone "v-$pool" --name "c-$pool" >/dev/null
        t1=$(now)
        # The snapshot the driver takes for a backup, by the driver's own
        # command (kiln takes it inside a backup, which also reads it).
        case $pool in
            vol)
                if [ "$driver" = lvm-thin ]; then
                    lv=$(lvs --noheadings -o lv_name -S 'lv_tags=kiln' kbench |
                        awk '{print $1}' | head -n 1)
                    t2=$(now)
                    lvcreate "${udev_cfg[@]}" --yes -s -n bsnap -pr "kbench/$lv" >/dev/null
                else
                    zv=$(zfs list -Hp -t volume -o name -r kbench/kiln | head -n 1)
                    t2=$(now)
                    zfs snapshot "$zv@bsnap"
                fi
                ;;
            reflink)
                img=$(ls xfs/reflink/*.img | head -n 1)
                t2=$(now)
                cp --reflink=always "$img" xfs/reflink/bsnap
                ;;
            copy)
                img=$(ls ext4/copy/*.img | head -n 1)
                t2=$(now)
                cp --reflink=never --sparse=always "$img" ext4/copy/bsnap
                ;;
        esac
        t3=$(now)
        results+=("$pool $(echo "$t1 - $t0" | bc) $(echo "$t3 - $t2" | bc)")
    done
    kill %1 || true
    echo "BENCH $driver"
    for r in "${results[@]}"; do echo "BENCH $r"; done
    exit 0
fi

cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
vm/install.sh >/dev/null
if [ "${KILN_BENCH_SKIP_BUILD:-0}" != 1 ]; then
    cargo build --locked --release -p kilnd -p kiln-cli
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT

for driver in lvm-thin zfs-zvol; do
    truncate -s 16G "$work/a.img" "$work/b.img" "$work/c.img"
    udev=()
    if [ "$driver" = lvm-thin ]; then udev=(--no-udev); fi
    vm/run.sh "${udev[@]}" --memory 4096 --timeout 1800 --disk "$work/a.img" \
        --disk "$work/b.img" --disk "$work/c.img" --share "$work" -- \
        "$PWD/bench/vm.sh" --in-guest "$driver" "$PWD/target/release" >"$work/$driver.log" 2>&1 ||
        { tail -n 40 "$work/$driver.log"; exit 1; }
    rm -f "$work/a.img" "$work/b.img" "$work/c.img"
    grep -a '^BENCH' "$work/$driver.log" | sed 's/^BENCH //' | awk -v d="$driver" '
        NF == 1 { next }
        { clone[$1] = $2; snap[$1] = $3 }
        END {
            printf "%s guest, 10 GiB volume holding 1 GiB (seconds; x = the copy'"'"'s time / this)\n", d
            printf "  %-22s %10s %8s %10s %8s\n", "pool", "clone", "x", "snapshot", "x"
            n["vol"] = d; n["reflink"] = "ext4-file reflink"; n["copy"] = "ext4-file copy"
            split("vol reflink copy", order, " ")
            for (i = 1; i <= 3; i++) {
                p = order[i]
                printf "  %-22s %10.2f %8.1f %10.2f %8.1f\n", n[p], clone[p], clone["copy"] / clone[p],
                    snap[p], snap["copy"] / snap[p]
            }
        }'
done
