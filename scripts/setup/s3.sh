#!/usr/bin/env bash
# Installs the S3-compatible servers the backup tests start, skipping what
# is already installed:
# - moto (`moto_server`): fast, does not check request signatures;
# - s3s-fs: checks SigV4 signatures (the wrong-credentials tests need it).
#   0.14.1 is the last release that builds with the project's rustc.
# Tests start the servers themselves, on free 127.0.0.1 ports.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v moto_server >/dev/null 2>&1; then
    echo "installing: moto[server]"
    if ! command -v pip3 >/dev/null 2>&1 && ! command -v pip >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip
    fi
    pip=$(command -v pip3 || command -v pip)
    "$pip" install --quiet 'moto[server]' || "$pip" install --quiet --break-system-packages 'moto[server]'
    hash -r
fi
command -v moto_server >/dev/null 2>&1 || { echo "s3.sh: moto_server not on PATH after install" >&2; exit 1; }

if ! command -v s3s-fs >/dev/null 2>&1; then
    echo "installing: s3s-fs 0.14.1 (a few minutes)"
    cargo install s3s-fs@0.14.1 --locked --features binary
fi
