#!/usr/bin/env bash
# Wall time and peak memory of `callrollup run` over a window of about a
# million calls. Usage: bench/run_1m.sh [CALLS]   (default 1,100,000 over
# 10 days; the 9-day window 2026-03-02..03-10 holds about 1,000,000)
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-1100000}
admin=${CALLROLLUP_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=callrollup_bench
url="${admin%/*}/$db"
cargo build --release --quiet
psql "$admin" -qXc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
echo "loading $calls calls…"
start=$(date +%s.%N)
psql "$url" -qX -v ON_ERROR_STOP=1 -f tests/fixtures/platform_schema.sql
psql "$url" -qX -v ON_ERROR_STOP=1 -v calls="$calls" -f bench/platform_1m.sql -f tests/fixtures/platform_indexes.sql
echo "loaded in $(echo "$(date +%s.%N) - $start" | bc) s"
"${CARGO_TARGET_DIR:-target}"/release/callrollup migrate --database-url "$url"
out=$(mktemp -d)
for i in 1 2 3; do
    /usr/bin/time -f "run $i: wall %e s, peak RSS %M KB" \
        "${CARGO_TARGET_DIR:-target}"/release/callrollup run --database-url "$url" --from 2026-03-02 --to 2026-03-10 --out "$out" 2>&1 \
        | grep -E "^(calls|total cost|time|run [0-9]: wall)"
done
psql "$admin" -qXc "DROP DATABASE $db WITH (FORCE)"
rm -rf "$out"
