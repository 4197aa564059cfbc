#!/usr/bin/env bash
# The engine against the extraction floor (issue "Fast at scale").
#
#   bench/run.sh [--calls N] [--tenants N] [--days N] [--repeat N] [--keep]
#
# Loads a platform with `callrollup generate` into a scratch database
# (default 1,000 tenants, 5,000,000 calls, 90 days, 1 kB transcripts), then
# times, each --repeat times with the order rotated:
#   floor      psql \copy of exactly the columns the engine needs, for the
#              window's UTC range, to /dev/null in binary (call_logs and
#              system_errors, one stream)
#   callrollup `run` end to end (extract, rollup, files, write-back)
# for the full window and for the nightly window (the last complete day and
# the default lookback of 3), with peak RSS from /usr/bin/time. Prints a
# table with the ratio to the floor and writes it to bench/results.md.
# A benchmark, not a test: nothing here asserts a time.
set -euo pipefail
cd "$(dirname "$0")/.."

calls=5000000 tenants=1000 days=90 repeat=3 keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --calls) calls=$2; shift 2 ;;
        --tenants) tenants=$2; shift 2 ;;
        --days) days=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

admin=${CALLROLLUP_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=callrollup_bench_${calls}
url="${admin%/*}/$db"
bin=${CARGO_TARGET_DIR:-target}/release/callrollup
end=2026-11-20
cargo build --release --quiet

if [ "$(psql "$admin" -XAtc "SELECT count(*) FROM pg_database WHERE datname = '$db'")" = 0 ]; then
    psql "$admin" -qXc "CREATE DATABASE $db"
    /usr/bin/time -f "generate: %e s, peak RSS %M KB" \
        "$bin" generate --database-url "$url" --tenants "$tenants" --calls "$calls" \
        --days "$days" --end "$end" --seed 1 --transcript-bytes 1000
fi
"$bin" migrate --database-url "$url" >/dev/null

first=$(date -d "$end - $((days - 1)) days" +%F)
nightly_from=$(date -d "$end - 3 days" +%F)
out=$(mktemp -d)
results=$(mktemp)
timing=$(mktemp)

# The floor: the same columns and UTC range the engine reads.
floor_cmd() {  # from to
    local lo hi
    lo=$(date -u -d "$1 00:00 UTC - 14 hours" '+%F %T+00')
    hi=$(date -u -d "$2 00:00 UTC + 1 day + 12 hours" '+%F %T+00')
    cmd=(psql "$url" -qX
        -c "\\copy (SELECT call_id, tenant_id, status, outcome, stt_cost_usd, llm_cost_usd, tts_cost_usd, total_cost_usd, created_at, duration_seconds FROM call_logs WHERE created_at >= '$lo' AND created_at < '$hi') TO '/dev/null' WITH (FORMAT binary)"
        -c "\\copy (SELECT tenant_id, call_id, error_type, severity, resolved, created_at FROM system_errors WHERE created_at >= '$lo' AND created_at < '$hi') TO '/dev/null' WITH (FORMAT binary)")
}
engine_cmd() {  # from to
    cmd=("$bin" run --database-url "$url" --from "$1" --to "$2" --out "$out")
}
stages=$(mktemp)
measure() {  # peer window from to
    "${1}_cmd" "$3" "$4"
    # Back-to-back re-writes of a 90-day window leave millions of dead
    # summary rows that autovacuum has not reached yet; a real night
    # re-writes a few days. Vacuum first (untimed) so each run starts alike.
    if [ "$1" = engine ]; then
        psql "$url" -qXc "VACUUM analytics.tenant_daily, analytics.tenant_daily_outcomes, analytics.tenant_daily_errors" >/dev/null
    fi
    /usr/bin/time -o "$timing" -f "%e %M" "${cmd[@]}" >"$summary" 2>&1
    echo "$2 $1 $(tail -n 1 "$timing")" >> "$results"
    # The engine's own per-stage breakdown (its summary's `time` line).
    if [ "$1" = engine ]; then
        echo "$2 $(grep '^time' "$summary" | sed 's/^time *//')" >> "$stages"
    fi
}
summary=$(mktemp)

for i in $(seq 1 "$repeat"); do
    # Rotate which peer goes first, so caches favour neither.
    if [ $((i % 2)) = 1 ]; then order="floor engine"; else order="engine floor"; fi
    for peer in $order; do
        measure "$peer" full "$first" "$end"
        measure "$peer" nightly "$nightly_from" "$end"
    done
done

python3 - "$results" "$calls" "$days" "$stages" <<'PY' | tee bench/results.md
import sys, statistics, platform, os, datetime
rows = [l.split() for l in open(sys.argv[1])]
calls, days = int(sys.argv[2]), int(sys.argv[3])
print(f"# callrollup vs the extraction floor\n")
print(f"{datetime.date.today()} on {os.cpu_count()} cores ({platform.machine()}), {calls:,} calls over {days} days, 1 kB transcripts\n")
print("| window | peer | median s | min–max s | ratio to floor | peak RSS MiB |")
print("|---|---|---|---|---|---|")
for window in ("full", "nightly"):
    med = {}
    for peer in ("floor", "engine"):
        ts = [float(r[2]) for r in rows if r[0] == window and r[1] == peer]
        rss = max(int(r[3]) for r in rows if r[0] == window and r[1] == peer) / 1024
        med[peer] = statistics.median(ts)
        ratio = med[peer] / med["floor"]
        name = "psql \\copy (binary, 1 stream)" if peer == "floor" else "callrollup run"
        print(f"| {window} | {name} | {med[peer]:.2f} | {min(ts):.2f}–{max(ts):.2f} | {ratio:.2f}× | {rss:.0f} |")
print("\nPer-stage times of each engine run (from its summary; `extract` runs on")
print("its own thread, overlapped with the rest; `wait for source` is the time")
print("the rollup waited for it):\n")
for line in open(sys.argv[4]):
    window, stages = line.split(" ", 1)
    print(f"* {window}: {stages.strip()}")
PY
rm -rf "$out" "$results" "$timing" "$stages" "$summary"
[ "$keep" = 1 ] || psql "$admin" -qXc "DROP DATABASE $db WITH (FORCE)"
