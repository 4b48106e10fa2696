#!/usr/bin/env python3
"""Runs a command and measures it with every process it starts (benches/e2e/producer-vs-kpl.sh).

    measure_tree.py OUT.json -- COMMAND [ARG...]

Standard input and output pass through. Every 250 ms it walks /proc for the command's process
tree (children, grandchildren, ...); every 25 ms it reads those processes' /proc/PID/stat and
keeps, per process, the last CPU time seen (utime + stime) and the sum of the tree's resident
memory, whose peak it reports. At the end it reads the command's own rusage from wait4, which includes every
descendant the command waited for (KPL's Java front end reaps its native daemon). Writes
one JSON object to OUT.json: wall_s, cpu_rusage_s (user + system from wait4), cpu_polled_s
(the sum of the last samples; misses at most the last 25 ms of each process), cpu_s (the
larger of the two), peak_rss_kb (the tree's sum), peak_rss_single_kb (ru_maxrss), processes
(name and CPU seen per process), exit status.
"""
import json
import os
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    name = s[s.index("(") + 1 : s.rindex(")")]
    fields = s[s.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15, rss 24.
    return name, int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[21]) * PAGE_KB


def tree(root):
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                procs[int(entry)] = stat(entry)
            except (OSError, ValueError, IndexError):
                pass
    members, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        if pid in procs:
            members[pid] = procs[pid]
            frontier.extend(p for p, v in procs.items() if v[1] == pid and p not in members)
    return members


def main():
    out, cmd = sys.argv[1], sys.argv[sys.argv.index("--") + 1 :]
    start = time.monotonic()
    child = subprocess.Popen(cmd)
    seen, peak, pids, rounds = {}, 0, [], 0
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if rounds % 10 == 0:
            pids = list(tree(child.pid))
        rounds += 1
        rss = 0
        for p in pids:
            try:
                name, _, ticks, kb = stat(p)
            except (OSError, ValueError, IndexError):
                continue
            seen[p] = (name, ticks)
            rss += kb
        peak = max(peak, rss)
        time.sleep(0.025)
    wall = time.monotonic() - start
    rusage = usage.ru_utime + usage.ru_stime
    polled = sum(t for _, t in seen.values()) / TICK
    report = {
        "wall_s": round(wall, 2),
        "cpu_rusage_s": round(rusage, 2),
        "cpu_polled_s": round(polled, 2),
        "cpu_s": round(max(rusage, polled), 2),
        "peak_rss_kb": peak,
        "peak_rss_single_kb": usage.ru_maxrss,
        "processes": [{"pid": p, "name": n, "cpu_s": round(t / TICK, 2)} for p, (n, t) in sorted(seen.items())],
        "exit": os.waitstatus_to_exitcode(status),
    }
    with open(out, "w") as f:
        json.dump(report, f)
    sys.exit(0 if report["exit"] == 0 else 1)


if __name__ == "__main__":
    main()
