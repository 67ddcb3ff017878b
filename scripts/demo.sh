#!/usr/bin/env bash
# The learner's loop, end to end on the local provider: start the race-conditions lab, grade the
# starter (the oversell shows up with its evidence), apply the reference fix, grade again (all green).
set -uo pipefail

work=$(mktemp -d -t nexus-labs-demo-XXXXXX)
trap 'rm -rf "$work"' EXIT
export LAB_STATE_DIR="$work/state" LAB_PROVIDER="${LAB_PROVIDER:-local}"
root=$(cd "$(dirname "$0")/.." && pwd)

echo "== lab start race-conditions (in $work)"
cd "$work" && lab start race-conditions || exit 2
cd race-conditions

echo
echo "== lab check on the starter: the flash sale oversells"
lab check
code=$?
if [ "$code" -ne 1 ]; then
  echo "demo: the starter was expected to fail its checks (exit 1), got exit $code" >&2
  exit 1
fi

echo
echo "== applying the reference fix (solutions/race-conditions), as a learner would after fixing it"
lab diff --stat
cp -r "$root/solutions/race-conditions/." . && rm -f NOTES.md

echo
echo "== lab check on the fix"
lab check
