#!/usr/bin/env python3
"""Samples the memory of a benchmark's processes from /proc every 0.1 s until SIGTERM, then
writes per-kind figures as JSON (bench/soak.sh, bench/rtt_bench.sh).

  rss_sampler.py BIN_DIR OUT_JSON T0 BUCKET_S [PGBACKREST_CONFIG_PREFIX]

Processes sampled: walpush, walfetch and walctl whose executable lies in BIN_DIR (the run's own
copies: walpush's push-ahead and walfetch's read-ahead workers are counted apart), and, with
PGBACKREST_CONFIG_PREFIX, every pgbackrest process whose --config= starts with it (as
"pgbackrest COMMAND", e.g. "pgbackrest archive-push:async"). A process that lives less than
the sampling interval may be missed: time short-lived calls with GNU time as well.

OUT_JSON: {"tools": {KIND: {"processes_seen", "peak_vmhwm_kib", "typical_vmhwm_kib" (the median
of the per-process peaks), "peak_vmrss_kib"}}, "series": [{"t", "tool", "max_vmrss_kib"}]}, the
series in BUCKET_S-second buckets from T0 (epoch seconds). Python 3 standard library only.
"""
import json
import os
import signal
import statistics
import sys
import time

bin_dir, out_path, t0, bucket = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
pgbr_config = sys.argv[5] if len(sys.argv) > 5 else None
TOOLS = {"walpush", "walfetch", "walctl"}
WALCTL_COMMANDS = ("init", "backup", "prune", "verify", "drill", "restore", "list", "show", "status")
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
peak = {}  # (pid, start time) -> [kind, max VmHWM kB, max VmRSS kB]
series = {}  # (bucket index, kind) -> max VmRSS kB


def kb(status, field):
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def kind_of(pid, comm, args):
    """The kind of process, or None when it is not one to sample."""
    if comm == "pgbackrest":
        if not pgbr_config or not any(a.startswith("--config=" + pgbr_config) for a in args):
            return None
        commands = [a for a in args[1:] if a and not a.startswith("-")]
        return "pgbackrest " + commands[0] if commands else "pgbackrest"
    if comm not in TOOLS or not os.readlink(f"/proc/{pid}/exe").startswith(bin_dir + "/"):
        return None
    if "--push-ahead-worker" in args:
        return "walpush push-ahead worker"
    if "--prefetch-worker" in args:
        return "walfetch read-ahead worker"
    if comm == "walctl":
        sub = [a for a in args[1:] if a in WALCTL_COMMANDS]
        return "walctl " + sub[0] if sub else "walctl"
    return comm


while not stop:
    now = time.time()
    for entry in os.scandir("/proc"):
        pid = entry.name
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            if comm not in TOOLS and comm != "pgbackrest":
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = [a.decode(errors="replace") for a in f.read().split(b"\0")]
            kind = kind_of(pid, comm, args)
            if kind is None:
                continue
            with open(f"/proc/{pid}/status") as f:
                status = f.read()
            with open(f"/proc/{pid}/stat") as f:
                started = f.read().rsplit(")", 1)[1].split()[19]  # starttime: pids are reused
        except OSError:
            continue
        hwm, rss = kb(status, "VmHWM"), kb(status, "VmRSS")
        p = peak.setdefault((int(pid), started), [kind, 0, 0])
        p[0] = kind
        p[1], p[2] = max(p[1], hwm), max(p[2], rss)
        k = (int((now - t0) // bucket), kind)
        series[k] = max(series.get(k, 0), rss)
    time.sleep(0.1)
kinds = {}
for kind, hwm, rss in peak.values():
    t = kinds.setdefault(kind, {"hwm": [], "rss": []})
    t["hwm"].append(hwm)
    t["rss"].append(rss)
summary = {kind: {"processes_seen": len(t["hwm"]), "peak_vmhwm_kib": max(t["hwm"]),
                  "typical_vmhwm_kib": int(statistics.median(t["hwm"])),
                  "peak_vmrss_kib": max(t["rss"])} for kind, t in sorted(kinds.items())}
with open(out_path, "w") as f:
    json.dump({"tools": summary,
               "series": [{"t": i * bucket, "tool": kind, "max_vmrss_kib": v}
                          for (i, kind), v in sorted(series.items())]}, f)
