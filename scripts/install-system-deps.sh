#!/usr/bin/env bash
# Install the servers the local provider runs and the sandbox it runs learners' code in (bubblewrap), from
# Debian/Ubuntu packages, when they are missing.
# --browser: Chromium too, for the test that renders the HTML report (`make test`; learners need none).
set -euo pipefail
browser=false
[ "${1:-}" = "--browser" ] && browser=true

missing=()
pg_found=""
for dir in ${LAB_PG_BINDIR:-} /usr/lib/postgresql/*/bin; do
  [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && pg_found="$dir" && break
done
command -v initdb >/dev/null 2>&1 && pg_found="${pg_found:-$(dirname "$(command -v initdb)")}"
[ -n "$pg_found" ] || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
# bubblewrap confines the learner's code (grader/sandbox.py); as root it is what shows that code its Python.
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
if $browser; then
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Missing: ${missing[*]}. Install them with your package manager (macOS: brew install postgresql redis)." >&2
  exit 2
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing ${missing[*]} from the system's packages..."
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a cluster and a redis service on install where an init system runs; the kit needs neither.
for service in postgresql redis-server; do
  $sudo service "$service" stop >/dev/null 2>&1 || true
done
