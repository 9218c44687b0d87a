#!/usr/bin/env python3
"""What every thread did around the slowest container start of a hub-scale run.

Usage: stalls.py BENCH_LOG PROCESSES SAMPLES (see stalls.sh, which makes them).
Prints per 20 ms how many perf samples each busy thread of the hub, the
simulator and the bench's UI clients got (2 CPUs at 499 Hz: 20 at most per
row over all threads), `idle` for the idle CPUs, then each hub thread's most
frequent functions while the start was on its way.
"""
import collections
import re
import sys

BUCKET = 0.02


def slowest(log):
    for line in open(log):
        m = re.search(r"slow:\s+([\d.]+) ms, the container started at :([\d.]+)", line)
        if m:
            return float(m.group(2)), float(m.group(1)) / 1000
    sys.exit("no `slow:` line in the bench log (was SLOWEST set?)")


def roles(path):
    """pid -> hub | sim | bench, from `pgrep -a twinbay` and the bench's pid."""
    out = {0: "idle"}
    for line in open(path):
        pid, _, cmd = line.strip().partition(" ")
        words = cmd.split()
        if "hub" in words:
            out[int(pid)] = "hub"
        elif "sim" in words:
            out[int(pid)] = "sim"
        elif cmd == "bench":
            out[int(pid)] = "clients"
    return out


def main():
    start, late = slowest(sys.argv[1])
    role_of = roles(sys.argv[2])
    lo, hi = start - 0.3, start + late + 0.1
    buckets = collections.defaultdict(collections.Counter)
    busy = collections.Counter()
    during = collections.defaultdict(collections.Counter)
    sample = re.compile(r"\s*(\d+)/(\d+)\s+(\d+\.\d+):\s*(\S+)\s*(.*)")
    for line in open(sys.argv[3]):
        m = sample.match(line)
        if not m:
            continue
        pid, tid, at = int(m.group(1)), int(m.group(2)), float(m.group(3)) % 60
        role = role_of.get(pid)
        if role is None or not lo <= at <= hi:
            continue
        thread = role if role == "idle" else f"{role}/{tid}"
        buckets[int(at / BUCKET)][thread] += 1
        busy[thread] += 1
        if role == "hub" and start <= at <= start + late:
            during[thread][m.group(5)[:100]] += 1
    if not busy:
        sys.exit(f"no samples around :{start:06.3f} (perf records from just after the bench settles; run again)")
    threads = [t for t, n in busy.most_common() if n >= 3]
    print(f"slowest start at :{start:06.3f}, seen {late * 1000:.0f} ms later; samples per {BUCKET * 1000:.0f} ms:")
    print("second  " + " ".join(f"{t:>12}" for t in threads))
    for b in sorted(buckets):
        mark = "*" if (b + 1) * BUCKET > start and b * BUCKET <= start + late else " "
        print(f"{b * BUCKET:6.2f}{mark} " + " ".join(f"{buckets[b][t]:>12}" for t in threads))
    for thread, symbols in sorted(during.items()):
        print(f"{thread} while the start was on its way:")
        for symbol, n in symbols.most_common(6):
            print(f"  {n:4d} {symbol}")


if __name__ == "__main__":
    main()
