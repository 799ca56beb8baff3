#!/usr/bin/env python3
"""Where the CPU went while a command ran: the command (with its children),
Postgres, Redis, and everything else, from /proc (Linux only).

    bench/cpu_split.py -- <command> [args...]

Prints the command's own output, then one line of JSON with CPU seconds per group,
each group's share of the machine's capacity over the run (cores x wall time), and
the wall time. A group near 100% of one core, or the machine near 100% of all of
them, is the bottleneck. No timing is asserted anywhere: this is for reading.
"""
import json
import os
import subprocess
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")


def processes():
    """(pid, ppid, name, cpu seconds) of every process we can read."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The name is in parentheses and may hold spaces; the fields follow it.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ppid = int(fields[1])
        # utime and stime: fields 14-15 of stat, 12-13 after the name. Not the
        # children's (cutime): a backend that exits would then count twice.
        cpu = sum(int(x) for x in fields[11:13]) / TICKS
        out.append((int(entry), ppid, name, cpu))
    return out


def group_of(pid, name, parents, root):
    if name.startswith("postgres"):
        return "postgres"
    if name.startswith("redis-server"):
        return "redis"
    seen = pid
    while seen and seen != 1:
        if seen == root:
            return "command"
        seen = parents.get(seen, 0)
    return "other"


def machine_busy():
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    idle = cpu[3] + cpu[4]
    return (sum(cpu) - idle) / TICKS


def main():
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.exit(__doc__)
    last = {}  # pid -> (group, cpu seconds at the latest sample)
    first = {}
    baseline = {pid for pid, _, _, _ in processes()}
    busy_before = machine_busy()
    started = time.monotonic()
    child = subprocess.Popen(argv)

    def sample():
        procs = processes()
        parents = {pid: ppid for pid, ppid, _, _ in procs}
        for pid, _, name, cpu in procs:
            group = group_of(pid, name, parents, child.pid)
            if pid not in first:
                # A process born during the run started from zero.
                born_during = pid not in baseline
                first[pid] = 0.0 if born_during else cpu
            last[pid] = (group, cpu)

    sample()
    while child.poll() is None:
        time.sleep(0.2)
        sample()
    wall = time.monotonic() - started
    busy = machine_busy() - busy_before
    per_group = {}
    for pid, (group, cpu) in last.items():
        per_group[group] = per_group.get(group, 0.0) + max(0.0, cpu - first.get(pid, 0.0))
    cores = os.cpu_count() or 1
    report = {
        "wall_s": round(wall, 2),
        "cores": cores,
        "machine_busy_pct": round(100 * busy / (cores * wall), 1),
        "cpu_s": {k: round(v, 2) for k, v in sorted(per_group.items())},
        "share_of_machine_pct": {
            k: round(100 * v / (cores * wall), 1) for k, v in sorted(per_group.items())
        },
        "exit": child.returncode,
    }
    print(json.dumps(report))
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
