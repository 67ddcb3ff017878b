#!/usr/bin/env bash
# Prove the course is stable: `lab verify` of every lab (or of the labs named), N times in a row; stop at
# the first failure.   usage: soak.sh RUNS [SLUG...]
set -euo pipefail
runs=${1:-10}
shift || true
for i in $(seq 1 "$runs"); do
  echo "== soak run $i of $runs"
  lab verify --provider "${LAB_PROVIDER:-local}" "$@"
done
echo "soak: $runs of $runs runs passed"
