#!/usr/bin/env bash
# How many spikes `errors` calls on generated platforms, and how many of
# them are the injected incident: the detection bench behind the spike
# rule (docs/CONTRACT.md §6.2, bench/spikes.md). Not a test: the numbers
# depend on the rule's constants, which this measures.
#
#   bench/spikes.sh [BINARY ...]     default: target/release/callrollup
#
# Each binary runs `demo` on two shapes (the default: 60 tenants, 200,000
# calls, 30 days; and seed 11: 150 tenants, 400,000 calls, 45 days), then
# `errors --by tenant` and `--by error_type` over the whole window, and
# prints the spikes on the incident's day and on every other day.
set -euo pipefail
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=(target/release/callrollup)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
shapes=("default::" "seed11:--seed 11 --tenants 150 --calls 400000 --days 45")
printf '%-28s %-8s %-11s %8s %7s %13s %7s\n' binary shape by buckets spikes incident_day others
for bin in "${binaries[@]}"; do
  for shape in "${shapes[@]}"; do
    name=${shape%%:*}; flags=${shape#*:}; flags=${flags#:}
    out="$scratch/$name"
    rm -rf "$out"
    # shellcheck disable=SC2086
    "$bin" demo --out "$out" $flags >"$out.tour" 2>/dev/null
    window=$(sed -n 's/^callrollup demo: .* from \([0-9-]*\) to \([0-9-]*\)$/\1 \2/p' "$out.tour")
    incident=$(sed -n 's/.*(injected: .* on \([0-9-]*\))$/\1/p' "$out.tour")
    read -r from to <<<"$window"
    for by in tenant error_type; do
      "$bin" errors --reports "$out/reports" --source "$out/snapshot" --from "$from" --to "$to" \
        --by "$by" --format csv -o "$out.$by.csv" 2>/dev/null
      python3 - "$out.$by.csv" "$incident" "$bin" "$name" "$by" <<'PY'
import csv, sys
path, incident, binary, shape, by = sys.argv[1:]
rows = list(csv.DictReader(open(path)))
spikes = [r for r in rows if r["spike"] == "true"]
on_day = sum(r["bucket"] == incident for r in spikes)
print(f"{binary[-28:]:<28} {shape:<8} {by:<11} {len(rows):>8} {len(spikes):>7} {on_day:>13} {len(spikes) - on_day:>7}")
PY
    done
  done
done
