#!/bin/sh
# Like the official redis image: `redis-server [options]` (or just options) serves on all interfaces with
# protected mode off. Without a config file, no persistence; options given later win.
set -eu
case "${1:-}" in -*) set -- redis-server "$@" ;; esac
if [ "${1:-}" = redis-server ]; then
  case "${2:-}" in
    *.conf) ;;
    *) shift; set -- redis-server --bind 0.0.0.0 --protected-mode no --save '' --appendonly no "$@" ;;
  esac
fi
exec "$@"
