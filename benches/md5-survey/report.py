#!/usr/bin/env python3
"""MB/s (10^6 bytes/s, criterion mean point estimates) of each MD5 implementation surveyed."""

import json
import sys
from pathlib import Path

base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "target" / "criterion"
for group in ("md5-10KB", "md5-100B"):
    rows = []
    for d in sorted((base / group).glob("*/new")):
        mean = json.loads((d / "estimates.json").read_text())["mean"]
        nbytes = json.loads((d / "benchmark.json").read_text())["throughput"]["Bytes"]
        ci = mean["confidence_interval"]
        rows.append((nbytes / mean["point_estimate"] * 1e3, d.parent.name,
                     nbytes / ci["upper_bound"] * 1e3, nbytes / ci["lower_bound"] * 1e3,
                     mean["point_estimate"]))
    print(f"## {group}\n\n| implementation | time | MB/s | 95% CI |\n| --- | ---: | ---: | --- |")
    for mbps, name, lo, hi, ns in sorted(rows, reverse=True):
        print(f"| {name} | {ns:,.0f} ns | {mbps:,.0f} | {lo:,.0f} .. {hi:,.0f} |")
    print()
