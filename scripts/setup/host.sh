#!/usr/bin/env bash
# Installs the host tools tier 1 needs: e2fsprogs, util-linux (losetup,
# mount), xfsprogs (a reflink-capable pool for clone tests), qemu-img and
# qemu-storage-daemon (the qcow2 plugin; Debian 12 ships the daemon in
# qemu-system-common, newer qemu-utils in itself), sqlite3 (inspecting
# catalogs in crash tests), zstd and time (the benchmarks).
set -euo pipefail
need=()
for pair in mkfs.ext4:e2fsprogs losetup:mount mkfs.xfs:xfsprogs qemu-img:qemu-utils \
            qemu-storage-daemon:qemu-system-common sqlite3:sqlite3 zstd:zstd; do
    bin=${pair%%:*} pkg=${pair#*:}
    command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || [ -x "/sbin/$bin" ] || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
command -v cargo-nextest >/dev/null 2>&1 || cargo install cargo-nextest --locked
