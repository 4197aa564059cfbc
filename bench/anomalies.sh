#!/usr/bin/env bash
# Detection quality and speed of `callrollup anomalies` (issue 44).
#
#   bench/anomalies.sh [--tenants N] [--calls N] [--keep] [--binary PATH]
#   bench/anomalies.sh --reuse DIR [--binary PATH]
#
# --keep keeps the three databases and the work folder (its path is
# printed); --reuse DIR scores the kept databases again with the binary
# (after a change to the rule), without generating or rolling up.
#
# Generates three years of a platform into scratch databases and rolls
# each one up whole:
#
#   injected   seed 1, quiet weekends, --inject-anomalies: a seeded set of
#              tenant anomalies (LLM x1.5/x2/x3, STT x2, TTS x1.5 for one
#              to three days, doubled calls for a day) and one provider
#              price change (TTS x1.5 for every tenant, for the rest of
#              the year)
#   clean      the same year without them (same seed and shape)
#   other      seed 2, another shape (800 tenants, 40 zones, 12 error
#              types, 8 outcomes, 2/3 the calls), quiet weekends: a year
#              the rule was not tuned on
#
# Then `anomalies --format json` over each year (after the first five
# weeks, which have no baseline yet), scored by bench/anomalies_score.py
# against what was injected: recall per kind and size (tenants by their
# median calls a day), false alarms per 10,000 tenant days assessed. And
# the speed: a 90-day `anomalies` over the year's summary tables, and the
# `cost anomalies` stage of a nightly run (--date END --lookback 3) beside
# its total. Writes bench/anomalies.md. A benchmark, not a test: nothing
# here asserts a time or a rate.
set -euo pipefail
cd "$(dirname "$0")/.."

tenants=1000 calls=7300000 keep=0 bin=target/release/callrollup reuse=""
while [ $# -gt 0 ]; do
    case "$1" in
        --tenants) tenants=$2; shift 2 ;;
        --calls) calls=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        --binary) bin=$2; shift 2 ;;
        --reuse) reuse=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
admin=${CALLROLLUP_BENCH_URL:-postgres://postgres@127.0.0.1:5432/postgres}
end=2026-11-30 days=365
first=$(date -d "$end - $((days - 1)) days" +%F)
from=$(date -d "$first + 35 days" +%F)
last90=$(date -d "$end - 89 days" +%F)
if [ -n "$reuse" ]; then
    work=$reuse
    read -r tenants calls <"$work/size"
    rm -f "$work/speed"
elif [ "$keep" = 1 ]; then
    work=$(mktemp -d)
    echo "work folder (kept): $work" >&2
    echo "$tenants $calls" >"$work/size"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    echo "$tenants $calls" >"$work/size"
fi
url_of() { echo "${admin%/*}/$1"; }

year() {
    local name=$1; shift
    local db=callrollup_bench_anomalies_$name
    local url; url=$(url_of "$db")
    if [ -z "$reuse" ]; then
        psql -q "$admin" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
        echo "== $name: generate $*" >&2
        DATABASE_URL=$url "$bin" -q generate --end "$end" --days $days --transcript-bytes 0 "$@" >&2
        DATABASE_URL=$url "$bin" -q migrate >&2
        DATABASE_URL=$url "$bin" -q run --from "$first" --to "$end" --out "$work/$name" >/dev/null
    fi
    DATABASE_URL=$url "$bin" -q anomalies --from "$from" --to "$end" --format json >"$work/$name.json"
    psql -qAt --csv "$url" -c "SELECT tenant_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY calls)
        FROM analytics.tenant_daily WHERE day BETWEEN '$from' AND '$end' GROUP BY 1" >"$work/$name.calls.csv"
    # Speed: a 90-day analysis (best of 3), and a nightly run's stage.
    local best=999
    for _ in 1 2 3; do
        local t0 t1; t0=$(date +%s.%N)
        DATABASE_URL=$url "$bin" -q anomalies --from "$last90" --to "$end" --format json >/dev/null
        t1=$(date +%s.%N)
        best=$(echo "$t1 - $t0" | bc | awk -v b="$best" '{ print ($1 < b) ? $1 : b }')
    done
    # The nightly window: the last day and the 3 before it.
    local nightly; nightly=$(DATABASE_URL=$url "$bin" -q run --from "$(date -d "$end - 3 days" +%F)" --to "$end" --out "$work/$name" | grep '^time')
    local stage total
    stage=$(echo "$nightly" | grep -o 'cost anomalies[ (overlapped)]* [0-9.]*s' | grep -o '[0-9.]*s$' | tr -d s)
    total=$(echo "$nightly" | grep -o 'total [0-9.]*s' | grep -o '[0-9.]*')
    echo "$name|$best|$stage|$total" >>"$work/speed"
    [ "$keep" = 1 ] || [ -n "$reuse" ] || psql -q "$admin" -c "DROP DATABASE $db"
}

year injected --tenants "$tenants" --calls "$calls" --seed 1 --quiet-weekends --inject-anomalies "$work/injected.csv"
year clean --tenants "$tenants" --calls "$calls" --seed 1 --quiet-weekends
year other --tenants $((tenants * 4 / 5)) --calls $((calls * 2 / 3)) --seed 2 --quiet-weekends \
    --zones 40 --error-types 12 --outcomes 8

python3 bench/anomalies_score.py "$work" "$(git rev-parse --short HEAD)" "$tenants" "$calls" | tee bench/anomalies.md
