#!/usr/bin/env python3
"""Samples two processes side by side and prints the agent-footprint table.

Stdlib only. Called by run.sh once the agent is connected:

    sample.py --agent-pid A --ne-pid N --ne-url URL [--seconds 60] [--warmup 5]
              [--scrape-every 5] [--agent-interval 5]

From t=0 it scrapes node_exporter's URL every --scrape-every seconds (curl,
body discarded). Samples taken in the first --warmup seconds are discarded;
the window that follows lasts --seconds. Inside it, once a second:
VmRSS/RssAnon/RssFile from /proc/PID/status and every thread's context-switch
counters from /proc/PID/task/*/status. CPU is the (utime+stime) delta of
/proc/PID/stat over the window, in clock ticks, divided by CLK_TCK and wall time.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def status_fields(path):
    out = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def kib(value):
    # "1234 kB" -> 1234
    return int(value.split()[0]) if value else 0


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # comm may contain spaces: fields after the closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15.
    return int(fields[11]) + int(fields[12])


class Proc:
    def __init__(self, name, pid):
        self.name = name
        self.pid = pid
        self.rss = []  # KiB
        self.anon = []
        self.file = []
        self.threads = []
        self.ctx = {}  # tid -> [first, last]; tids born in the window start at 0
        self.sched = {}  # tid -> [first, last] ns on cpu (schedstat)
        self.cpu0 = self.cpu1 = None
        self.t0 = self.t1 = None
        self.started = False

    def alive(self):
        return os.path.exists(f"/proc/{self.pid}/stat")

    def read_tasks(self, first):
        base = f"/proc/{self.pid}/task"
        try:
            tids = os.listdir(base)
        except FileNotFoundError:
            return
        for tid in tids:
            try:
                st = status_fields(f"{base}/{tid}/status")
                ctx = int(st.get("voluntary_ctxt_switches", 0)) + int(
                    st.get("nonvoluntary_ctxt_switches", 0)
                )
                try:
                    with open(f"{base}/{tid}/schedstat") as f:
                        ns = int(f.read().split()[0])
                except (FileNotFoundError, IndexError, ValueError):
                    ns = None
            except (FileNotFoundError, ProcessLookupError):
                continue  # thread exited between listdir and read
            for table, value in ((self.ctx, ctx), (self.sched, ns)):
                if value is None:
                    continue
                if tid in table:
                    table[tid][1] = value
                else:
                    table[tid] = [value if first else 0, value]

    def start(self):
        self.cpu0 = cpu_ticks(self.pid)
        self.t0 = time.monotonic()
        self.read_tasks(first=True)
        self.started = True

    def sample(self):
        st = status_fields(f"/proc/{self.pid}/status")
        self.rss.append(kib(st.get("VmRSS")))
        self.anon.append(kib(st.get("RssAnon")))
        self.file.append(kib(st.get("RssFile")))
        self.threads.append(int(st.get("Threads", 0)))
        self.read_tasks(first=False)

    def stop(self):
        self.cpu1 = cpu_ticks(self.pid)
        self.t1 = time.monotonic()
        self.read_tasks(first=False)
        try:  # once, at the end: PSS splits pages shared with other processes
            self.rollup = {k: kib(v) for k, v in status_fields(f"/proc/{self.pid}/smaps_rollup").items() if v.endswith("kB")}
        except (FileNotFoundError, PermissionError):
            self.rollup = {}

    # results
    def wall(self):
        return self.t1 - self.t0

    def median_mib(self, series=None):
        return statistics.median(series if series is not None else self.rss) / 1024

    def cpu_pct(self):
        return 100.0 * (self.cpu1 - self.cpu0) / CLK_TCK / self.wall()

    def sched_cpu_pct(self):
        ns = sum(last - first for first, last in self.sched.values())
        return 100.0 * ns / 1e9 / self.wall()

    def wakeups(self):
        n = sum(last - first for first, last in self.ctx.values())
        return n / self.wall()


def ratio(a, b):
    return f"{a / b:.2f}" if b > 0 else "n/a"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent-pid", type=int, required=True)
    ap.add_argument("--ne-pid", type=int, required=True)
    ap.add_argument("--ne-url", required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--scrape-every", type=float, default=5)
    ap.add_argument("--agent-interval", default="5 s")
    ap.add_argument("--rss-goal-mib", type=float, default=10)
    args = ap.parse_args()

    agent = Proc("twinbay agent", args.agent_pid)
    ne = Proc("node_exporter", args.ne_pid)
    procs = (agent, ne)

    scrapes = []  # Popen of curl
    t_start = time.monotonic()
    next_scrape = t_start
    next_tick = t_start + args.warmup
    t_end = t_start + args.warmup + args.seconds
    while True:
        now = time.monotonic()
        if now >= next_scrape and now < t_end:
            scrapes.append(
                subprocess.Popen(
                    ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", args.ne_url],
                    stdout=subprocess.PIPE,
                )
            )
            next_scrape += args.scrape_every
        if now >= next_tick:
            for p in procs:
                if not p.alive():
                    sys.exit(f"agent-footprint: {p.name} (pid {p.pid}) exited during the run")
                if not p.started:
                    p.start()  # window opens: counters' baseline, first RSS sample
                p.sample()
            next_tick += 1.0
        if now >= t_end:
            break
        wake = min(next_tick, next_scrape if next_scrape < t_end else t_end, t_end)
        time.sleep(max(0.0, wake - time.monotonic()))
    for p in procs:
        p.stop()

    codes = [s.communicate()[0].decode().strip() for s in scrapes]
    ok = sum(c == "200" for c in codes)

    rows = [
        ("twinbay agent", agent.median_mib(), agent.cpu_pct(), agent.wakeups()),
        ("node_exporter", ne.median_mib(), ne.cpu_pct(), ne.wakeups()),
    ]
    print()
    print(
        f"agent-footprint: {args.seconds:g} s, agent interval {args.agent_interval} "
        f"(all collectors), node_exporter scraped every {args.scrape_every:g} s"
    )
    print(f"{'':18} {'median RSS MiB':>15} {'CPU % of a core':>17} {'wake-ups/s':>12}")
    for name, rss, cpu, wk in rows:
        print(f"{name:18} {rss:15.1f} {cpu:17.2f} {wk:12.1f}")
    a, n = rows
    print(f"{'ratio agent/ne':18} {ratio(a[1], n[1]):>15} {ratio(a[2], n[2]):>17} {ratio(a[3], n[3]):>12}")
    print()
    print(f"  first {args.warmup:g} s after start discarded (warm-up); {len(agent.rss)} RSS samples each, 1/s")
    print("  wake-ups/s = voluntary + nonvoluntary context switches of all threads per second (a proxy for wake-ups)")
    print(f"  CPU = (utime+stime) delta from /proc/PID/stat, CLK_TCK={CLK_TCK} ({1000 // CLK_TCK} ms resolution)")
    print(f"  node_exporter scrapes: {ok}/{len(codes)} returned HTTP 200")
    print("  detail (median over the window):")
    for p in procs:
        print(
            f"    {p.name:14} RSS min/median/max {min(p.rss) / 1024:.1f}/{p.median_mib():.1f}/{max(p.rss) / 1024:.1f} MiB"
            f"  anon {p.median_mib(p.anon):.1f}  file {p.median_mib(p.file):.1f} MiB"
            f"  threads {statistics.median(p.threads):g}"
            f"  CPU by schedstat {p.sched_cpu_pct():.3f} %"
        )
        r = p.rollup
        if "Pss" in r:
            print(
                f"    {'':14} at the end: RSS {r.get('Rss', 0) / 1024:.1f} MiB, PSS {r['Pss'] / 1024:.1f} MiB"
                f" (anon {r.get('Pss_Anon', 0) / 1024:.1f}, file {r.get('Pss_File', 0) / 1024:.1f});"
                f" shared with other processes {(r.get('Shared_Clean', 0) + r.get('Shared_Dirty', 0)) / 1024:.1f} MiB"
            )
    print()
    rss_ok = a[1] <= args.rss_goal_mib
    cpu_ok = a[2] <= n[2]
    print(
        f"{'PASS' if rss_ok else 'FAIL'}  goal 1: agent median RSS <= {args.rss_goal_mib:g} MiB "
        f"(measured {a[1]:.2f} MiB)"
    )
    print(
        f"{'PASS' if cpu_ok else 'FAIL'}  goal 2: agent CPU <= node_exporter CPU "
        f"(measured {a[2]:.3f} % vs {n[2]:.3f} % of a core)"
    )
    print("(a benchmark, not a test: exits 0 whatever the outcome)")


if __name__ == "__main__":
    main()
