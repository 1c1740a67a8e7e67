#!/usr/bin/env bash
# Soak: walstore working for a long stretch the way it does in production, on one real
# PostgreSQL 15 cluster and one S3 server (s3rver, HTTP, loopback), everything encrypted
# (AES-256-GCM) and compressed.
#
#   - pgbench's TPC-B load, rate-limited (-R) so that the archive sees a steady flow, for the
#     whole run; archive_command = walpush (push-ahead as configured by default);
#   - `walctl backup` at the start and then every BACKUP interval (default 10 minutes);
#   - `walctl prune --keep-full K` (default 2: the third backup makes the first go, with its
#     WAL) and `walctl verify` every CHECK interval (default 5 minutes);
#   - at the end, with pgbench still running, `walctl drill latest` (restores the newest
#     backup into a temp dir, replays the archived WAL through walfetch, checks the recovered
#     cluster with a query, reports RTO and RPO); then pgbench stops, the last segment must
#     reach the archive and a last `walctl verify` must be clean.
#
# Measured:
#   - archive lag every SAMPLE seconds (default 10): from pg_stat_archiver and pg_wal, the
#     finished segments not yet archived (.ready files), the age of the oldest of them
#     (seconds), the distance between the segment being written and last_archived_wal;
#   - RSS of every walstore process of this run (its own copies of walpush, walfetch, walctl,
#     the push-ahead and read-ahead workers included), sampled from /proc every 0.1 s: per
#     tool the peak VmHWM, the median of the per-process peaks (typical) and the peak VmRSS;
#     processes shorter than the sampling period can be missed (their count is reported);
#   - leftovers after every prune and at the end: incomplete multipart uploads in s3rver's
#     store (and what `walctl verify` lists), temp files (.walstore-tmp.) in the data
#     directory, push-ahead markers in pg_wal/.walstore-push, warnings or errors in its
#     push.log (the worker's log), what the drill left in its work directory;
#   - every WARNING / ERROR line of walpush and walfetch in the server log and of walctl;
#   - failures: pg_stat_archiver's failed_count (every non-zero exit of walpush), the exit
#     code of every walctl run, and the drill's verdict.
#
# Prints a summary and writes OUT/soak.json (settings, time series, per-run records,
# summary) next to the logs of every walctl run and the server log.  Exits non-zero when
# anything went wrong: a walctl run failed (a verify that is not clean, a drill that did not
# pass, a backup, prune or the drill), archiving had failed and did not recover by the end,
# a leftover remained at the end (an upload, a temp file, a marker, a problem in push.log, a
# file in the drill's work directory), or no prune removed a backup although there were more
# backups than the retention keeps.  Warnings (e.g. a request retried) are reported, not failed.
#
# WAL segments are 1 MiB (initdb --wal-segsize 1, settable): with the default load that is
# about 50 segments a minute, i.e. that many walpush calls a minute, without the disk and
# CPU that tens of 16 MiB segments a minute would take from a shared 2-core machine.
# Backups are uploaded in parts (multipart_threshold 8 MiB, part_size 5 MiB), so multipart
# uploads are part of the soak.
#
# Not a test and not in CI: run it by hand as root after `meson setup build && ninja -C build`:
#   bench/soak.sh                      # 30 minutes
#   bench/soak.sh --minutes 3 --backup-interval 60 --check-interval 30   # a quick trial
# Options: --minutes N (30), --backup-interval S (600), --check-interval S (300),
#   --sample S (10), --rate TPS (150), --clients N (2), --scale N (10), --keep-full K (2),
#   --wal-segsize MB (1), --compression SPEC (zstd), --out DIR (/tmp/walstore-soak-<time>).
# Env: BENCH_KEEP=1 keeps the temp dir; WALSTORE_BUILD_DIR (default <source>/build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/lib/common.sh
. "$root/tests/lib/common.sh"
# shellcheck source=tests/lib/s3.sh
. "$root/tests/lib/s3.sh"
WS_SCRIPT=soak
WS_KEEP=${BENCH_KEEP:-0}

minutes=30 backup_interval=600 check_interval=300 sample=10 rate=150 clients=2 scale=10
keep_full=2 segsize=1 compression=zstd out=
while (($# > 0)); do
  case $1 in
    --minutes) minutes=$2 ;;
    --backup-interval) backup_interval=$2 ;;
    --check-interval) check_interval=$2 ;;
    --sample) sample=$2 ;;
    --rate) rate=$2 ;;
    --clients) clients=$2 ;;
    --scale) scale=$2 ;;
    --keep-full) keep_full=$2 ;;
    --wal-segsize) segsize=$2 ;;
    --compression) compression=$2 ;;
    --out) out=$2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) ws_die "unknown option $1 (see --help)" ;;
  esac
  (($# >= 2)) || ws_die "$1 needs a value"
  shift 2
done
for v in minutes backup_interval check_interval sample rate clients scale keep_full segsize; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || ws_die "--${v//_/-} must be a positive integer"
done
ws_is_root || ws_die "run as root (the server runs as the postgres user)"
out=${out:-/tmp/walstore-soak-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
duration=$((minutes * 60))
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

ws_setup
ws_require_tool walpush walfetch walctl
s3_start
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  commit+="+changes"
fi

# ---- repository, cluster ---------------------------------------------------------------------
ws_make_key "$WS_TMP/key"
conf=$WS_TMP/walstore.toml
cat >"$conf" <<TOML
repository = "s3://$S3_BUCKET/soak"
compression = "$compression"
encryption_key_file = "$WS_TMP/key"
[s3]
endpoint = "$S3_ENDPOINT"
region = "us-east-1"
access_key_id = "$AWS_ACCESS_KEY_ID"
secret_access_key = "$AWS_SECRET_ACCESS_KEY"
multipart_threshold = 8388608
part_size = 5242880
TOML
chmod 0600 "$conf"
chown postgres: "$conf"
walctl=("$WS_BIN/walctl" -c "$conf")
as_pg "${walctl[@]}" init >/dev/null 2>&1 || ws_die "walctl init failed"

data=$WS_TMP/pg/data
port=$(ws_free_port)
pg_init "$data" --wal-segsize "$segsize"
# Checkpoints every 2 minutes: full-page images keep the WAL flowing at a steady rate.
pg_conf "$data" "checkpoint_timeout = '2min'" "max_wal_size = '1GB'" \
  "log_checkpoints = off" "autovacuum = on"
pg_enable_archiving "$data" "$(ws_tool_cmd walpush -c "$conf" %p)"
pg_start "$data" "$port" || ws_die "the server did not start"
conninfo="host=127.0.0.1 port=$port user=postgres"
status_dir=$data/pg_wal/archive_status
ws_log "pgbench -i -s $scale"
pg_pgbench "$port" -i -q -s "$scale" >"$out/logs/pgbench-init.log" 2>&1 || ws_die "pgbench -i failed"
pg_switch_and_wait_archived "$port" || ws_die "pgbench -i's WAL did not reach the archive"

# ---- samplers ----------------------------------------------------------------------------------
# RSS of this run's walstore processes (their executables are the copies in $WS_BIN), every
# 0.1 s, until SIGTERM; then per-tool figures as JSON.
t0=$(date +%s)
python3 "$WS_LIB_DIR/rss_sampler.py" "$WS_BIN" "$WS_TMP/rss.json" "$t0" "$sample" &
rss_pid=$!
WS_PIDS+=("$rss_pid")

# Archive lag, every $sample seconds: epoch|current segment|last archived|its time|archived
# count|failed count|last failed|its time, then .ready segments and the oldest one's mtime.
lag_tsv=$WS_TMP/lag.tsv
: >"$lag_tsv"
lag_sampler() {
  local row ready oldest
  while :; do
    row=$(pg_psql "$port" "select extract(epoch from now())::bigint, pg_walfile_name(pg_current_wal_lsn()),
      coalesce(last_archived_wal, ''), coalesce(extract(epoch from last_archived_time)::bigint, 0),
      archived_count, failed_count, coalesce(last_failed_wal, ''),
      coalesce(extract(epoch from last_failed_time)::bigint, 0) from pg_stat_archiver" 2>/dev/null) ||
      row="$(date +%s)|||0|0|0||0"
    ready=$(find "$status_dir" -maxdepth 1 -regextype posix-extended -regex '.*/[0-9A-F]{24}\.ready' \
      -printf '%T@\n' 2>/dev/null | sort -n) || ready=
    oldest=$(head -n1 <<<"$ready")
    printf '%s|%s|%s\n' "$row" "$(ws_line_count "$ready")" "${oldest:-0}" >>"$lag_tsv"
    sleep "$sample"
  done
}
lag_sampler &
lag_pid=$!
WS_PIDS+=("$lag_pid")

# ---- walctl runs ---------------------------------------------------------------------------------
runs_tsv=$WS_TMP/runs.tsv # start|end|what|exit code|log
: >"$runs_tsv"
run_n=0
# walctl_run WHAT ARGS...: runs walctl ARGS as postgres; its stdout to $out/logs/NN-WHAT.out,
# stderr to .err; records the run.  Sets $last_rc.
walctl_run() {
  local what=$1 start end log
  shift
  run_n=$((run_n + 1))
  log=$out/logs/$(printf '%02d' "$run_n")-$what
  start=$(date +%s.%N)
  last_rc=0
  as_pg "${walctl[@]}" "$@" >"$log.out" 2>"$log.err" || last_rc=$?
  end=$(date +%s.%N)
  printf '%s|%s|%s|%s|%s\n' "$start" "$end" "$what" "$last_rc" "$(basename "$log")" >>"$runs_tsv"
  ws_log "walctl $what: exit $last_rc ($(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }') s)"
}

# leftovers WHEN: counts what writers left behind, one JSON line to $leftovers_jsonl.
leftovers_jsonl=$WS_TMP/leftovers.jsonl
: >"$leftovers_jsonl"
drill_work=$WS_TMP/drill
ws_pg_dir "$drill_work"
leftovers() {
  local uploads tmp markers pushlog drill_left
  uploads=$(find "$S3_DIR/data" -path '*_S3rver_uploads/*' -prune -type d 2>/dev/null | wc -l)
  tmp=$(find "$data" -name '*.walstore-tmp.*' 2>/dev/null | wc -l)
  markers=$(find "$data/pg_wal/.walstore-push" -mindepth 1 -maxdepth 1 -regextype posix-extended \
    -regex '.*/[0-9A-F]{24}[^/]*' 2>/dev/null | wc -l)
  # push.log is the worker's log: its notices are normal, a warning or error is not.
  pushlog=$(grep -cE 'WARNING|ERROR|FATAL' "$data/pg_wal/.walstore-push/push.log" 2>/dev/null) ||
    pushlog=0
  drill_left=$(find "$drill_work" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  printf '{"when": "%s", "t": %s, "s3_incomplete_uploads": %s, "temp_files": %s, "push_ahead_markers": %s, "push_log_problems": %s, "drill_work_entries": %s}\n' \
    "$1" "$(($(date +%s) - t0))" "$uploads" "$tmp" "$markers" "$pushlog" "$drill_left" \
    >>"$leftovers_jsonl"
}

# ---- the load and the schedule -------------------------------------------------------------
ws_log "load: pgbench -c $clients -R $rate for $minutes min; backup every ${backup_interval}s," \
  "prune --keep-full $keep_full + verify every ${check_interval}s; results in $out"
# -T with room for the drill at the end; stopped below.
nice -n 5 runuser -u postgres -- "$PG_BIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n \
  -c "$clients" -j 1 -R "$rate" -T $((duration + 3600)) -P 60 postgres \
  >"$out/logs/pgbench.log" 2>&1 &
pgbench_pid=$!
WS_PIDS+=("$pgbench_pid")

echo "select count(*) from pgbench_accounts" >"$WS_TMP/drill.sql"
chmod 0644 "$WS_TMP/drill.sql"
next_backup=$t0
next_check=$((t0 + check_interval))
end=$((t0 + duration))
backups=0
while (($(date +%s) < end)); do
  kill -0 "$pgbench_pid" 2>/dev/null || ws_die "pgbench stopped: $(tail -3 "$out/logs/pgbench.log")"
  now=$(date +%s)
  if ((now >= next_backup)); then
    walctl_run backup backup -d "$conninfo" --checkpoint fast --no-progress --json
    backups=$((backups + 1))
    next_backup=$((next_backup + backup_interval))
  fi
  now=$(date +%s)
  if ((now >= next_check)); then
    walctl_run prune prune --keep-full "$keep_full" --json
    leftovers "after prune at $((now - t0)) s"
    walctl_run verify verify --json
    next_check=$((next_check + check_interval))
  fi
  sleep 1
done

ws_log "drill (pgbench still running)"
walctl_run drill drill latest --sql "$WS_TMP/drill.sql" --work-dir "$drill_work" \
  --pg-bin "$PG_BIN" --json
pg_psql "$port" "select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = 'pgbench'" >/dev/null
wait "$pgbench_pid" 2>/dev/null || true
final_archived=true
pg_switch_and_wait_archived "$port" || final_archived=false
ws_wait_workers
walctl_run final-verify verify --json
sleep "$sample" # one more lag sample after the load
leftovers "end"
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
kill "$lag_pid" 2>/dev/null || true
kill "$rss_pid" 2>/dev/null || true
wait "$rss_pid" 2>/dev/null || true
cp "$(pg_log "$data")" "$out/logs/postgresql.log"
ls -la "$data/pg_wal/.walstore-push" >"$out/logs/push-ahead-dir.txt" 2>&1 || true
cp "$data/pg_wal/.walstore-push/push.log" "$out/logs/push.log" 2>/dev/null || true
cp "$S3_DIR/s3rver.log" "$out/logs/s3rver.log" 2>/dev/null || true

# ---- report ----------------------------------------------------------------------------------
rc=0
python3 - "$out" "$WS_TMP" "$t0" "$segsize" "$final_archived" "$keep_full" "$backups" <<PY || rc=$?
import json, os, statistics, subprocess, sys
out, tmp, t0, segsize_mb, final_archived, keep_full, backups = sys.argv[1:8]
t0, keep_full, backups = int(t0), int(keep_full), int(backups)
final_archived = final_archived == "true"
settings = {
    "date_utc": subprocess.run(["date", "-u", "-d", f"@{t0}", "+%Y-%m-%d %H:%M"], capture_output=True,
                               text=True).stdout.strip(),
    "commit": "$commit", "minutes": $minutes, "backup_interval_s": $backup_interval,
    "check_interval_s": $check_interval, "sample_s": $sample, "pgbench_rate_tps": $rate,
    "pgbench_clients": $clients, "pgbench_scale": $scale, "keep_full": keep_full,
    "wal_segment_mib": int(segsize_mb), "compression": "$compression", "encryption": "AES-256-GCM",
    "repository": "s3 (s3rver, http, loopback)", "multipart_threshold": 8388608, "part_size": 5242880,
    "cores": os.cpu_count(), "load_start": "$load_start", "load_end": "$load_end",
    "postgresql": subprocess.run(["$PG_BIN/postgres", "--version"], capture_output=True,
                                 text=True).stdout.strip(),
}
seg_bytes = int(segsize_mb) * 1024 * 1024
per_log = 0x100000000 // seg_bytes
def segno(name):
    return int(name[8:16], 16) * per_log + int(name[16:24], 16)
def plain(name):
    return len(name) == 24 and all(c in "0123456789ABCDEF" for c in name)

lag, last_plain = [], None
for line in open(f"{tmp}/lag.tsv"):
    f = line.rstrip("\n").split("|")
    if len(f) < 10 or not f[1]:
        continue
    now, cur, last, last_t, archived, failed, last_failed, failed_t, ready, oldest = f[:10]
    if plain(last):
        last_plain = last
    # Finished segments the archiver has not reported archived (0: caught up).
    behind = segno(cur) - segno(last_plain) - 1 if last_plain else None
    lag.append({"t": int(now) - t0, "current_segment": cur, "last_archived": last,
                "segments_behind_current": behind, "ready_segments": int(ready),
                "oldest_ready_age_s": round(int(now) - float(oldest), 1) if float(oldest) > 0 else 0.0,
                "since_last_archived_s": int(now) - int(last_t) if int(last_t) else None,
                "archived_count": int(archived), "failed_count": int(failed),
                "last_failed": last_failed or None})

runs = []
for line in open(f"{tmp}/runs.tsv"):
    start, end, what, code, log = line.rstrip("\n").split("|")
    text = open(f"{out}/logs/{log}.out").read()
    try:
        doc = json.loads(text) if text.strip() else None
    except ValueError:
        doc = None
    runs.append({"t": round(float(start) - t0, 1), "what": what, "exit": int(code),
                 "seconds": round(float(end) - float(start), 1), "log": f"logs/{log}", "json": doc})
leftovers = [json.loads(l) for l in open(f"{tmp}/leftovers.jsonl")]
rss = json.load(open(f"{tmp}/rss.json")) if os.path.exists(f"{tmp}/rss.json") else {"tools": {}, "series": []}

# The load: segments archived per minute over the run (first to last sample).
load = [s for s in lag if s["archived_count"]]
seg_per_min = None
if len(load) >= 2 and load[-1]["t"] > load[0]["t"]:
    seg_per_min = round((load[-1]["archived_count"] - load[0]["archived_count"]) * 60 /
                        (load[-1]["t"] - load[0]["t"]), 1)
def stats(key):
    v = [s[key] for s in lag if s[key] is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "p95": sorted(v)[int(0.95 * (len(v) - 1))], "max": max(v)}

failures = []
for r in runs:
    if r["exit"] != 0:
        failures.append(f"walctl {r['what']} at {r['t']:.0f} s exited {r['exit']} ({r['log']}.err)")
    if r["what"] in ("verify", "final-verify") and r["json"] and not r["json"].get("ok"):
        failures.append(f"walctl verify at {r['t']:.0f} s not clean: {r['json'].get('problems')}")
drill = next((r["json"] for r in runs if r["what"] == "drill"), None)
if not drill or not drill.get("ok"):
    failures.append("drill failed: " + (drill.get("failure", "") if drill else "no report"))
archive_failed = lag[-1]["failed_count"] if lag else None
if not final_archived:
    failures.append("the last segment did not reach the archive at the end")
elif archive_failed:
    pass  # recovered: reported below, not a failure of the run
prunes = [r for r in runs if r["what"] == "prune" and r["json"]]
removed_backups = sum(len(r["json"]["remove_backups"]) for r in prunes)
removed_wal = sum(len(r["json"]["remove_wal"]) for r in prunes)
if backups > keep_full and removed_backups == 0:
    failures.append(f"{backups} backups, --keep-full {keep_full}, but no prune removed a backup")
end_left = leftovers[-1] if leftovers else {}
for k in ("s3_incomplete_uploads", "temp_files", "push_ahead_markers", "push_log_problems",
          "drill_work_entries"):
    if end_left.get(k):
        failures.append(f"leftover at the end: {k} = {end_left[k]}")
# Warnings and errors the tools logged: walpush/walfetch in the server log, walctl in its runs'.
import re
messages = {}
def scan(path, tool=None):
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        return
    for line in lines:
        m = re.search(r"\b(walpush|walfetch|walctl): (WARNING|ERROR|FATAL|PANIC): +(.*)", line)
        if m and (tool is None or m.group(1) == tool):
            e = messages.setdefault(f"{m.group(1)} {m.group(2)}", {"count": 0, "first": []})
            e["count"] += 1
            if len(e["first"]) < 3:
                e["first"].append(m.group(3)[:300])
scan(f"{out}/logs/postgresql.log")
for r in runs:
    scan(f"{out}/{r['log']}.err", "walctl")
verify_left = [len(r["json"]["leftovers"]) if r["json"] and r["json"].get("leftovers") is not None
               else None for r in runs if r["what"] in ("verify", "final-verify")]

summary = {
    "ok": not failures, "failures": failures,
    "segments_archived_per_minute": seg_per_min,
    "archived_segments": (lag[-1]["archived_count"] - lag[0]["archived_count"]) if lag else None,
    "archiver_failed_count": archive_failed, "archive_caught_up_at_end": final_archived,
    "lag_ready_segments": stats("ready_segments"), "lag_oldest_ready_age_s": stats("oldest_ready_age_s"),
    "lag_segments_behind_current": stats("segments_behind_current"),
    "rss": rss["tools"],
    "backups": [{"t": r["t"], "seconds": r["seconds"], "exit": r["exit"],
                 "label": (r["json"] or {}).get("label"),
                 "size": (r["json"] or {}).get("size"), "stored_size": (r["json"] or {}).get("stored_size")}
                for r in runs if r["what"] == "backup"],
    "prunes": [{"t": r["t"], "seconds": r["seconds"], "removed_backups": len(r["json"]["remove_backups"]),
                "removed_wal": len(r["json"]["remove_wal"]),
                "removed_leftovers": r["json"]["remove_leftovers"]} for r in prunes],
    "verify_seconds": [r["seconds"] for r in runs if r["what"] in ("verify", "final-verify")],
    "verify_leftovers_listed": verify_left,
    "leftovers": leftovers,
    "tool_messages": messages,
    "drill": {k: drill.get(k) for k in ("ok", "backup", "failure", "restore_seconds", "recovery_seconds",
                                          "rto_seconds", "rpo_seconds", "sql_output")} if drill else None,
}
json.dump({"settings": settings, "summary": summary, "lag": lag, "rss_series": rss["series"],
           "runs": runs}, open(f"{out}/soak.json", "w"), indent=1)

def fmt(s):
    return "n/a" if not s else f"median {s['median']}, p95 {s['p95']}, max {s['max']}"
print()
print(f"walstore soak {settings['date_utc']} UTC, commit {settings['commit']}, {settings['minutes']} min, "
      f"{settings['postgresql']}, {settings['cores']} cores")
print(f"load: pgbench -c {settings['pgbench_clients']} -R {settings['pgbench_rate_tps']} (scale "
      f"{settings['pgbench_scale']}), {segsize_mb} MiB segments, {settings['compression']} + AES-256-GCM, "
      f"S3 (s3rver); load average at start {settings['load_start']}, at end {settings['load_end']}")
print(f"archived {summary['archived_segments']} segments, {seg_per_min} per minute; "
      f"archiver failed_count {archive_failed}; caught up at the end: {final_archived}")
print(f"archive lag (every {settings['sample_s']} s, {len(lag)} samples):")
print(f"  .ready segments:           {fmt(summary['lag_ready_segments'])}")
print(f"  oldest .ready age (s):     {fmt(summary['lag_oldest_ready_age_s'])}")
print(f"  finished, not archived:    {fmt(summary['lag_segments_behind_current'])}")
print("RSS (KiB)                       processes  peak VmHWM  typical VmHWM  peak VmRSS")
for tool, r in rss["tools"].items():
    print(f"  {tool:<30}{r['processes_seen']:>9}{r['peak_vmhwm_kib']:>12}{r['typical_vmhwm_kib']:>15}"
          f"{r['peak_vmrss_kib']:>12}")
for b in summary["backups"]:
    print(f"backup at {b['t']:.0f} s: {b['seconds']} s, exit {b['exit']}, {b['size']} -> {b['stored_size']} bytes")
for p in summary["prunes"]:
    print(f"prune at {p['t']:.0f} s: {p['seconds']} s, removed {p['removed_backups']} backups, "
          f"{p['removed_wal']} WAL files, leftovers {p['removed_leftovers']}")
print(f"verify: {len(summary['verify_seconds'])} runs, seconds {summary['verify_seconds']}, "
      f"leftovers listed {verify_left}")
print("leftovers:")
for l in leftovers:
    print(f"  {l['when']}: uploads {l['s3_incomplete_uploads']}, temp files {l['temp_files']}, "
          f"push-ahead markers {l['push_ahead_markers']}, push.log problems {l['push_log_problems']}, drill dir {l['drill_work_entries']}")
print("warnings / errors logged by the tools:" + ("" if messages else " none"))
for k, e in messages.items():
    print(f"  {k}: {e['count']}, e.g. {e['first'][0]}")
d = summary["drill"]
if d:
    print(f"drill of {d['backup']}: {'PASSED' if d['ok'] else 'FAILED ' + d['failure']}; RTO {d['rto_seconds']:.1f} s "
          f"(restore {d['restore_seconds']:.1f}, recovery {d['recovery_seconds']:.1f}), RPO "
          f"{d['rpo_seconds'] if d['rpo_seconds'] is None else round(d['rpo_seconds'], 1)} s, query {d['sql_output']}")
print(f"results: {out}/soak.json")
if failures:
    print("SOAK FAILED:")
    for f in failures:
        print("  - " + f)
    sys.exit(1)
print("SOAK PASSED")
PY
exit "$rc"
