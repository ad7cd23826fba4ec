#!/usr/bin/env python3
"""Time shell commands: median wall time of several runs and peak RSS.

    bench/timeit.py [--runs N] [--warmup N] [--json FILE] NAME=COMMAND ...

Each command runs under `sh -c` with stdout to /dev/null; runs are
interleaved (A B C A B C ...) so load changes hit every command alike. A
command that exits non-zero aborts the benchmark. Prints a table of
median/min/max milliseconds and the peak RSS, and with --json writes them.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def run_once(cmd):
    """Wall milliseconds and peak RSS (KiB). The RSS comes from GNU time,
    whose child is `sh -c CMD` (so `exec` in CMD measures the tool itself);
    Python's own wait4 would count the forked interpreter before exec."""
    with tempfile.NamedTemporaryFile("r") as rss_file:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file.name, "sh", "-c", cmd],
                              stdout=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"timeit: command failed ({proc.returncode}): {cmd}")
        rss = int(rss_file.read().split()[-1])
    return elapsed * 1000.0, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--json")
    ap.add_argument("commands", nargs="+")
    args = ap.parse_args()
    named = [c.split("=", 1) for c in args.commands]
    for name, cmd in named:
        for _ in range(args.warmup):
            run_once(cmd)
    times = {name: [] for name, _ in named}
    rss = {name: 0 for name, _ in named}
    for _ in range(args.runs):
        for name, cmd in named:
            ms, kb = run_once(cmd)
            times[name].append(ms)
            rss[name] = max(rss[name], kb)
    results = []
    for name, cmd in named:
        t = times[name]
        results.append({"name": name, "command": cmd, "median_ms": statistics.median(t),
                        "min_ms": min(t), "max_ms": max(t), "peak_rss_kib": rss[name],
                        "runs": len(t)})
    width = max(len(r["name"]) for r in results)
    print(f"{'command':<{width}}  median ms    min ms    max ms  peak RSS MiB")
    for r in results:
        print(f"{r['name']:<{width}}  {r['median_ms']:9.1f} {r['min_ms']:9.1f} {r['max_ms']:9.1f}"
              f"  {r['peak_rss_kib'] / 1024:12.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
