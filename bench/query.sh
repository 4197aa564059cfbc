#!/usr/bin/env bash
# `callrollup query` over the 90-day, 5 M-call bench window (1,000 tenants,
# `generate`'s data, 1 kB transcripts: wide heap rows), beside what the
# same question costs without the engine: Postgres answering it itself
# (the UTC version: no tenant days), and a binary COPY of the columns the
# query names over the window's time range, read in storage order (a
# sequential scan) and as the planner chooses.
#   bench/query.sh [CALLS]       (default 5,000,000)
# It reuses bench/errors.sh's database and reports (KEEP=1 bench/errors.sh
# makes them). A benchmark, not a test: nothing here asserts a time.
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-5000000}
admin=${CALLROLLUP_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=callrollup_bench_errors
url="${admin%/*}/$db"
bin="${CARGO_TARGET_DIR:-target}/release/callrollup"
[[ -x "$bin" ]] || cargo build --release --quiet
out=/tmp/callrollup-bench-errors
end=2026-11-20
from=$(date -d "$end - 89 days" +%F)
if ! psql "$url" -qXAtc 'SELECT 1 FROM analytics.tenant_daily LIMIT 1' >/dev/null 2>&1; then
    echo "no bench database: run KEEP=1 bench/errors.sh $calls first" >&2
    exit 2
fi
# The window's UTC range, widened by a day either side (tenant days).
lo=$(date -d "$from - 1 day" +%F); hi=$(date -d "$end + 2 days" +%F)
measure() {  # label, command...
    local label=$1; shift
    /usr/bin/time -f "$label: wall %e s, peak RSS %M KB" "$@" 2>&1 >/dev/null | grep -E "wall"
}
top5="SELECT tenant_id, sum(total_cost_usd) AS cost, count(*) AS calls FROM call_logs GROUP BY tenant_id ORDER BY 2 DESC LIMIT 5"
for i in 1 2 3; do
    measure "query top 5 tenants by cost, 90 days (engine) $i" \
        "$bin" query --database-url "$url" --from "$from" --to "$end" --format csv "$top5"
    measure "query lag day over day per tenant, 90 days (engine) $i" \
        "$bin" query --database-url "$url" --from "$from" --to "$end" --format csv \
        "WITH d AS (SELECT tenant_id, day, count(*) AS calls FROM call_logs GROUP BY tenant_id, day) SELECT tenant_id, day, calls - lag(calls) OVER (PARTITION BY tenant_id ORDER BY day) AS change FROM d"
    measure "query p95 duration per tenant, 90 days (engine) $i" \
        "$bin" query --database-url "$url" --from "$from" --to "$end" --format csv \
        "SELECT tenant_id, percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_seconds) AS p95 FROM call_logs GROUP BY tenant_id"
    measure "query over tenant_daily (database) $i" \
        "$bin" query --database-url "$url" --from "$from" --to "$end" --format csv \
        "SELECT day, sum(calls) AS calls, sum(total_cost_usd) AS cost FROM tenant_daily GROUP BY day"
    measure "Postgres itself, UTC top 5 (parallel scan) $i" \
        psql "$url" -qXAtc "SELECT tenant_id, sum(total_cost_usd), count(*) FROM call_logs WHERE created_at >= '$lo' AND created_at < '$hi' GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
    measure "binary COPY of tenant_id, total_cost_usd, created_at, storage order $i" \
        psql "$url" -qXAtc "SET enable_indexscan = off; SET enable_bitmapscan = off; COPY (SELECT tenant_id, total_cost_usd, created_at FROM call_logs WHERE created_at >= '$lo' AND created_at < '$hi') TO STDOUT (FORMAT binary)"
    measure "binary COPY of the same, as the planner chooses $i" \
        psql "$url" -qXAtc "COPY (SELECT tenant_id, total_cost_usd, created_at FROM call_logs WHERE created_at >= '$lo' AND created_at < '$hi') TO STDOUT (FORMAT binary)"
done
