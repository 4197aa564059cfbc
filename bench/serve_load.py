#!/usr/bin/env python3
"""Load on `callrollup serve` (issue "The reports in a browser").

    bench/serve_load.py --binary target/release/callrollup --requests 1000 \
        --concurrency 4 PATH [PATH ...]

Starts `callrollup serve --listen 127.0.0.1:0` against $DATABASE_URL (or
with the extra --serve-args), takes the token it prints, sends --requests
GETs of each PATH (a page with its query, e.g. "/costs?month=2026-10")
from --concurrency threads, checks every answer is a 200, and prints the
latency's p50, p90, p99 and max per path, and the server's peak RSS
(VmHWM). A benchmark: it asserts nothing about time.
"""
import argparse
import http.client
import statistics
import subprocess
import sys
import threading
import time


def percentile(values, p):
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/callrollup")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--serve-args", default="")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()

    server = subprocess.Popen(
        [args.binary, "serve", "--listen", "127.0.0.1:0", "--max-requests",
         str(args.concurrency)] + args.serve_args.split(),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        link = server.stdout.readline().strip()
        host_port = link[len("http://"):].split("/")[0]
        host, port = host_port.split(":")
        token = link.split("?token=", 1)[1] if "?token=" in link else ""
        cookie = {"Cookie": f"callrollup_token={token}"}
        print(f"| path | requests | p50 ms | p90 ms | p99 ms | max ms | bytes |")
        print(f"|---|---|---|---|---|---|---|")
        for path in args.paths:
            latencies, sizes, failures = [], [], []
            lock = threading.Lock()
            remaining = [args.requests]

            def worker():
                connection = http.client.HTTPConnection(host, int(port), timeout=120)
                while True:
                    with lock:
                        if remaining[0] == 0:
                            return
                        remaining[0] -= 1
                    started = time.perf_counter()
                    connection.request("GET", path, headers=cookie)
                    answer = connection.getresponse()
                    body = answer.read()
                    elapsed = (time.perf_counter() - started) * 1000
                    with lock:
                        latencies.append(elapsed)
                        sizes.append(len(body))
                        if answer.status != 200:
                            failures.append(answer.status)

            threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if failures:
                print(f"{path}: {len(failures)} answers were not 200: {failures[:5]}", file=sys.stderr)
                sys.exit(1)
            print(f"| `{path}` | {len(latencies)} | {statistics.median(latencies):.1f} | "
                  f"{percentile(latencies, 90):.1f} | {percentile(latencies, 99):.1f} | "
                  f"{max(latencies):.1f} | {statistics.median(sizes):.0f} |")
        with open(f"/proc/{server.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM"):
                    print(f"\nserver peak RSS: {line.split(':', 1)[1].strip()}")
    finally:
        server.terminate()
        server.wait(timeout=60)
        print(f"server exit status after SIGTERM: {server.returncode}")


if __name__ == "__main__":
    main()
