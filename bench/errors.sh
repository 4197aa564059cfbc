#!/usr/bin/env bash
# Wall time and peak memory of `callrollup errors` and `callrollup query`
# over the 90-day, 5 M-call bench window (1,000 tenants, `generate`'s data,
# 1 kB transcripts as in bench/run.sh), after one `run` of the window.
#   bench/errors.sh [CALLS]      (default 5,000,000)
# KEEP=1 keeps the database and the reports (in /tmp/callrollup-bench-errors)
# and a later run with KEEP=1 reuses them instead of generating again.
# SHAPE="--zones 30 --error-types 16 --outcomes 7" measures another shape
# of data (its own database and folder).
# A benchmark, not a test: nothing here asserts a time.
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-5000000}
admin=${CALLROLLUP_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
shape=${SHAPE:-}
suffix=$(printf '%s' "$shape" | tr -c 'a-z0-9' '_' | tr -s '_')
db=callrollup_bench_errors${suffix:+_$suffix}
db=${db:0:63}
url="${admin%/*}/$db"
bin="${CARGO_TARGET_DIR:-target}/release/callrollup"
cargo build --release --quiet
out=/tmp/callrollup-bench-errors${suffix:+-$suffix}
end=2026-11-20
from=$(date -d "$end - 89 days" +%F)
if [[ "${KEEP:-}" == 1 && -d "$out/reports" ]] && psql "$url" -qXAtc 'SELECT 1' >/dev/null 2>&1; then
    echo "reusing $db and $out"
else
    psql "$admin" -qXc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    rm -rf "$out" && mkdir -p "$out"
    "$bin" generate --database-url "$url" --tenants 1000 --calls "$calls" --days 90 --end "$end" --seed 1 --transcript-bytes 1000 $shape
    "$bin" migrate --database-url "$url"
    /usr/bin/time -f "run (the window, for the summary): wall %e s, peak RSS %M KB" \
        "$bin" run --database-url "$url" --from "$from" --to "$end" --out "$out/reports" 2>&1 | grep -E "^(calls|rows|run \(the)"
fi
measure() {  # label, command...
    local label=$1; shift
    /usr/bin/time -f "$label: wall %e s, peak RSS %M KB" "$@" 2>&1 >/dev/null | grep -E "wall"
}
for i in 1 2 3; do
    measure "errors 90 days by error_type (database) $i" \
        "$bin" errors --database-url "$url" --from "$from" --to "$end" --format json
    measure "errors 90 days by tenant (database) $i" \
        "$bin" errors --database-url "$url" --from "$from" --to "$end" --by tenant --format json
    measure "errors 90 days by tenant (--reports, no source) $i" \
        "$bin" errors --reports "$out/reports" --from "$from" --to "$end" --by tenant --format json
    measure "errors 90 days by error_type + PNG chart (database) $i" \
        "$bin" errors --database-url "$url" --from "$from" --to "$end" --chart "$out/errors.png"
    measure "errors 14 days by hour (source) $i" \
        "$bin" errors --database-url "$url" --from "$(date -d "$end - 13 days" +%F)" --to "$end" --bucket hour
    measure "query group-by tenant, day over call_logs, 90 days $i" \
        "$bin" query --database-url "$url" --from "$from" --to "$end" --format csv \
        "SELECT tenant_id, day, count(*) AS calls, sum(total_cost_usd) AS cost FROM call_logs GROUP BY tenant_id, day"
    measure "query join system_errors to tenants, 90 days $i" \
        "$bin" query --database-url "$url" --from "$from" --to "$end" --format csv \
        "SELECT t.business_name, e.error_type, count(*) AS n FROM system_errors e JOIN tenants t ON e.tenant_id = t.tenant_id GROUP BY 1, 2"
    measure "query over tenant_daily (database), 90 days $i" \
        "$bin" query --database-url "$url" --from "$from" --to "$end" --format csv \
        "SELECT day, sum(calls) AS calls, sum(total_cost_usd) AS cost FROM tenant_daily GROUP BY day"
done
"$bin" errors --database-url "$url" --from "$from" --to "$end" --format json -o "$out/db.json"
# The days before the window have no run: both read them from the source.
"$bin" errors --reports "$out/reports" --database-url "$url" --from "$from" --to "$end" --format json -o "$out/files.json"
cmp "$out/db.json" "$out/files.json" && echo "database and --reports give the same errors JSON"
if [[ "${KEEP:-}" != 1 ]]; then
    psql "$admin" -qXc "DROP DATABASE $db WITH (FORCE)"
    rm -rf "$out"
fi
