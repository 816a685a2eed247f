#!/bin/sh
# PostgreSQL's CPU and WAL per decision under concurrency, the decision's statements without Python:
#   bench/pgbench/run.sh PORT DATADIR DB CLIENTS SECONDS
# DB: a database filled by bench/pg_statement_cost.py's `prepare` (or bench.py), with bench/pgbench/setup.sql
# run in it once (the JSON literals the script inserts). CPU: every process of the server (its children's
# utime+stime, and the postmaster's reaped children's), before and after; WAL: pg_current_wal_lsn().
set -eu
P=$1; DATA=$2; DB=$3; C=$4; T=$5
PM=$(head -1 "$DATA/postmaster.pid")
BIN=$(dirname "$(readlink -f "$(command -v pg_ctl 2>/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl | tail -1)")")
q() { psql -h 127.0.0.1 -p "$P" -U postgres "$1" -Atc "$2"; }
cpu() {
    s=0
    for p in $PM $(pgrep -P "$PM"); do
        f=$(cut -d')' -f2 "/proc/$p/stat" 2>/dev/null) || continue
        set -- $f
        s=$((s + ${12} + ${13} + ${14} + ${15}))
    done
    echo $s
}
q "$DB" "VACUUM (ANALYZE) credit_accounts, decisions, holds, audit_events" >/dev/null
c0=$(cpu); l0=$(q postgres "SELECT pg_current_wal_lsn()")
out=$(nice -n 10 "$BIN/pgbench" -h 127.0.0.1 -p "$P" -U postgres -n -M prepared -c "$C" -j 2 -T "$T" \
    -f "$(dirname "$0")/decide.pgb" "$DB" 2>&1)
c1=$(cpu); l1=$(q postgres "SELECT pg_current_wal_lsn()")
n=$(echo "$out" | awk '/actually processed/ {print $NF}' | cut -d/ -f1)
wal=$(q postgres "SELECT '$l1'::pg_lsn - '$l0'::pg_lsn")
ticks=$(getconf CLK_TCK)
echo "$DB c=$C: $n decisions, PostgreSQL CPU $(( (c1 - c0) * 1000000 / ticks / n )) us/decision," \
    "WAL $((wal / n)) B/decision, load $(cut -d' ' -f1 /proc/loadavg)"
