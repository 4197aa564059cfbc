#!/usr/bin/env bash
# How many data-quality findings ten nightly runs leave (issue "Fast at
# scale, round two": the table must not grow with every run's lookback).
#
#   bench/findings.sh DATABASE_URL LAST_DAY [RUNS]
#
# Runs `callrollup run --from D-3 --to D` (what the nightly default reads:
# the day and a lookback of 3) for the RUNS (default 10) days ending on
# LAST_DAY, one after another, against a
# platform database `callrollup generate` loaded, and prints after each
# run the findings' row count, the number of distinct (kind, tenant, day)
# and the most rows one of them holds (1: no finding is stored twice).
set -euo pipefail
cd "$(dirname "$0")/.."
url=$1 last=$2 runs=${3:-10}
bin=${CARGO_TARGET_DIR:-target}/release/callrollup
[ -x "$bin" ] || cargo build --release --quiet
"$bin" migrate --database-url "$url" >/dev/null
printf '%-12s %9s %9s %9s\n' night rows distinct max_dup
for i in $(seq $((runs - 1)) -1 0); do
    day=$(date -u -d "$last - $i days" +%F)
    "$bin" run --database-url "$url" --from "$(date -u -d "$day - 3 days" +%F)" --to "$day" \
        --out "$(mktemp -d)" >/dev/null 2>&1
    psql -XAtq "$url" -F ' ' -c "
        SELECT (SELECT count(*) FROM analytics.data_quality_findings),
               count(*), coalesce(max(n), 0)
        FROM (SELECT count(*) n FROM analytics.data_quality_findings
              GROUP BY kind, tenant_id, day) per_finding" |
        { read -r rows distinct dup; printf '%-12s %9s %9s %9s\n' "$day" "$rows" "$distinct" "$dup"; }
done
