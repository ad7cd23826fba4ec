#!/usr/bin/env python3
"""Scrape latency and RSS of exporters: median wall time of RUNS sequential
GETs of each URL, then the peak RSS (VmHWM) of the process behind it.

    bench/scrape.py RUNS NAME=URL=PID ...
"""
import statistics
import sys
import time
import urllib.request


def main():
    runs = int(sys.argv[1])
    rows = []
    for spec in sys.argv[2:]:
        name, url, pid = spec.split("=", 2)
        urllib.request.urlopen(url, timeout=120).read()  # warm-up
        times = []
        size = 0
        for _ in range(runs):
            t = time.perf_counter()
            size = len(urllib.request.urlopen(url, timeout=120).read())
            times.append((time.perf_counter() - t) * 1000)
        hwm = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        rows.append((name, statistics.median(times), min(times), max(times), hwm / 1024, size))
    width = max(len(r[0]) for r in rows)
    print(f"{'exporter':<{width}}  median ms    min ms    max ms  peak RSS MiB  body bytes")
    for name, med, lo, hi, rss, size in rows:
        print(f"{name:<{width}}  {med:9.1f} {lo:9.1f} {hi:9.1f}  {rss:12.1f}  {size:10d}")


if __name__ == "__main__":
    main()
