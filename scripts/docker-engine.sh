#!/usr/bin/env bash
# Make a Docker engine answer: use the one that does, else start dockerd (installing Debian's docker.io if
# needed) with its own data root, and wait until `docker info` answers. Idempotent. Exit 2 when it cannot.
#   LAB_DOCKER_ROOT  dockerd's --data-root (default /var/lib/nexus-labs-docker)
#   LAB_DOCKER_RUN   its --exec-root, pid file and log (default /run/nexus-labs-docker)
#   DOCKER_HOST      the socket to serve (unix:// only; default unix:///var/run/docker.sock)
#   LAB_DOCKER_WAIT  seconds to wait for the engine (default 30)
set -euo pipefail

data_root=${LAB_DOCKER_ROOT:-/var/lib/nexus-labs-docker}
run_dir=${LAB_DOCKER_RUN:-/run/nexus-labs-docker}
host=${DOCKER_HOST:-unix:///var/run/docker.sock}
wait_seconds=${LAB_DOCKER_WAIT:-30}
pid_file=$run_dir/dockerd.pid
log_file=$run_dir/dockerd.log

answers() {
  DOCKER_HOST=$host timeout 10 docker info --format '{{.ServerVersion}}' >/dev/null 2>&1
}

describe() {
  local format='{{.ServerVersion}}: {{.Driver}}, {{.CgroupDriver}}, cgroup v{{.CgroupVersion}}, root {{.DockerRootDir}}'
  echo "Docker engine at $host: $(DOCKER_HOST=$host docker info --format "$format")"
}

if command -v docker >/dev/null 2>&1 && answers; then
  describe
  exit 0
fi

case $host in
  unix://*) socket=${host#unix://} ;;
  *) echo "DOCKER_HOST=$host does not answer, and this script only starts an engine on a unix socket." >&2
     echo "Start that engine, or unset DOCKER_HOST to use /var/run/docker.sock." >&2
     exit 2 ;;
esac

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "No Docker engine and no apt-get to install one: install Docker, start it, then run this again." >&2
    exit 2
  fi
  [ "$(id -u)" -eq 0 ] || { echo "Installing docker.io needs root: run this with sudo." >&2; exit 2; }
  echo "Installing docker.io from Debian's packages (about 20 s)..."
  apt_log=$(mktemp)
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
         apt-get install -y -qq --no-install-recommends docker.io; } >"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2
    echo "Installing docker.io failed (above): fix apt, or install Docker yourself, then run this again." >&2
    rm -f "$apt_log"
    exit 2
  fi
  rm -f "$apt_log"
fi
[ "$(id -u)" -eq 0 ] || { echo "Starting dockerd needs root: run this with sudo." >&2; exit 2; }

mkdir -p "$data_root" "$run_dir" "$(dirname "$socket")"
if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
  pid=$(cat "$pid_file")
  echo "dockerd (pid $pid) is running but not answering yet; waiting for it."
else
  # A socket left by a dead engine would make the new one refuse to start.
  [ -S "$socket" ] && rm -f "$socket"
  setsid dockerd \
    --data-root "$data_root" \
    --exec-root "$run_dir/exec" \
    --pidfile "$pid_file" \
    --host "unix://$socket" \
    >>"$log_file" 2>&1 </dev/null &
  pid=$!
  echo "Started dockerd (pid $pid), data root $data_root, log $log_file."
fi

deadline=$((SECONDS + wait_seconds))
until answers; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "dockerd exited before answering on $socket. The end of its log ($log_file):" >&2
    tail -n 30 "$log_file" >&2 || true
    exit 2
  fi
  if [ $SECONDS -ge $deadline ]; then
    echo "dockerd did not answer on $socket within ${wait_seconds} s. The end of its log ($log_file):" >&2
    tail -n 30 "$log_file" >&2 || true
    exit 2
  fi
  sleep 0.5
done
describe
