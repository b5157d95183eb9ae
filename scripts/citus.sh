#!/usr/bin/env bash
# A local Citus cluster (one coordinator, two workers) with this server's
# schema distributed by conversation, and EXPLAIN of the write paths on it.
#
#   scripts/citus.sh start     # cluster up, migrations, tables distributed; prints the server's settings
#   scripts/citus.sh explain   # the write paths: Task Count and two-phase commits of each
#   scripts/citus.sh test [vitest args]  # test files against the cluster, delegated writes on
#   scripts/citus.sh bench     # sendMessage per core-second on the cluster and on one PostgreSQL, side by side
#   scripts/citus.sh stop
#
# From the citusdata/citus image when a Docker engine answers, else from a
# Citus installed into PostgreSQL (CITUS_PG_BIN, default /usr/lib/postgresql/15/bin,
# with citus.so in its lib directory). Ports 9700 (coordinator), 9701, 9702;
# data under CITUS_DIR (default /tmp/catbird-citus). Nothing here builds Citus.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_BIN=${CITUS_PG_BIN:-/usr/lib/postgresql/15/bin}
DIR=${CITUS_DIR:-/tmp/catbird-citus}
PORTS=(9700 9701 9702)
URL=postgres://postgres@127.0.0.1:9700/catbird

docker_engine() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }
# PostgreSQL refuses to run as root: as root, as the postgres user.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_at() { local port=$1; shift; "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }

start_nodes() {
  if docker_engine; then
    docker network create catbird-citus >/dev/null 2>&1 || true
    for i in 0 1 2; do
      docker run -d --rm --name "catbird-citus-$i" --network catbird-citus -p "${PORTS[$i]}:5432" \
        -e POSTGRES_HOST_AUTH_METHOD=trust citusdata/citus:13.2 \
        -c shared_preload_libraries=citus,pg_stat_statements -c max_prepared_transactions=100 >/dev/null
    done
    WORKER_HOSTS=(catbird-citus-1 catbird-citus-2); WORKER_PORT=5432
  else
    [ -f "$PG_BIN/../lib/citus.so" ] || [ -f "$("$PG_BIN/pg_config" --pkglibdir 2>/dev/null)/citus.so" ] || {
      echo "error: no Docker engine and no Citus in $PG_BIN (install Citus, or set CITUS_PG_BIN)" >&2; exit 1; }
    mkdir -p "$DIR"; [ "$(id -u)" = 0 ] && chown postgres "$DIR"
    for i in 0 1 2; do
      start_node "$DIR/node$i" "${PORTS[$i]}" 'citus,pg_stat_statements' 'max_prepared_transactions = 100'
    done
    WORKER_HOSTS=(127.0.0.1 127.0.0.1); WORKER_PORT=
  fi
  for i in 0 1 2; do
    until psql_at "${PORTS[$i]}" -c 'SELECT 1' postgres >/dev/null 2>&1; do sleep 0.5; done
    psql_at "${PORTS[$i]}" postgres -c 'CREATE DATABASE catbird' 2>/dev/null || true
    # pg_stat_statements: what each node ran, counted by explain. Only when missing: a worker
    # of a cluster started again refuses DDL, even one that would do nothing.
    psql_at "${PORTS[$i]}" catbird <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN CREATE EXTENSION citus; END IF;
  IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_stat_statements') THEN CREATE EXTENSION pg_stat_statements; END IF;
END $$;
SQL
  done
  # A cluster started again knows its nodes already.
  psql_at 9700 catbird <<SQL
SELECT citus_set_coordinator_host('127.0.0.1', 9700) WHERE NOT EXISTS (SELECT FROM pg_dist_node WHERE groupid = 0);
SELECT citus_add_node('${WORKER_HOSTS[0]}', ${WORKER_PORT:-9701})
  WHERE NOT EXISTS (SELECT FROM pg_dist_node WHERE nodename = '${WORKER_HOSTS[0]}' AND nodeport = ${WORKER_PORT:-9701});
SELECT citus_add_node('${WORKER_HOSTS[1]}', ${WORKER_PORT:-9702})
  WHERE NOT EXISTS (SELECT FROM pg_dist_node WHERE nodename = '${WORKER_HOSTS[1]}' AND nodeport = ${WORKER_PORT:-9702});
SQL
}

# A PostgreSQL of PG_BIN in directory $1 on port $2, with the libraries $3
# preloaded and a setting $4, made on first use; fsync off (a test cluster).
start_node() {
  if [ ! -d "$1" ]; then
    as_pg "$PG_BIN/initdb" -D "$1" -U postgres --auth=trust >/dev/null
    cat >>"$1/postgresql.conf" <<CONF
shared_preload_libraries = '$3'
listen_addresses = '127.0.0.1'
port = $2
unix_socket_directories = ''
max_connections = 300
$4
fsync = off
CONF
  fi
  as_pg "$PG_BIN/pg_ctl" -D "$1" -l "$1/log" -w start >/dev/null
}

# The schema as the server's migrations make it, then each table distributed
# by its shard key (scripts/citus-distribute.sql).
distribute() {
  DATABASE_URL=$URL node --import tsx src/db/migrate-cli.ts up
  # A cluster started again is distributed already.
  if [ -z "$(psql_at 9700 catbird -Atc "SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'convo'::regclass")" ]; then
    psql_at 9700 catbird -f scripts/citus-distribute.sql >/dev/null
  fi
}

# One PostgreSQL beside the cluster, of the same build and settings without
# Citus (port 9710, data under CITUS_DIR), for the bench to compare with.
start_single() { start_node "$DIR/single" 9710 pg_stat_statements ''; }

case "${1:-}" in
  start) start_nodes; distribute; echo "DATABASE_URL=$URL DATABASE_DELEGATED_WRITES=true" ;;
  explain) DATABASE_URL=$URL node --import tsx scripts/citus-explain.ts ;;
  # Each test file gets a database of its own on every node, distributed (test/helpers/database.ts),
  # one file at a time: files adding the workers to their databases at once sometimes fail to.
  test)
    shift
    TEST_DATABASE_URL=postgres://postgres@127.0.0.1:9700/postgres TEST_CITUS_WORKERS=127.0.0.1:9701,127.0.0.1:9702 \
      DATABASE_DELEGATED_WRITES=true npx vitest run --no-file-parallelism "$@" ;;
  # The cluster must be up (start); it counts the CPU of every node, which must run here (not in Docker).
  bench)
    start_single
    trap 'as_pg "$PG_BIN/pg_ctl" -D "$DIR/single" -m fast stop >/dev/null' EXIT
    BENCH_CLUSTER_URL=$URL BENCH_SINGLE_URL=postgres://postgres@127.0.0.1:9710/postgres \
      BENCH_NODE_URLS=postgres://postgres@127.0.0.1:9700/postgres,postgres://postgres@127.0.0.1:9701/postgres,postgres://postgres@127.0.0.1:9702/postgres \
      node --import tsx scripts/citus-bench.ts ;;
  stop)
    if docker_engine && docker ps --format '{{.Names}}' | grep -q catbird-citus; then
      docker rm -f catbird-citus-0 catbird-citus-1 catbird-citus-2 >/dev/null; docker network rm catbird-citus >/dev/null
    else
      for i in 0 1 2; do as_pg "$PG_BIN/pg_ctl" -D "$DIR/node$i" -m fast stop >/dev/null || true; done
    fi ;;
  *) echo "usage: scripts/citus.sh start|explain|test|bench|stop" >&2; exit 2 ;;
esac
