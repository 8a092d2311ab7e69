#!/usr/bin/env bash
# Start (once) a throwaway PostgreSQL server on 127.0.0.1 for the test suite and print its URL.
# Uses Debian's packages (apt-get install postgresql). Data lives in $GEOCONVNET_PG_DIR
# (default /tmp/geoconvnet-pg); stop it with: pg_ctl -D /tmp/geoconvnet-pg stop
set -euo pipefail
PORT=${GEOCONVNET_PG_PORT:-55432}
DIR=${GEOCONVNET_PG_DIR:-/tmp/geoconvnet-pg}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
    echo "PostgreSQL is not installed (Debian: apt-get install postgresql)" >&2
    exit 1
fi
AS=()
if [ "$(id -u)" = 0 ]; then AS=(runuser -u postgres --); fi  # the server refuses to run as root
if ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
    if [ ! -f "$DIR/PG_VERSION" ]; then
        mkdir -p "$DIR"
        if [ "$(id -u)" = 0 ]; then chown postgres "$DIR"; fi
        "${AS[@]}" "$BIN/initdb" -D "$DIR" -A trust -U postgres >/dev/null
    fi
    "${AS[@]}" "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w \
        -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1" start >/dev/null
fi
# Tests of passwords log in as geoconvnet_pw, whose password the server really checks
# (everyone else is trusted): the first matching line of pg_hba.conf wins.
if ! grep -q geoconvnet_pw "$DIR/pg_hba.conf"; then
    { echo "host all geoconvnet_pw 127.0.0.1/32 scram-sha-256"; cat "$DIR/pg_hba.conf"; } \
        > "$DIR/pg_hba.conf.new"
    mv "$DIR/pg_hba.conf.new" "$DIR/pg_hba.conf"
    if [ "$(id -u)" = 0 ]; then chown postgres "$DIR/pg_hba.conf"; fi
    "${AS[@]}" "$BIN/pg_ctl" -D "$DIR" reload >/dev/null
fi
echo "postgresql://postgres@127.0.0.1:$PORT/postgres"
