#!/usr/bin/env bash
# Wall time and peak memory of `callrollup costs` over a year of 1,000
# tenants (from `generate`), reading the summary tables and reading the
# report files. Usage: bench/costs.sh [CALLS]   (default 3,650,000: ten
# calls per tenant per day, 365 days; the summary holds 365,000 tenant days)
# KEEP=1 keeps the database and the reports (in /tmp/callrollup-bench-costs)
# and a later run with KEEP=1 reuses them instead of generating again.
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-3650000}
admin=${CALLROLLUP_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=callrollup_bench_costs
url="${admin%/*}/$db"
bin="${CARGO_TARGET_DIR:-target}/release/callrollup"
cargo build --release --quiet
out=/tmp/callrollup-bench-costs
if [[ "${KEEP:-}" == 1 && -d "$out/reports" ]] && psql "$url" -qXAtc 'SELECT 1' >/dev/null 2>&1; then
    echo "reusing $db and $out"
else
    psql "$admin" -qXc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    rm -rf "$out" && mkdir -p "$out"
    "$bin" generate --database-url "$url" --tenants 1000 --calls "$calls" --days 365 --end 2026-10-31 --transcript-bytes 0
    "$bin" migrate --database-url "$url"
    /usr/bin/time -f "run (a year, for the summary): wall %e s, peak RSS %M KB" \
        "$bin" run --database-url "$url" --from 2025-11-01 --to 2026-10-31 --out "$out/reports" 2>&1 | grep -E "^(calls|total cost|rows|run \(a year)"
fi
echo "summary: $(psql "$url" -qXAtc 'SELECT count(*) FROM analytics.tenant_daily') tenant days"
for i in 1 2 3; do
    for by in tenant day; do
        /usr/bin/time -f "costs --month 2026-10 --by $by (database) $i: wall %e s, peak RSS %M KB" \
            "$bin" costs --database-url "$url" --month 2026-10 --by "$by" --format csv -o "$out/costs.csv" 2>&1 | grep -E "wall"
        /usr/bin/time -f "costs --month 2026-10 --by $by (--reports) $i: wall %e s, peak RSS %M KB" \
            "$bin" costs --reports "$out/reports" --month 2026-10 --by "$by" --format csv -o "$out/costs-files.csv" 2>&1 | grep -E "wall"
    done
    /usr/bin/time -f "costs --month 2026-10 --format xlsx (database) $i: wall %e s, peak RSS %M KB" \
        "$bin" costs --database-url "$url" --month 2026-10 --format xlsx -o "$out/costs.xlsx" 2>&1 | grep -E "wall"
    /usr/bin/time -f "costs --from 2025-11-01 --to 2026-10-31 (a year, database) $i: wall %e s, peak RSS %M KB" \
        "$bin" costs --database-url "$url" --from 2025-11-01 --to 2026-10-31 --format csv -o "$out/year.csv" 2>&1 | grep -E "wall"
    /usr/bin/time -f "costs --month 2026-10 --reconcile (database) $i: wall %e s, peak RSS %M KB" \
        "$bin" costs --database-url "$url" --month 2026-10 --reconcile --format csv -o "$out/rec.csv" 2>&1 | grep -E "wall"
done
cmp "$out/costs.csv" "$out/costs-files.csv" && echo "database and --reports give the same CSV (--by day)"
if [[ "${KEEP:-}" != 1 ]]; then
    psql "$admin" -qXc "DROP DATABASE $db WITH (FORCE)"
    rm -rf "$out"
fi
