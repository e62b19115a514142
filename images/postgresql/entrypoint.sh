#!/bin/sh
# First start on an empty data volume: initdb, then the application's role and database, its password
# read from a file (POSTGRES_APP_PASSWORD_FILE, never the environment or an argument), on a server
# listening on a private socket only. Every start: the server with the mounted pg_hba.conf.
set -eu
: "${PGDATA:?}"
socket=/tmp
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_APP_PASSWORD_FILE:?the application password file is required on first start}"
  : "${POSTGRES_APP_USER:?}" "${POSTGRES_APP_DATABASE:?}"
  case "$POSTGRES_APP_USER$POSTGRES_APP_DATABASE" in
    *[!A-Za-z0-9_]*) echo "photomatrix-postgresql: user and database must be [A-Za-z0-9_]" >&2; exit 2 ;;
  esac
  initdb --pgdata="$PGDATA" --username=postgres --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  pg_ctl --pgdata="$PGDATA" --wait --silent \
    --options="-c listen_addresses='' -c unix_socket_directories=$socket" start
  # psql's backquote reads the file inside the container: the password is in no argv and no log.
  psql --host="$socket" --username=postgres --dbname=postgres --quiet --no-psqlrc -v ON_ERROR_STOP=1 <<SQL
\set password \`cat "$POSTGRES_APP_PASSWORD_FILE"\`
CREATE ROLE "$POSTGRES_APP_USER" LOGIN PASSWORD :'password';
CREATE DATABASE "$POSTGRES_APP_DATABASE" OWNER "$POSTGRES_APP_USER";
REVOKE ALL ON DATABASE "$POSTGRES_APP_DATABASE" FROM PUBLIC;
SQL
  pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop
  echo "photomatrix-postgresql: initialised $PGDATA with role and database $POSTGRES_APP_USER/$POSTGRES_APP_DATABASE"
fi
if [ "$1" = postgres ]; then
  shift
  exec postgres -D "$PGDATA" -c unix_socket_directories="$socket" "$@"
fi
exec "$@"
