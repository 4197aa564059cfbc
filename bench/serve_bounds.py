#!/usr/bin/env python3
"""What one request, or four at once, cost `callrollup serve` (issue "hold
against hostile clients"): peak memory, bytes, time, and CPU after the
last answer.

    bench/serve_bounds.py --binary target/release/callrollup \
        --reports /tmp/big/reports --from 2026-05-21 --to 2026-12-06

Starts `serve --reports DIR` (token from a file), then for each case
sends the requests at once from their own connections, each as another
reader (X-Forwarded-For through `--trusted-proxy 127.0.0.1`), reads every answer
to its end, and prints per case: the statuses, the bytes, the slowest
answer, the server's peak RSS so far (VmHWM) and its CPU seconds in the 3 s
after the last answer (work that outlived its answer shows here). The
cases: the whole period's page by day; four whole-period JSON downloads;
four CSV; four pages; two workbooks (refused past 5,000 lines); and four
JSON downloads under a 2 s request limit (504 or cut), in a second server.
A benchmark: it asserts nothing.
"""
import argparse
import http.client
import os
import secrets
import subprocess
import tempfile
import threading
import time


def stat(pid):
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return int(status["VmHWM"].split()[0]) // 1024, int(status["VmRSS"].split()[0]) // 1024, cpu


def start(binary, reports, timeout):
    token = secrets.token_hex(32)
    tokenfile = tempfile.NamedTemporaryFile("w", delete=False)
    tokenfile.write(token + "\n")
    tokenfile.close()
    server = subprocess.Popen(
        [binary, "serve", "--reports", reports, "--listen", "127.0.0.1:0",
         "--token-file", tokenfile.name, "--request-timeout", str(timeout),
         # Each request comes as its own reader (X-Forwarded-For), as
         # readers behind an ingress do: one reader alone gets half the
         # slots.
         "--trusted-proxy", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()
    port = int(line.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    return server, port, token


def fetch(port, token, path, out, i):
    started = time.monotonic()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}",
                                           "X-Forwarded-For": f"198.51.100.{i + 1}"})
        response = conn.getresponse()
        size = 0
        try:
            while True:
                chunk = response.read(65536)
                if not chunk:
                    break
                size += len(chunk)
            status = str(response.status)
        except http.client.IncompleteRead as e:
            size += len(e.partial)
            status = f"{response.status} cut"
        out[i] = (status, size, time.monotonic() - started)
    except Exception as e:  # a closed connection mid-body
        out[i] = (f"error {type(e).__name__}", 0, time.monotonic() - started)


def case(name, server, port, token, paths):
    out = [None] * len(paths)
    threads = [threading.Thread(target=fetch, args=(port, token, p, out, i))
               for i, p in enumerate(paths)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _, _, cpu_at_end = stat(server.pid)
    time.sleep(3)
    hwm, rss, cpu_later = stat(server.pid)
    statuses = ", ".join(sorted({o[0] for o in out}))
    print(f"| {name} | {statuses} | {max(o[1] for o in out) / 1e6:.1f} MB "
          f"| {max(o[2] for o in out):.2f} s | {hwm} MiB | {rss} MiB "
          f"| {cpu_later - cpu_at_end:.2f} s |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/callrollup")
    parser.add_argument("--reports", required=True)
    parser.add_argument("--from", dest="start", required=True)
    parser.add_argument("--to", dest="end", required=True)
    args = parser.parse_args()
    period = f"from={args.start}&to={args.end}&by=day"
    print("| case | statuses | largest answer | slowest | peak RSS | RSS after | CPU in the 3 s after |")
    print("|---|---|---|---|---|---|---|")
    server, port, token = start(args.binary, args.reports, 30)
    try:
        case("1 page, whole period by day", server, port, token, [f"/costs?{period}"])
        case("4 JSON downloads at once", server, port, token, [f"/costs.json?{period}"] * 4)
        case("4 CSV downloads at once", server, port, token, [f"/costs.csv?{period}"] * 4)
        case("4 pages at once", server, port, token, [f"/costs?{period}"] * 4)
        case("2 workbooks at once", server, port, token, [f"/costs.xlsx?{period}"] * 2)
        case("4 workbooks of the top 100 at once", server, port, token,
             [f"/costs.xlsx?{period}&top=100"] * 4)
        case("4 error pages by tenant at once", server, port, token,
             [f"/errors?from={args.start}&to={args.end}&by=tenant"] * 4)
        case("8 JSON downloads at once (4 slots)", server, port, token,
             [f"/costs.json?{period}"] * 8)
    finally:
        server.terminate()
        server.wait()
    server, port, token = start(args.binary, args.reports, 2)
    try:
        case("4 JSON downloads, 2 s limit", server, port, token, [f"/costs.json?{period}"] * 4)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
