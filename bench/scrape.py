#!/usr/bin/env python3
"""Scrape latency, CPU time and RSS of exporters: RUNS GETs of each URL,
interleaved (A B A B ...) so load changes hit every exporter alike; the
median wall time, the CPU time the process behind it spent per scrape
(utime + stime from /proc/PID/stat), and its peak RSS (VmHWM).

    bench/scrape.py RUNS NAME=URL=PID ...
"""
import os
import statistics
import sys
import time
import urllib.request


def cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks * 1000.0 / os.sysconf("SC_CLK_TCK")


def main():
    runs = int(sys.argv[1])
    specs = [spec.split("=", 2) for spec in sys.argv[2:]]
    times = {name: [] for name, _, _ in specs}
    sizes = {}
    for name, url, _ in specs:
        urllib.request.urlopen(url, timeout=120).read()  # warm-up
    cpu_before = {name: cpu_ms(pid) for name, _, pid in specs}
    for _ in range(runs):
        for name, url, _ in specs:
            t = time.perf_counter()
            sizes[name] = len(urllib.request.urlopen(url, timeout=120).read())
            times[name].append((time.perf_counter() - t) * 1000)
    width = max(len(name) for name, _, _ in specs)
    print(f"{'exporter':<{width}}  median ms    min ms    max ms  CPU ms/scrape  peak RSS MiB  body bytes")
    for name, _, pid in specs:
        cpu = (cpu_ms(pid) - cpu_before[name]) / runs
        hwm = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        t = times[name]
        print(f"{name:<{width}}  {statistics.median(t):9.1f} {min(t):9.1f} {max(t):9.1f}  {cpu:13.1f}  {hwm / 1024:12.1f}  {sizes[name]:10d}")


if __name__ == "__main__":
    main()
