#!/usr/bin/env bash
# The engine against the whole job's floor (issue "Fast at scale, round two").
#
#   bench/run.sh [--calls N] [--tenants N] [--days N] [--repeat N]
#                [--shape "--zones 30 --error-types 16 ..."] [--keep]
#                [--only full|nightly|day] [--binary PATH]
#
# Loads a platform with `callrollup generate` into a scratch database
# (default 1,000 tenants, 5,000,000 calls, 90 days, 1 kB transcripts;
# --shape passes generate's shape options: other zones, error types,
# statuses and outcomes, or wider rows), then, for the full window, the nightly one
# (the last complete day and the default lookback of 3) and that last day
# alone, --repeat times
# (default 3) with the order of the peers rotated:
#
#   read floor   psql \copy of exactly the columns the engine reads, for
#                the window's UTC range, to /dev/null in binary
#   write floor  psql \copy in (binary, one transaction) of the summary rows
#                the engine wrote for the window (exported from its tables
#                once) into empty tables with the same keys and indexes
#   job floor    read floor + write floor
#   cold         `callrollup run` after the window's summary rows were
#                deleted and VACUUMed (untimed): it writes into clean tables
#   unchanged    the same run again at once (nothing changed, no vacuum):
#                it should write nothing
#   1% changed   the same run after an UPDATE (untimed) of the costs of 1 %
#                of the window's calls: it should write only what they touch
#   read back    psql \copy of the window's summary rows to /dev/null (what
#                `unchanged` may add to the read floor)
#
# with wall time, peak RSS and user+sys CPU from /usr/bin/time, and the CPU
# Postgres spent meanwhile (every postgres process, from /proc, the exited
# backends' through the postmaster's cutime). Prints the table and writes
# it to bench/results[-shape].md. A benchmark, not a test: nothing here
# asserts a time.
set -euo pipefail
cd "$(dirname "$0")/.."

calls=5000000 tenants=1000 days=90 repeat=3 keep=0 shape="" only="" bin=""
while [ $# -gt 0 ]; do
    case "$1" in
        --calls) calls=$2; shift 2 ;;
        --tenants) tenants=$2; shift 2 ;;
        --days) days=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        --shape) shape=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --binary) bin=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
case ${only:-full} in
    full | nightly | day) ;;
    *) echo "--only takes full, nightly or day, not $only" >&2; exit 2 ;;
esac

admin=${CALLROLLUP_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
suffix=$(printf '%s' "$shape" | tr -c 'a-z0-9' '_' | tr -s '_' | sed 's/^_//; s/_$//')
db=callrollup_bench_${calls}${suffix:+_$suffix}
db=${db:0:63}
url="${admin%/*}/$db"
if [ -z "$bin" ]; then
    bin=${CARGO_TARGET_DIR:-target}/release/callrollup
    cargo build --release --quiet
fi
end=2026-11-20

if [ "$(psql "$admin" -XAtc "SELECT count(*) FROM pg_database WHERE datname = '$db'")" = 0 ]; then
    psql "$admin" -qXc "CREATE DATABASE $db"
    # 1 kB transcripts unless the shape says otherwise (the wide-row
    # shape: --shape "--transcript-bytes 2000 --summary-bytes 1000").
    width="--transcript-bytes 1000"
    case " $shape " in *" --transcript-bytes "*) width="" ;; esac
    # shellcheck disable=SC2086 # the shape is a list of options
    /usr/bin/time -f "generate: %e s, peak RSS %M KB" \
        "$bin" generate --database-url "$url" --tenants "$tenants" --calls "$calls" \
        --days "$days" --end "$end" --seed 1 $width $shape
fi
"$bin" migrate --database-url "$url" >/dev/null
q() { psql "$url" -qXAt "$@"; }
# The same-job peers (issue 25) write into their own copies of the tables.
peers="duckdb sql_peer"
for p in $peers; do
    "$bin" migrate --database-url "$url" --target-schema "$p" >/dev/null
done
python3 -c 'import duckdb, duckdb_extensions, duckdb_extension_postgres_scanner' 2>/dev/null \
    || pip install --quiet duckdb==1.5.5 duckdb-extensions==1.5.5 duckdb-extension-postgres-scanner==1.5.5

first=$(date -d "$end - $((days - 1)) days" +%F)
nightly_from=$(date -d "$end - 3 days" +%F)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=$work/reports
results=$work/results
stages=$work/stages
: >"$results"
: >"$stages"
tables="tenant_daily tenant_daily_outcomes tenant_daily_errors data_quality_findings"

utc_range() {  # from to: the UTC range the engine reads for the window
    lo=$(date -u -d "$1 00:00 UTC - 14 hours" '+%F %T+00')
    hi=$(date -u -d "$2 00:00 UTC + 1 day + 12 hours" '+%F %T+00')
}

# CPU seconds (user+sys) of every postgres process so far, exited
# backends included (the postmaster's children's time).
postgres_cpu() {
    python3 - <<'PY'
import os
tick, procs = os.sysconf("SC_CLK_TCK"), {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    fields = stat[stat.rindex(")") + 2:].split()
    procs[pid] = (stat[stat.index("(") + 1:stat.rindex(")")], fields[1], [int(x) for x in fields[11:15]])
total = 0
for pid, (name, parent, (utime, stime, cutime, cstime)) in procs.items():
    if name not in ("postgres", "postmaster"):
        continue
    total += utime + stime
    if procs.get(parent, ("",))[0] not in ("postgres", "postmaster"):
        total += cutime + cstime  # the postmaster: its exited backends
print(total / tick)
PY
}

window_rows_deleted() {  # from to [schema]
    local t schema=${3:-analytics}
    for t in $tables; do
        q -c "DELETE FROM $schema.$t WHERE day BETWEEN '$1' AND '$2'"
    done
    q -c "VACUUM $schema.tenant_daily, $schema.tenant_daily_outcomes, $schema.tenant_daily_errors, $schema.data_quality_findings"
}

# The peers' tables must equal the engine's, row for row (issue 25: the
# DuckDB peer doubles as an independent oracle). run_id and computed_at
# differ by nature; error_rate is compared as the same division.
check_peer_equals_engine() {  # schema from to
    local t cols diff
    for t in tenant_daily tenant_daily_outcomes tenant_daily_errors; do
        cols=$(q -c "SELECT string_agg(column_name, ', ' ORDER BY ordinal_position) FROM information_schema.columns
                     WHERE table_schema = 'analytics' AND table_name = '$t' AND column_name NOT IN ('run_id', 'computed_at')")
        diff=$(q -c "SELECT count(*) FROM ((SELECT $cols FROM analytics.$t WHERE day BETWEEN '$2' AND '$3'
                       EXCEPT ALL SELECT $cols FROM $1.$t WHERE day BETWEEN '$2' AND '$3')
                      UNION ALL (SELECT $cols FROM $1.$t WHERE day BETWEEN '$2' AND '$3'
                       EXCEPT ALL SELECT $cols FROM analytics.$t WHERE day BETWEEN '$2' AND '$3')) d")
        if [ "$diff" != 0 ]; then
            echo "the $1 peer's $t differs from the engine's in $diff rows for $2..$3" >&2
            exit 1
        fi
    done
    echo "$1 peer equals the engine row for row, $2..$3" >&2
}

# The write floor's tables: the summary tables' keys and indexes, empty.
q -c "DROP SCHEMA IF EXISTS bench_floor CASCADE" -c "CREATE SCHEMA bench_floor"
for t in $tables; do
    q -c "CREATE TABLE bench_floor.$t (LIKE analytics.$t INCLUDING ALL)"
done

export_rows() {  # window from to: the engine's rows of the window, once
    local t
    mkdir -p "$work/rows-$1"
    for t in $tables; do
        q -c "\\copy (SELECT * FROM analytics.$t WHERE day BETWEEN '$2' AND '$3') TO '$work/rows-$1/$t' WITH (FORMAT binary)"
    done
}

peer_cmd() {  # peer window from to
    local t
    utc_range "$3" "$4"
    case "$1" in
        read_floor) cmd=(psql "$url" -qX
            -c "\\copy (SELECT call_id, tenant_id, status, outcome, stt_cost_usd, llm_cost_usd, tts_cost_usd, total_cost_usd, created_at, duration_seconds FROM call_logs WHERE created_at >= '$lo' AND created_at < '$hi') TO '/dev/null' WITH (FORMAT binary)"
            -c "\\copy (SELECT tenant_id, call_id, error_type, severity, resolved, created_at FROM system_errors WHERE created_at >= '$lo' AND created_at < '$hi') TO '/dev/null' WITH (FORMAT binary)") ;;
        write_floor)
            cmd=(psql "$url" -qX -1)
            for t in $tables; do
                cmd+=(-c "\\copy bench_floor.$t FROM '$work/rows-$2/$t' WITH (FORMAT binary)")
            done ;;
        read_back)
            cmd=(psql "$url" -qX)
            for t in $tables; do
                cmd+=(-c "\\copy (SELECT * FROM analytics.$t WHERE day BETWEEN '$3' AND '$4') TO '/dev/null' WITH (FORMAT binary)")
            done ;;
        cold|unchanged|changed) cmd=("$bin" run --database-url "$url" --from "$3" --to "$4" --out "$out") ;;
        duckdb) cmd=(python3 bench/duckdb_peer.py "$url" "$3" "$4" --schema duckdb --out "$work/duckdb-out") ;;
        sql_peer) cmd=(psql "$url" -qX -v ON_ERROR_STOP=1 -v schema=sql_peer -v from="$3" -v to="$4" -f bench/sql_peer.sql) ;;
    esac
}

prepare() {  # peer window from to (untimed)
    case "$1" in
        write_floor)
            q -c "TRUNCATE $(for t in $tables; do printf 'bench_floor.%s,' "$t"; done | sed 's/,$//')" ;;
        cold) window_rows_deleted "$3" "$4" ;;
        duckdb|sql_peer) window_rows_deleted "$3" "$4" "$1"; rm -rf "$work/duckdb-out"; mkdir -p "$work/duckdb-out" ;;
        changed)
            utc_range "$3" "$4"
            q -c "UPDATE call_logs SET llm_cost_usd = llm_cost_usd + 0.01, total_cost_usd = total_cost_usd + 0.01
                  WHERE created_at >= '$lo' AND created_at < '$hi' AND abs(hashtext(call_id)) % 100 = $round"
            q -c "VACUUM call_logs" ;;
    esac
}

measure() {  # peer window from to
    prepare "$@"
    peer_cmd "$@"
    local pg_before pg_after
    pg_before=$(postgres_cpu)
    /usr/bin/time -o "$work/timing" -f "%e %M %U %S" "${cmd[@]}" >"$work/summary" 2>&1 \
        || { cat "$work/summary"; exit 1; }
    pg_after=$(postgres_cpu)
    read -r wall rss user sys <"$work/timing"
    written=$(sed -n 's/^written *\([0-9]*\) rows.*/\1/p' "$work/summary")
    echo "$2 $1 $wall $rss $(echo "$user + $sys" | bc) $(echo "$pg_after - $pg_before" | bc) ${written:--}" >>"$results"
    if [ "$1" = cold ]; then
        echo "$2 $(grep '^time' "$work/summary" | sed 's/^time *//')" >>"$stages"
    fi
}

windows="full nightly day"
[ -n "$only" ] && windows=$only
range_of() {
    case $1 in
        full) echo "$first $end" ;;
        nightly) echo "$nightly_from $end" ;;
        day) echo "$end $end" ;;  # the issue's "one day" column
    esac
}

# One run to export each window's rows for the write floor.
for w in $windows; do
    read -r f t <<<"$(range_of "$w")"
    window_rows_deleted "$f" "$t"
    "$bin" run --database-url "$url" --from "$f" --to "$t" --out "$out" >/dev/null
    export_rows "$w" "$f" "$t"
    for p in $peers; do
        prepare "$p" "$w" "$f" "$t"
        peer_cmd "$p" "$w" "$f" "$t"
        "${cmd[@]}" >/dev/null
        check_peer_equals_engine "$p" "$f" "$t"
    done
done

round=0
for i in $(seq 1 "$repeat"); do
    for w in $windows; do
        read -r f t <<<"$(range_of "$w")"
        # Rotate: the floors first on odd rounds, the engine first on even.
        if [ $((i % 2)) = 1 ]; then floors_first=1; else floors_first=0; fi
        [ "$floors_first" = 1 ] && for p in read_floor write_floor read_back; do measure "$p" "$w" "$f" "$t"; done
        # The same-job peers and the engine's cold write, in rotating order.
        read -ra order <<<"$peers cold"
        for k in $(seq 0 2); do
            measure "${order[$(((k + i) % 3))]}" "$w" "$f" "$t"
        done
        measure unchanged "$w" "$f" "$t"
        round=$((round + 1))
        measure changed "$w" "$f" "$t"
        [ "$floors_first" = 0 ] && for p in read_floor write_floor read_back; do measure "$p" "$w" "$f" "$t"; done
    done
done

summary_rows=$(for w in $windows; do
    read -r f t <<<"$(range_of "$w")"
    echo "$w $(q -c "SELECT (SELECT count(*) FROM analytics.tenant_daily WHERE day BETWEEN '$f' AND '$t') + (SELECT count(*) FROM analytics.tenant_daily_outcomes WHERE day BETWEEN '$f' AND '$t') + (SELECT count(*) FROM analytics.tenant_daily_errors WHERE day BETWEEN '$f' AND '$t') + (SELECT count(*) FROM analytics.data_quality_findings WHERE day BETWEEN '$f' AND '$t')")"
done)
report=bench/results${suffix:+-$suffix}.md
python3 - "$results" "$calls" "$days" "$stages" "$shape" "$summary_rows" <<'PY' | tee "$report"
import sys, statistics, platform, os, datetime
rows = [l.split() for l in open(sys.argv[1])]
calls, days, shape = int(sys.argv[2]), int(sys.argv[3]), sys.argv[5]
summary_rows = dict(l.split() for l in sys.argv[6].splitlines())
print("# callrollup against the job's floor\n")
width = "" if "--transcript-bytes" in shape else "1 kB transcripts, "
print(f"{datetime.date.today()} on {os.cpu_count()} cores ({platform.machine()}), {calls:,} calls over {days} days, {width}"
      + (f"shape `{shape}`" if shape else "`generate`'s default shape") + "\n")
print("| window | peer | median s | min–max s | ratio to job floor | peak RSS MiB | CPU s (user+sys) | Postgres CPU s | rows written |")
print("|---|---|---|---|---|---|---|---|---|")
names = {
    "read_floor": "read floor: psql \\copy out (binary)",
    "write_floor": "write floor: psql \\copy in (binary, 1 tx)",
    "job_floor": "**job floor** (read + write)",
    "read_back": "read back the window's summary rows",
    "duckdb": "DuckDB 1.5.5 + postgres extension, the same job, cold",
    "sql_peer": "the same job in plain SQL inside Postgres, cold",
    "cold": "callrollup run, cold write",
    "unchanged": "callrollup run, nothing changed",
    "changed": "callrollup run, 1 % of calls changed",
}
for window in ("full", "nightly", "day"):
    got = [r for r in rows if r[0] == window]
    if not got:
        continue
    med, stat = {}, {}
    for peer in ("read_floor", "write_floor", "read_back", "duckdb", "sql_peer", "cold", "unchanged", "changed"):
        rs = [r for r in got if r[1] == peer]
        ts = [float(r[2]) for r in rs]
        med[peer] = statistics.median(ts)
        stat[peer] = (min(ts), max(ts), max(int(r[3]) for r in rs) / 1024,
                      statistics.median(float(r[4]) for r in rs),
                      statistics.median(float(r[5]) for r in rs),
                      rs[-1][6])
    med["job_floor"] = med["read_floor"] + med["write_floor"]
    job = med["job_floor"]
    print(f"| {window} | ({summary_rows.get(window, '?')} summary rows) | | | | | | | |")
    for peer in ("read_floor", "write_floor", "job_floor", "read_back", "duckdb", "sql_peer", "cold", "unchanged", "changed"):
        if peer == "job_floor":
            print(f"| {window} | {names[peer]} | **{job:.2f}** | | 1.00× | | | | |")
            continue
        lo, hi, rss, cpu, pg, written = stat[peer]
        ratio = f"**{med[peer] / job:.2f}×**" if peer in ("cold", "unchanged", "changed") else f"{med[peer] / job:.2f}×"
        if peer == "cold":
            ratio += f" ({med['duckdb'] / med['cold']:.2f}× faster than DuckDB, {med['sql_peer'] / med['cold']:.2f}× than SQL)"
        print(f"| {window} | {names[peer]} | {med[peer]:.2f} | {lo:.2f}–{hi:.2f} | {ratio} | {rss:.0f} | {cpu:.2f} | {pg:.2f} | {written} |")
print("\nPer-stage times of each cold engine run (from its summary; `extract` and")
print("`write back` run on their own threads, overlapped with the rest):\n")
for line in open(sys.argv[4]):
    window, stages = line.split(" ", 1)
    print(f"* {window}: {stages.strip()}")
PY
q -c "DROP SCHEMA bench_floor CASCADE"
[ "$keep" = 1 ] || psql "$admin" -qXc "DROP DATABASE $db WITH (FORCE)"
