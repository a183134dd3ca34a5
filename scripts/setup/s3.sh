#!/usr/bin/env bash
# Installs the S3-compatible servers the backup tests start (filled in by
# the backup work).
set -euo pipefail
