#!/usr/bin/env bash
# Prove the course is stable: `lab verify` of every lab, N times in a row; stop at the first failure.
set -euo pipefail
runs=${1:-10}
for i in $(seq 1 "$runs"); do
  echo "== soak run $i of $runs"
  lab verify --provider "${LAB_PROVIDER:-local}"
done
echo "soak: $runs of $runs runs passed"
