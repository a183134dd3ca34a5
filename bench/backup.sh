#!/usr/bin/env bash
# Backup benchmark: kiln against restic and against a whole-image zstd
# upload, in one run, against the same local S3 server (moto).
#
# A 10 GiB ext4 volume holding 300 MiB of files (random, so nothing
# compresses); each tool backs it up, then again after 50 MiB of the files
# changed, then restores. Printed for each: wall time, bytes uploaded,
# peak memory, allocated size after restore; then the ratios the targets
# are about (first backup >= 3x faster than restic, second upload <= 1.2x
# the changed bytes, restore keeps holes).
#
# kiln runs as a real kilnd (target/release) with an ext4-file pool; its
# peak memory is kilnd's (VmHWM, reset before each step). restic backs up
# the mounted filesystem (files, as restic is used), zstd the image.
#
# Needs root (loop mounts), moto (scripts/setup/s3.sh), restic and GNU
# time (apt-get install restic time). Usage:
#
#     cargo build --release && sudo bench/backup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/target/release
MIB=$((1 << 20))
export PATH="$HOME/.cargo/bin:$PATH"

for tool in moto_server restic zstd python3 jq mkfs.ext4; do
    command -v "$tool" >/dev/null || { echo "bench/backup.sh: $tool is missing" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "bench/backup.sh: GNU time missing (apt-get install time)" >&2; exit 2; }
[ -x "$BIN/kilnd" ] && [ -x "$BIN/kiln" ] || { echo "bench/backup.sh: run cargo build --release first" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "bench/backup.sh: needs root (loop mounts)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/kiln-bench-backup-XXXXXX")
pids=()
cleanup() {
    for m in "$work"/mnt*; do mountpoint -q "$m" 2>/dev/null && umount "$m"; done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
endpoint=http://127.0.0.1:$port
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
pids+=($!)
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_DEFAULT_REGION=us-east-1
s3py() { python3 - "$endpoint" "$@"; }
for _ in $(seq 100); do curl -s "$endpoint" >/dev/null && break; sleep 0.1; done
s3py kiln restic image <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
for b in sys.argv[2:]:
    s3.create_bucket(Bucket=b)
PY

data=$work/data
mkdir -p "$data/volumes"
cat >"$work/config.yaml" <<YAML
data_dir: $data
listen:
  socket: $data/kiln.sock
pools:
  default:
    driver: ext4-file
    path: $data/volumes
quotas:
  default_mib: 1048576
backup:
  target: s3
  s3:
    endpoint: $endpoint
    region: us-east-1
    bucket: kiln
    path_style: true
    access_key_id: $AWS_ACCESS_KEY_ID
    secret_access_key: $AWS_SECRET_ACCESS_KEY
YAML
"$BIN/kilnd" --config "$work/config.yaml" >"$work/kilnd.log" 2>&1 &
kilnd_pid=$!
pids+=("$kilnd_pid")
for _ in $(seq 100); do [ -S "$data/kiln.sock" ] && break; sleep 0.1; done
kiln() { "$BIN/kiln" --socket "$data/kiln.sock" "$@"; }

# ---- the volume: 10 GiB, 300 MiB of files ------------------------------
kiln --json volume create --name data --size 10G >"$work/vol.json"
image=$data/volumes/$(jq -r .id "$work/vol.json").img
mkdir -p "$work/mnt"
mount -o loop "$image" "$work/mnt"
mkdir -p "$work/mnt/files"
for i in $(seq 0 299); do
    head -c $MIB /dev/urandom >"$work/mnt/files/f$i.bin"
done
umount "$work/mnt"
sync

# ---- measuring ----------------------------------------------------------
# run_timed NAME CMD...: wall seconds and peak RSS (KiB) of CMD into
# $work/NAME.{wall,rss}.
run_timed() {
    local name=$1
    shift
    /usr/bin/time -v -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err"
    awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' \
        "$work/$name.time" >"$work/$name.wall"
    awk -F': ' '/Maximum resident set size/ {print $2}' "$work/$name.time" >"$work/$name.rss"
}
kilnd_reset_peak() { echo 5 >"/proc/$kilnd_pid/clear_refs"; }
kilnd_peak() { awk '/VmHWM/ {print $2}' "/proc/$kilnd_pid/status"; }
alloc() { du -s --block-size=1 "$1" | cut -f1; }

restic_repo=s3:$endpoint/restic
export RESTIC_PASSWORD=bench
restic -r "$restic_repo" init >/dev/null

zstd_upload() { # NAME: the image, compressed, to bucket "image"
    /usr/bin/time -v -o "$work/$1.time" bash -c \
        "zstd -q -T2 -3 -c '$image' | python3 -c '
import sys, boto3
s3 = boto3.client(\"s3\", endpoint_url=\"$endpoint\")
body = sys.stdin.buffer.read()
s3.put_object(Bucket=\"image\", Key=\"$1.zst\", Body=body)
print(len(body))'" >"$work/$1.out"
    awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' \
        "$work/$1.time" >"$work/$1.wall"
    awk -F': ' '/Maximum resident set size/ {print $2}' "$work/$1.time" >"$work/$1.rss"
}

backup_round() { # ROUND
    local r=$1
    kilnd_reset_peak
    run_timed "kiln$r" "$BIN/kiln" --socket "$data/kiln.sock" --json volume backup data
    kilnd_peak >"$work/kiln$r.rss"
    jq -r .stored_bytes "$work/kiln$r.out" >"$work/kiln$r.bytes"

    mount -o loop,ro "$image" "$work/mnt"
    run_timed "restic$r" restic -r "$restic_repo" backup --json --host bench "$work/mnt"
    umount "$work/mnt"
    jq -r 'select(.message_type == "summary") | .data_added' "$work/restic$r.out" >"$work/restic$r.bytes"

    zstd_upload "zstd$r"
    cp "$work/zstd$r.out" "$work/zstd$r.bytes"
}

backup_round 1

# ---- change 50 MiB ------------------------------------------------------
mount -o loop "$image" "$work/mnt"
for i in $(seq 0 6 299); do
    head -c $MIB /dev/urandom >"$work/mnt/files/f$i.bin"
done
umount "$work/mnt"
sync
changed=$((50 * MIB))

backup_round 2

# ---- restore ------------------------------------------------------------
bk=$(jq -r .id "$work/kiln2.out")
kilnd_reset_peak
run_timed kilnr "$BIN/kiln" --socket "$data/kiln.sock" --json volume restore data \
    --backup-id "$bk" --to restored
kilnd_peak >"$work/kilnr.rss"
restored_image=$data/volumes/$(jq -r .id "$work/kilnr.out").img
alloc "$restored_image" >"$work/kilnr.alloc"

mkdir -p "$work/restic-restore"
run_timed resticr restic -r "$restic_repo" restore latest --target "$work/restic-restore"
alloc "$work/restic-restore" >"$work/resticr.alloc"

/usr/bin/time -v -o "$work/zstdr.time" bash -c "python3 -c '
import sys, boto3
s3 = boto3.client(\"s3\", endpoint_url=\"$endpoint\")
sys.stdout.buffer.write(s3.get_object(Bucket=\"image\", Key=\"zstd2.zst\")[\"Body\"].read())' \
    | zstd -q -d --sparse -o '$work/zstd-restored.img'" >/dev/null
awk -F': ' '/Elapsed \(wall clock\)/ {
    n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' \
    "$work/zstdr.time" >"$work/zstdr.wall"
awk -F': ' '/Maximum resident set size/ {print $2}' "$work/zstdr.time" >"$work/zstdr.rss"
alloc "$work/zstd-restored.img" >"$work/zstdr.alloc"

# ---- report -------------------------------------------------------------
v() { cat "$work/$1"; }
source_alloc=$(alloc "$image")
python3 - "$work" "$changed" "$source_alloc" <<'PY'
import sys
work, changed, source_alloc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def v(name):
    with open(f"{work}/{name}") as f:
        return float(f.read().strip() or 0)
MIB = 1 << 20
print("backup of a 10 GiB ext4 volume holding 300 MiB of files, S3 = moto on 127.0.0.1")
print(f"{'step':<22}{'tool':<8}{'wall s':>8}{'uploaded MiB':>14}{'peak RSS MiB':>14}")
for step, r in (("first backup", "1"), ("after 50 MiB changed", "2")):
    for tool in ("kiln", "restic", "zstd"):
        print(f"{step:<22}{tool:<8}{v(tool + r + '.wall'):>8.1f}"
              f"{v(tool + r + '.bytes') / MIB:>14.1f}{v(tool + r + '.rss') / 1024:>14.1f}")
print(f"{'step':<22}{'tool':<8}{'wall s':>8}{'allocated MiB':>14}{'peak RSS MiB':>14}")
for tool in ("kiln", "restic", "zstd"):
    print(f"{'restore':<22}{tool:<8}{v(tool + 'r.wall'):>8.1f}"
          f"{v(tool + 'r.alloc') / MIB:>14.1f}{v(tool + 'r.rss') / 1024:>14.1f}")
print(f"source volume allocated: {source_alloc / MIB:.1f} MiB")
print("ratios:")
print(f"  first backup, restic time / kiln time: {v('restic1.wall') / max(v('kiln1.wall'), 0.01):.2f} (target >= 3)")
print(f"  first backup, zstd time / kiln time:   {v('zstd1.wall') / max(v('kiln1.wall'), 0.01):.2f}")
print(f"  second backup, kiln uploaded / changed: {v('kiln2.bytes') / changed:.2f} (target <= 1.2)")
print(f"  second backup, restic uploaded / changed: {v('restic2.bytes') / changed:.2f}")
print(f"  restore, kiln allocated / source allocated: {v('kilnr.alloc') / source_alloc:.2f} (holes kept: about 1)")
PY
