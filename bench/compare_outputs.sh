#!/usr/bin/env bash
# Byte-compares what two builds of callrollup write, for refactors that
# must not change behaviour: demo's folder (its snapshot and reports, on a
# second data shape: 30 zones, 12 error types), a file-target run over a
# snapshot, a --tenant merge into it, and a shard run. (`extract` was
# compared by hand: its Parquet files and manifest are byte-identical but
# for created_at.)
#
#   bench/compare_outputs.sh OLD_BINARY NEW_BINARY SNAPSHOT_DIR
#
# SNAPSHOT_DIR: `callrollup extract --from 2026-03-07 --to 2026-03-10` of
# the test fixture (tests/fixtures/platform_*.sql). Only the manifest's
# created_at may differ; it is left out of the comparison.
set -euo pipefail
old=$(realpath "$1"); new=$(realpath "$2"); snap=$(realpath "$3")
work=$(mktemp -d)
cd "$work"
for build in old new; do
    bin=${!build}
    "$bin" demo --out "demo-$build" --end 2026-03-31 --calls 40000 --zones 30 --error-types 12 -q >/dev/null
    "$bin" run --from 2026-03-07 --to 2026-03-10 --source "$snap" --out "run-$build" -q >/dev/null
    "$bin" run --from 2026-03-07 --to 2026-03-10 --source "$snap" --out "run-$build" -q \
        --tenant a0000000-0000-0000-0000-000000000001 >/dev/null
    "$bin" run --from 2026-03-07 --to 2026-03-10 --source "$snap" --out "shard-$build" -q \
        --tenant-shard 1/2 >/dev/null
    sed -i '/"created_at"/d' "demo-$build/snapshot/manifest.json"
done
status=0
for output in demo run shard; do
    sums() { (cd "$1" && find . -type f ! -name '.callrollup*.lock' | sort | xargs md5sum); }
    if diff <(sums "$output-old") <(sums "$output-new") >/dev/null; then
        echo "$output: $(sums "$output-old" | wc -l) files, byte-identical"
    else
        echo "$output: DIFFERENT"
        diff <(sums "$output-old") <(sums "$output-new") | head -20
        status=1
    fi
done
rm -rf "$work"
exit $status
