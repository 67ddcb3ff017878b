#!/usr/bin/env bash
# Gradescope runs this once, as root, on its Ubuntu image, to make the image every submission is graded in:
# PostgreSQL and redis-server from Ubuntu's packages, a Python of 3.11 or later, the Nexus Labs kit in a
# virtualenv, and warm caches (the lab's starter graded once, so each submission skips the migrated template
# database and, for a lab with a load check, the calibration). config.sh says which lab and which kit.
set -euo pipefail

AUTOGRADER_ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$AUTOGRADER_ROOT/source"
# shellcheck source=config.sh
. "$SOURCE/config.sh"
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n== %s\n' "$*"; }

step "PostgreSQL, redis-server and Python from Ubuntu's packages"
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql redis-server bubblewrap python3 python3-venv ca-certificates

recent_enough() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null && recent_enough "$candidate"; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

if ! python=$(find_python); then
  step "Python 3.11 (the image's python3 is older)"
  if ! apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv; then
    # Older Ubuntu releases carry no 3.11: the deadsnakes archive does.
    apt-get install -y -qq --no-install-recommends software-properties-common
    add-apt-repository -y ppa:deadsnakes/ppa
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv
  fi
  python=$(find_python)
fi

step "The kit, in $NEXUS_LABS_HOME/venv"
shopt -s nullglob
wheels=("$SOURCE"/nexus_labs-*.whl)
shopt -u nullglob
kit="$LAB_KIT"
if [ "${#wheels[@]}" -gt 0 ]; then
  kit="${wheels[-1]}"
fi
"$python" -m venv "$NEXUS_LABS_HOME/venv"
"$NEXUS_LABS_HOME/venv/bin/python" -m pip install --quiet --upgrade pip
"$NEXUS_LABS_HOME/venv/bin/python" -m pip install --quiet "$kit"
mkdir -p "$LAB_CACHE_DIR" "$LAB_STATE_DIR"
"$LAB" --version

step "What lab check will grade with"
"$LAB" doctor --provider local

step "Warming the caches: the $LAB_SLUG starter graded once (it fails its checks; that is expected)"
warm="$NEXUS_LABS_HOME/warm-up"
rm -rf "$warm"
mkdir -p "$warm"
"$LAB" start "$LAB_SLUG" --dir "$warm/$LAB_SLUG"
status=0
(cd "$warm/$LAB_SLUG" && "$LAB" check --provider local) || status=$?
if [ "$status" -gt 1 ]; then
  echo "The starter could not be graded here (lab check exited $status): see above." >&2
  exit "$status"
fi
rm -rf "$warm"
step "Ready: run_autograder grades each submission as $LAB_SLUG"
