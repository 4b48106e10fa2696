#!/usr/bin/env python3
"""MB/s (10^6 bytes/s) of each MD5 implementation surveyed, from criterion's results.

Usage: python3 report.py [--fastest] [CRITERION_DIR ...]
(default: target/criterion beside this script). Figures are criterion's mean point
estimates with their 95% interval; given several directories (runs with CRITERION_HOME
set to each), each implementation's best run. With --fastest, each implementation's
fastest sample (time per iteration) over all the runs instead: on a machine whose other
work preempts the benchmark, the least disturbed measurement.
"""

import json
import sys
from pathlib import Path

FASTEST = "--fastest" in sys.argv[1:]
bases = [Path(a) for a in sys.argv[1:] if a != "--fastest"] or [
    Path(__file__).resolve().parent / "target" / "criterion"
]


def load(new):
    """(ns per iteration, bytes, lower MB/s, upper MB/s) of one run, or None."""
    try:
        nbytes = json.loads((new / "benchmark.json").read_text())["throughput"]["Bytes"]
        if FASTEST:
            sample = json.loads((new / "sample.json").read_text())
            ns = min(t / i for t, i in zip(sample["times"], sample["iters"]))
            return ns, nbytes, None, None
        mean = json.loads((new / "estimates.json").read_text())["mean"]
    except (OSError, ValueError, KeyError):
        return None
    ci = mean["confidence_interval"]
    return (mean["point_estimate"], nbytes, nbytes / ci["upper_bound"] * 1e3,
            nbytes / ci["lower_bound"] * 1e3)


groups = ["md5-10KB", "md5-100B"] + sorted(
    {d.name for base in bases for d in base.glob("batch-*")})
runs = (f"fastest sample of {len(bases)} run(s)" if FASTEST
        else f"criterion mean, best of {len(bases)} run(s)")
for group in groups:
    best = {}
    for base in bases:
        for new in (base / group).glob("*/new"):
            r = load(new)
            name = new.parent.name
            if r and (name not in best or r[0] < best[name][0]):
                best[name] = r
    if not best:
        continue
    print(f"## {group} ({runs})\n")
    if FASTEST:
        print("| implementation | time | MB/s |\n| --- | ---: | ---: |")
    else:
        print("| implementation | time | MB/s | 95% CI |\n| --- | ---: | ---: | --- |")
    for name, (ns, nbytes, lo, hi) in sorted(best.items(), key=lambda kv: kv[1][0]):
        ci = "" if lo is None else f" {lo:,.0f} .. {hi:,.0f} |"
        print(f"| {name} | {ns:,.0f} ns | {nbytes / ns * 1e3:,.0f} |{ci}")
    print()
