#!/usr/bin/env python3
"""Markdown report of the kpl-benches `codec` bench (stdlib only).

Reads criterion's results, target/criterion/<shape>/<function>/new/{estimates,benchmark}.json
(mean point estimates, and the throughput each function declared), plus
target/criterion/kpl-shapes.json written by the bench, and prints one table per shape with
the target ratios:

- decode_verified / md5           >= 0.9  (MB/s; MD5 is the limit of a verifying decoder)
- decode_unverified / prost_owned >= 5    (MB/s; against the naive prost port)
- encode / md5                    >= 0.8  (MB/s; md5 over the bytes encode produces)
- decode_verified_batch_avx2 / md5 >= 4   (issue 13: batch verification, multi-lane MD5)
- encode_batch / md5              >= 1.0  (issue 13: digests of a PutRecords batch at once)

Functions of a SIMD backend the CPU lacks (`*_avx2`, `*_avx512`) are reported as not run
and do not count as missing.

Usage: python3 benches/report.py [--fastest] [CRITERION_DIR ...]
(default: $CRITERION_HOME, else $CARGO_TARGET_DIR/criterion, else target/criterion of
the workspace holding this script). Given several directories (runs of the bench with
CRITERION_HOME set to each), each function's figure is its best run (the lowest mean):
on a shared machine the best of several runs is the least disturbed. Exits 1 when a
result is missing. With --fastest, each function's figure is its fastest sample (time per
iteration) over all the runs instead of criterion's mean: on a machine whose other work
preempts the benchmark, the mean measures the preemption; the fastest sample is the
least disturbed one (no interval is shown then).
"""

import json
import os
import sys
from pathlib import Path

SHAPES = ["small", "large", "distinct"]
FUNCTIONS = [
    "md5",
    "decode_verified",
    "decode_unverified",
    "deaggregate_kcl",
    "prost_owned",
    "encode",
    "md5_lanes_avx2",
    "md5_lanes_avx512",
    "decode_verified_batch_avx2",
    "decode_verified_batch_avx512",
    "encode_batch",
]
# Functions that exist only on CPUs with the backend.
OPTIONAL = {f for f in FUNCTIONS if f.endswith(("_avx2", "_avx512"))}
# (label, numerator, denominator, target); None: shown for information.
RATIOS = [
    ("decode_verified / md5", "decode_verified", "md5", 0.9),
    ("decode_unverified / prost_owned", "decode_unverified", "prost_owned", 5.0),
    ("encode / md5 (over the bytes encode produces)", "encode", "md5", 0.8),
    ("deaggregate_kcl / md5", "deaggregate_kcl", "md5", None),
    ("decode_verified_batch_avx2 / md5", "decode_verified_batch_avx2", "md5", 4.0),
    ("decode_verified_batch_avx512 / md5", "decode_verified_batch_avx512", "md5", None),
    ("md5_lanes_avx2 / md5", "md5_lanes_avx2", "md5", None),
    ("md5_lanes_avx512 / md5", "md5_lanes_avx512", "md5", None),
    ("encode_batch / md5 (over the bytes encode produces)", "encode_batch", "md5", 1.0),
]


FASTEST = "--fastest" in sys.argv[1:]
ARGS = [arg for arg in sys.argv[1:] if arg != "--fastest"]


def criterion_dirs():
    if ARGS:
        return [Path(arg) for arg in ARGS]
    return [criterion_dir()]


def criterion_dir():
    if os.environ.get("CRITERION_HOME"):
        return Path(os.environ["CRITERION_HOME"])
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"]) / "criterion"
    return Path(__file__).resolve().parent.parent / "target" / "criterion"


def load(bases, shape, function):
    """The best run's (mean ns, lower ns, upper ns, elements, bytes), or None."""
    runs = [r for r in (load_one(base, shape, function) for base in bases) if r]
    return min(runs, default=None)


def load_one(base, shape, function):
    """(mean ns, lower ns, upper ns, elements, bytes) or None."""
    new = base / shape / function / "new"
    try:
        estimates = json.loads((new / "estimates.json").read_text())
        benchmark = json.loads((new / "benchmark.json").read_text())
    except (OSError, ValueError):
        return None
    mean = estimates["mean"]
    if FASTEST:
        try:
            sample = json.loads((new / "sample.json").read_text())
        except (OSError, ValueError):
            return None
        fastest = min(t / i for t, i in zip(sample["times"], sample["iters"]))
        mean = {"point_estimate": fastest,
                "confidence_interval": {"lower_bound": fastest, "upper_bound": fastest}}
    throughput = benchmark.get("throughput") or {}
    if "ElementsAndBytes" in throughput:
        elements = throughput["ElementsAndBytes"]["elements"]
        nbytes = throughput["ElementsAndBytes"]["bytes"]
    else:
        elements = throughput.get("Elements")
        nbytes = throughput.get("Bytes")
    ci = mean["confidence_interval"]
    return (
        mean["point_estimate"],
        ci["lower_bound"],
        ci["upper_bound"],
        elements,
        nbytes,
    )


def fmt_rate(per_second):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if per_second >= scale:
            return f"{per_second / scale:.3g} {unit}"
    return f"{per_second:.3g}"


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def main():
    bases = criterion_dirs()
    shapes = {}
    for base in bases:
        try:
            shapes = json.loads((base / "kpl-shapes.json").read_text())
            break
        except (OSError, ValueError):
            continue
    missing = []
    where = ", ".join(f"`{base}`" for base in bases)
    if FASTEST:
        runs = (f"each function's fastest sample (time per iteration) over {len(bases)} "
                f"run{'s' if len(bases) > 1 else ''}")
        times = "times are those fastest samples"
    else:
        runs = (f"the best of {len(bases)} runs per function (lowest mean)" if len(bases) > 1
                else "one run")
        times = "times are criterion's mean point estimates, [95% confidence interval]"
    print(f"# kpl-codec benchmarks\n\nFrom {where}: {runs}. MB = 10^6 bytes; {times}; "
          "ratios compare throughputs (MB/s).\n")
    for shape in SHAPES:
        info = shapes.get(shape)
        print(f"## {shape}\n")
        if info:
            print(
                f"{info['aggregates']} aggregates of {info['per_aggregate']} user records x "
                f"{info['data_len']} bytes, {info['keys']}: {info['user_records']} user "
                f"records, {info['bytes']} bytes of Kinesis record data.\n"
            )
        results = {}
        print("| function | time / iteration | MB/s | user records/s |")
        print("| --- | --- | ---: | ---: |")
        for function in FUNCTIONS:
            r = load(bases, shape, function)
            if r is None:
                if function in OPTIONAL:
                    print(f"| {function} | (not run: no result; the CPU may lack the backend) | | |")
                else:
                    missing.append(f"{shape}/{function}")
                    print(f"| {function} | (no result) | | |")
                continue
            mean, lo, hi, elements, nbytes = r
            mbps = nbytes / mean * 1e3 if nbytes else None  # bytes/ns * 1e9 / 1e6
            rps = elements / mean * 1e9 if elements else None
            results[function] = mbps
            interval = "" if FASTEST else f" [{fmt_time(lo)} .. {fmt_time(hi)}]"
            print(
                f"| {function} | {fmt_time(mean)}{interval} | "
                f"{mbps:,.0f} | {fmt_rate(rps)} |"
                if mbps and rps
                else f"| {function} | {fmt_time(mean)} | | |"
            )
        print()
        print("| ratio | value | target | |")
        print("| --- | ---: | ---: | --- |")
        for label, num, den, target in RATIOS:
            if not results.get(num) or not results.get(den):
                print(f"| {label} | (missing) | | |")
                continue
            value = results[num] / results[den]
            if target is None:
                print(f"| {label} | {value:.2f} | - | (information) |")
            else:
                verdict = "met" if value >= target else f"MISSED ({value / target:.0%} of target)"
                print(f"| {label} | {value:.2f} | >= {target:g} | {verdict} |")
        print()
    if missing:
        print(f"Missing results: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
