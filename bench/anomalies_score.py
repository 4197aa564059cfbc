"""Scores `callrollup anomalies` against what `generate --inject-anomalies`
put into a year (bench/anomalies.sh): recall per kind and tenant size,
false alarms per 10,000 tenant days assessed, on the injected year, the
same year without injections, and another seed and shape.

    python3 bench/anomalies_score.py WORKDIR COMMIT TENANTS CALLS
"""

import csv
import datetime as dt
import json
import sys
from collections import defaultdict

work, commit, tenants, calls = sys.argv[1:5]


def days(first, last):
    d, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    while d <= end:
        yield d.isoformat()
        d += dt.timedelta(days=1)


def median_calls(name):
    with open(f"{work}/{name}.calls.csv") as f:
        return {row[0]: float(row[1]) for row in csv.reader(f)}


def band(calls_a_day):
    if calls_a_day >= 50:
        return ">= 50 calls/day"
    if calls_a_day >= 10:
        return "10-49 calls/day"
    return "< 10 calls/day (not assessed)"


def score(name, injections):
    found = json.load(open(f"{work}/{name}.json"))
    sizes = median_calls(name)
    rises = found["rises"]
    # (tenant, day) -> kinds of the lines found.
    lines = defaultdict(set)
    for line in rises:
        lines[(line["tenant_id"] or "platform", line["day"])].add(
            (line["kind"], line["component"])
        )
    expected = set()  # (tenant, day) of injected anomalies
    platform_days = set()
    recall = defaultdict(lambda: [0, 0])  # (kind, factor, band) -> [found, all]
    for inj in injections:
        if inj["tenant_id"] == "platform":
            platform_days.update(days(inj["first_day"], inj["last_day"]))
            first = inj["first_day"]
            key = ("platform price change", f"{inj['component']} x{inj['factor']}", "every tenant")
            recall[key][1] += 1
            if any(k[1] == inj["component"] for k in lines.get(("platform", first), ())):
                recall[key][0] += 1
            continue
        size = band(sizes.get(inj["tenant_id"], 0))
        for day in days(inj["first_day"], inj["last_day"]):
            expected.add((inj["tenant_id"], day))
            kind = "unit cost" if inj["kind"] == "unit_cost" else "volume"
            key = (kind, f"{inj['component']} x{inj['factor']}", size)
            recall[key][1] += 1
            got = lines.get((inj["tenant_id"], day), set())
            want = {"unit_cost", "both"} if inj["kind"] == "unit_cost" else {"volume", "both"}
            if any(k in want for k, _ in got):
                recall[key][0] += 1
    false_alarms = []
    for line in rises:
        tenant = line["tenant_id"] or "platform"
        if tenant == "platform":
            if line["day"] not in platform_days:
                false_alarms.append(line)
        elif (tenant, line["day"]) not in expected:
            false_alarms.append(line)
    assessed = found["tenant_days_assessed"]
    return {
        "recall": recall,
        "false": false_alarms,
        "assessed": assessed,
        "rises": len(rises),
        "falls": len(found["falls"]),
        "not_assessed": len(found["not_assessed"]),
    }


with open(f"{work}/injected.csv") as f:
    injections = list(csv.DictReader(f))
speed = {}
with open(f"{work}/speed") as f:
    for row in f:
        name, best, stage, total = row.strip().split("|")
        speed[name] = (best, stage, total)

out = []
out.append("# `callrollup anomalies`: detection quality and speed\n")
out.append(
    f"bench/anomalies.sh at {commit}, {dt.date.today()}: a year (365 days to 2026-11-30) of "
    f"{tenants} tenants and {calls} calls with quiet weekends; baselines from the first five "
    "weeks, anomalies assessed from day 36 on.\n"
)
injected = score("injected", injections)
out.append("## Recall on the injected year\n")
out.append("| kind | change | tenants | found | injected | recall |")
out.append("|---|---|---|---:|---:|---:|")
for key in sorted(injected["recall"]):
    got, total = injected["recall"][key]
    out.append(f"| {key[0]} | {key[1]} | {key[2]} | {got} | {total} | {100 * got / total:.1f} % |")
unit50 = [v for k, v in injected["recall"].items() if k[0] == "unit cost" and k[2] == ">= 50 calls/day"]
got, total = sum(v[0] for v in unit50), sum(v[1] for v in unit50)
out.append(
    f"\nUnit-cost jumps of +50 % or more on tenants with at least 50 calls a day: "
    f"**{got} of {total} tenant days found ({100 * got / max(total, 1):.1f} %)**.\n"
)
out.append("## False alarms\n")
out.append("| year | tenant days assessed | rises | false alarms | per 10,000 tenant days | falls (not alarms) | tenants not assessed |")
out.append("|---|---:|---:|---:|---:|---:|---:|")
results = {"injected": injected}
for name in ["clean", "other"]:
    results[name] = score(name, [])
for name, r in results.items():
    rate = 10000 * len(r["false"]) / max(r["assessed"], 1)
    out.append(
        f"| {name} | {r['assessed']} | {r['rises']} | {len(r['false'])} | {rate:.2f} | {r['falls']} | {r['not_assessed']} |"
    )
out.append("")
for name, r in results.items():
    for line in r["false"][:10]:
        out.append(
            f"- {name}: {line['day']} {line['tenant_id'] or 'platform'} {line['component']} {line['kind']} "
            f"+{line['excess_usd']} USD (unit x{line['unit_cost_ratio']}, calls x{line['volume_ratio']})"
        )
out.append("\n## Speed\n")
out.append("| year | 90-day `anomalies` (best of 3) | nightly run (4 days): `cost anomalies (overlapped)` | nightly run total |")
out.append("|---|---:|---:|---:|")
for name, (best, stage, total) in speed.items():
    out.append(f"| {name} | {float(best):.2f} s | {stage} s | {total} s |")
print("\n".join(out))
