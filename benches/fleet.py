#!/usr/bin/env python3
"""Several hosts (issue 14): the PostgreSQL state beside SQLite, in one run.
Python 3.11 standard library and the `psql` client only.

Owns: running one or three real jobrun daemons on one job source against
each backend and measuring them from the outside, as benches/e2e.py does
for one daemon (whose helpers it imports: the release build, the stamp job,
the spawn floor, /proc probes, reading the jobs' clock readings). It never
judges a time: it reports, and exits non-zero only when something did not
run, or a tick of a job started twice.

Backends and "hosts":
  postgres  every daemon has its own --state-dir and --host-id (h1, h2, h3)
            and all share one database, made fresh for each round on the
            server --database names (default postgres://postgres@127.0.0.1:5432/)
            and dropped after it; default --heartbeat (5s), --lease, --fence
  sqlite    one daemon; or three sharing one state directory (SQLite's
            several-process mode: flock leases, the claim's unique key)

Measures:
  fire latency  1, 100, 1,000 jobs due on one tick, with 1 and 3 daemons:
                tick -> the job's first instruction (benches/stamp.c, as in
                e2e.py); p50, p99, max over every job of every measured tick;
                the daemons' CPU per tick (summed over the daemons) and, for
                PostgreSQL, the server's backends' CPU per tick; tick -> last
                start and -> last record; how many starts each daemon won; and
                every (job, tick) started at most once (checked, not assumed)
  floor         the spawn floor (benches/spawn_floor.c) on the same ticks
  idle          one daemon, 1,000 jobs none due: wake-ups (voluntary context
                switches over every thread) and CPU over --idle-seconds, per
                backend; for PostgreSQL also the server backends serving the
                daemon (the heartbeat's cost on the server)

Claims per second at the store (no process started) are criterion's:
`cargo bench --bench store -- claims` (benches/store.rs, both backends).

Usage:
  benches/fleet.py --quick                    # CI smoke: 1 and 20 jobs, ~40 s
  benches/fleet.py --skip-build --repeat 3 --json fleet.json   # BENCHMARKS.md's tables
  benches/fleet.py --skip-build --only idle --repeat 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The production build, the stamp job, the spawn floor, /proc probes and the
# readings' arithmetic are e2e.py's: this script runs from benches/, so it
# imports them.
import e2e
from e2e import (FREESTANDING, Bench, Daemon, Job, build_c, cpu_seconds, fmt, idle_json,
                 job_name, latency_from, machine, measure_idle, med, read_records,
                 records_of, release_build, status_kb, switches, tick_of, wait_until,
                 yaml_jobs)

REPO = Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/"


def log(msg: str) -> None:
    print(f"[fleet] {msg}", file=sys.stderr, flush=True)


def iso_ms(t: float) -> str:
    return dt.datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# ---------------------------------------------------------------- PostgreSQL


def db_url(server: str, name: str) -> str:
    """`server` (a postgres:// URL) with its database replaced by `name`."""
    scheme, rest = server.split("://", 1)
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    query = "?" + rest.split("?", 1)[1] if "?" in rest else ""
    return f"{scheme}://{authority}/{name}{query}"


def psql(url: str, sql: str, timeout: float = 60) -> list[list[str]]:
    """Rows of `sql` on `url`, as text fields."""
    done = subprocess.run(["psql", url, "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                           "-c", sql], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"psql {sql!r}: {done.stderr.strip()}")
    return [line.split("\t") for line in done.stdout.splitlines() if line]


def server_answers(server: str) -> str | None:
    """None when the server takes a query, else why not."""
    if not shutil.which("psql"):
        return "psql is not installed (apt-get install postgresql-client)"
    try:
        psql(db_url(server, "postgres"), "SELECT 1", timeout=10)
        return None
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return str(e)


class Database:
    """A database of the benchmark's own on the server, dropped on close."""

    count = 0

    def __init__(self, server: str):
        Database.count += 1
        self.name = f"jobrun_bench_{os.getpid()}_{Database.count}"
        self.admin = db_url(server, "postgres")
        self.url = db_url(server, self.name)
        psql(self.admin, f"CREATE DATABASE {self.name}")

    def close(self) -> None:
        psql(self.admin, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")

    def backend_pids(self) -> list[int]:
        """The server processes serving this database (not psql's own)."""
        rows = psql(self.admin, "SELECT pid FROM pg_stat_activity "
                                f"WHERE datname = '{self.name}' AND pid <> pg_backend_pid()")
        return [int(r[0]) for r in rows]


def procs_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def procs_switches(pids: list[int]) -> int:
    return sum(v for pid in pids for v, _ in switches(pid).values())


# ------------------------------------------------------------------ backends


class Sqlite:
    """Every daemon on one state directory."""

    name = "sqlite"

    def __init__(self, d: Path):
        self.state = d / "state"
        self.db = self.state / "jobrun.db"

    def argv(self, host: str) -> list[str]:
        return ["--state-dir", str(self.state)]

    def registered(self, pid: int) -> bool:
        if not self.db.exists():
            return False
        rows = self.rows("SELECT count(*) FROM daemons WHERE pid = ? AND stopped_at IS NULL", (pid,))
        return bool(rows and rows[0][0])

    def rows(self, sql: str, params: tuple = ()) -> list:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:  # the schema is not there yet
            return []
        finally:
            conn.close()

    def settled(self, last_tick: float, jobs: int) -> bool:
        if not self.db.exists():
            return False
        rows = self.rows(
            "SELECT (SELECT count(*) FROM runs WHERE tick = ?1), "
            "(SELECT count(*) FROM runs WHERE tick <= ?1 AND status = 'running')", (iso_ms(last_tick),))
        return bool(rows) and rows[0][0] >= jobs and rows[0][1] == 0

    def summary(self, since: float, upto: float) -> dict:
        """Runs of the measured ticks by status, starts by daemon (owner),
        and the latest finish of each tick."""
        rows = self.rows("SELECT status, count(*) FROM runs WHERE tick >= ? AND tick <= ? GROUP BY status",
                         (iso_ms(since), iso_ms(upto)))
        by_owner = self.rows("SELECT owner, count(*) FROM runs WHERE tick >= ? AND tick <= ? "
                             "AND started_at IS NOT NULL GROUP BY owner", (iso_ms(since), iso_ms(upto)))
        fin = self.rows("SELECT tick, max(finished_at) FROM runs WHERE tick IS NOT NULL GROUP BY tick")
        finished = {parse(t): parse(f) for t, f in fin if t and f}
        return {"statuses": dict(rows), "starts_by_daemon": sorted(n for _, n in by_owner),
                "finished_by_tick": finished}

    def server_pids(self) -> list[int]:
        return []

    def close(self) -> None:
        pass


class Postgres:
    """Every daemon with its own state directory and host id, one database."""

    name = "postgres"

    def __init__(self, d: Path, server: str, heartbeat: str | None):
        self.d = d
        self.database = Database(server)
        self.heartbeat = heartbeat

    def argv(self, host: str) -> list[str]:
        beat = ["--heartbeat", self.heartbeat] if self.heartbeat else []
        return ["--state-dir", str(self.d / f"state-{host}"), "--database", self.database.url,
                "--host-id", host, *beat]

    def q(self, sql: str) -> list[list[str]]:
        return psql(self.database.url, sql)

    def registered(self, pid: int) -> bool:
        try:
            return int(self.q(f"SELECT count(*) FROM daemons WHERE pid = {pid} "
                              "AND stopped_at IS NULL AND dead_at IS NULL")[0][0]) > 0
        except RuntimeError:  # the schema is not there yet
            return False

    def settled(self, last_tick: float, jobs: int) -> bool:
        t = iso_ms(last_tick)
        claimed, running = self.q(
            f"SELECT (SELECT count(*) FROM runs WHERE tick = '{t}'), "
            f"(SELECT count(*) FROM runs WHERE tick <= '{t}' AND status = 'running')")[0]
        return int(claimed) >= jobs and int(running) == 0

    def summary(self, since: float, upto: float) -> dict:
        window = f"tick >= '{iso_ms(since)}' AND tick <= '{iso_ms(upto)}'"
        rows = self.q(f"SELECT status, count(*) FROM runs WHERE {window} GROUP BY status")
        by_host = self.q(f"SELECT host, count(*) FROM runs WHERE {window} "
                         "AND started_at IS NOT NULL GROUP BY host")
        fin = self.q("SELECT extract(epoch FROM tick), extract(epoch FROM max(finished_at)) FROM runs "
                     "WHERE tick IS NOT NULL GROUP BY tick HAVING count(*) FILTER (WHERE status = 'running') = 0")
        return {"statuses": {s: int(n) for s, n in rows},
                "starts_by_daemon": sorted(int(n) for _, n in by_host),
                "finished_by_tick": {float(t): float(f) for t, f in fin if f}}

    def server_pids(self) -> list[int]:
        return self.database.backend_pids()

    def close(self) -> None:
        self.database.close()


def parse(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -------------------------------------------------------------------- rounds


class Fleet:
    def __init__(self, args, jobrun: Path, work: Path):
        self.args, self.jobrun, self.work = args, jobrun, work

    def scratch(self, name: str) -> Path:
        d = self.work / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d

    def backend(self, kind: str, d: Path):
        if kind == "sqlite":
            return Sqlite(d)
        return Postgres(d, self.args.database, self.args.heartbeat)

    def start(self, backend, n: int, d: Path, cfg: Path) -> list[Daemon]:
        """`n` daemons h1..hn, started together; returns once each has
        registered (its daemons row)."""
        daemons = []
        for i in range(1, n + 1):
            host = f"h{i}"
            argv = [str(self.jobrun), *backend.argv(host), "daemon", "--config", str(cfg),
                    "--reboot-marker-dir", str(d / f"run-{host}")]
            daemons.append(Daemon(f"{d.name}-{host}", argv, d))
        for daemon in daemons:
            def up(daemon=daemon):
                if not daemon.alive():
                    raise SystemExit(f"fleet: {daemon.name} exited: {daemon.stderr()[-2000:]}")
                return backend.registered(daemon.pid) and status_kb(daemon.pid, "VmHWM")
            wait_until(f"{daemon.name} to register", 60, up, interval=0.2)
        return daemons

    def rounds(self, kind: str, n: int, jobs: int, every: int, ticks: int) -> dict:
        """`jobs` jobs on a tick every `every` seconds run by `n` daemons;
        `ticks` ticks measured after at least one warm-up tick."""
        d = self.scratch(f"{kind}-{n}x-{jobs}")
        out = records_of(d)
        cfg = d / "jobs.yaml"
        yaml_jobs(cfg, [(job_name("j", i), f"*/{every} * * * * *") for i in range(jobs)], out)
        backend = self.backend(kind, d)
        try:
            daemons = self.start(backend, n, d, cfg)
            try:
                return self.measure(backend, daemons, out, jobs, every, ticks)
            finally:
                for daemon in daemons:
                    daemon.stop()
        finally:
            backend.close()

    def measure(self, backend, daemons: list[Daemon], out: Path, jobs: int, every: int, ticks: int) -> dict:
        started = time.time()
        skip_before = (int(started // every) + 2) * every
        last_tick = skip_before + (ticks - 1) * every
        time.sleep(max(0.0, skip_before - 0.5 - time.time()))
        server = backend.server_pids()
        cpu0 = sum(cpu_seconds(x.pid) for x in daemons)
        server0 = procs_cpu(server)
        while time.time() < last_tick + 1:
            time.sleep(0.5)
        deadline = time.time() + 60
        while time.time() < deadline and not backend.settled(last_tick, jobs):
            time.sleep(0.5)
        cpu = (sum(cpu_seconds(x.pid) for x in daemons) - cpu0) * 1000 / ticks
        server_cpu = (procs_cpu(server) - server0) * 1000 / ticks if server else None
        for daemon in daemons:
            if not daemon.alive():
                raise SystemExit(f"fleet: {daemon.name} died: {daemon.stderr()[-2000:]}")
        s = backend.summary(skip_before, last_tick)
        records = [r for r in read_records(out) if skip_before <= tick_of(r[0], r[1]) <= last_tick]
        lat = latency_from(records, jobs, skip_before, None)
        lat.last_record_ms = [(s["finished_by_tick"][t] - t) * 1000 for t in
                              sorted({tick_of(r[0], r[1]) for r in records}) if t in s["finished_by_tick"]]
        seen: dict[tuple[str, str], int] = {}
        for _, tick, job in records:
            seen[(tick, job)] = seen.get((tick, job), 0) + 1
        twice = sum(1 for c in seen.values() if c > 1)
        if twice:
            log(f"AT MOST ONCE BROKEN: {twice} (job, tick) pairs started more than once")
        return {
            **lat.summary(),
            "expected_starts": jobs * ticks,
            "starts": len(records),
            "started_twice": twice,
            "statuses": s["statuses"],
            "starts_by_daemon": s["starts_by_daemon"],
            "daemon_cpu_per_tick_ms": cpu,
            "server_cpu_per_tick_ms": server_cpu,
            "rss_peak_kib": [status_kb(x.pid, "VmHWM") for x in daemons],
            # RUST_LOG=warn: every line the daemons logged is a warning or an error.
            "log_lines": sum(len(x.stderr().splitlines()) for x in daemons),
        }

    def idle(self, kind: str, jobs: int, seconds: float) -> dict:
        """One daemon, `jobs` jobs none due within the hour."""
        d = self.scratch(f"{kind}-idle")
        hour = (dt.datetime.now(UTC).hour + 2) % 24
        cfg = d / "jobs.yaml"
        yaml_jobs(cfg, [(job_name("idle", i), f"{i % 60} {hour} * * *") for i in range(jobs)], records_of(d))
        backend = self.backend(kind, d)
        try:
            [daemon] = self.start(backend, 1, d, cfg)
            try:
                time.sleep(self.args.settle)
                if kind == "postgres":
                    # The heartbeat's connection is made at its first beat:
                    # wait for it (and the store's), so the server side of
                    # both is measured.
                    wait_until("the daemon's two connections", 30,
                               lambda: len(backend.server_pids()) >= 2, interval=0.5)
                server = backend.server_pids()
                sw0, cpu0 = procs_switches(server), procs_cpu(server)
                idle = measure_idle(daemon.pid, seconds)
                sw1, cpu1 = procs_switches(server), procs_cpu(server)
                result = idle_json(idle, status_kb(daemon.pid, "VmHWM"), status_kb(daemon.pid, "VmRSS"))
                if server:
                    result["server_backends"] = len(server)
                    result["server_wakeups_per_min"] = round((sw1 - sw0) * 60.0 / idle.seconds, 2)
                    result["server_core_percent"] = round(100.0 * (cpu1 - cpu0) / idle.seconds, 4)
                return result
            finally:
                daemon.stop()
        finally:
            backend.close()


# -------------------------------------------------------------------- report


def merged(reps: list[dict], path: list) -> float | None:
    vals = []
    for r in reps:
        v = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        vals.append(v)
    return med(vals)


def report(result: dict) -> str:
    reps = result["repeats"]
    lines = [f"jobrun fleet benchmark: {result['machine']}",
             f"medians of {len(reps)} run(s); heartbeat {result['heartbeat'] or '5s (default)'}", ""]
    head = f"{'backend, daemons, jobs on one tick':34} {'p50':>8} {'p99':>8} {'max':>8} " \
           f"{'last st':>8} {'last rec':>8} {'cpu/tick':>8} {'srv/tick':>8} {'twice':>5} {'missing':>7}"
    lines += ["fire latency (ms): tick -> the job's first instruction", head]
    for key in result["rounds"]:
        if key not in reps[0]:
            continue
        r0 = reps[0][key]
        missing = med([r[key]["expected_starts"] - r[key]["starts"] for r in reps])
        lines.append(
            f"{key:34} {fmt(merged(reps, [key, 'p50_ms']), '', 2):>8} {fmt(merged(reps, [key, 'p99_ms']), '', 2):>8} "
            f"{fmt(merged(reps, [key, 'max_ms']), '', 2):>8} {fmt(merged(reps, [key, 'last_start_ms'])):>8} "
            f"{fmt(merged(reps, [key, 'last_record_ms'])):>8} {fmt(merged(reps, [key, 'daemon_cpu_per_tick_ms'])):>8} "
            f"{fmt(merged(reps, [key, 'server_cpu_per_tick_ms'])):>8} {sum(r[key]['started_twice'] for r in reps):>5} "
            f"{fmt(missing):>7}")
        if len(r0["starts_by_daemon"]) > 1 or r0["statuses"].keys() - {"succeeded"} or r0.get("log_lines"):
            lines.append(f"{'':34} starts by daemon {r0['starts_by_daemon']}, statuses {r0['statuses']}, "
                         f"log lines {r0.get('log_lines', 0)}")
    if any(k.startswith("idle_") for k in reps[0]):
        lines += ["", f"idle, one daemon, {result['idle_jobs']} jobs none due "
                      f"({merged(reps, ['idle_sqlite', 'seconds']) or merged(reps, ['idle_postgres', 'seconds'])} s)",
                  f"{'backend':34} {'wake/min':>8} {'% core':>8} {'RSS KiB':>8} {'srv wake':>8} {'srv %':>8}"]
        for kind in ("sqlite", "postgres"):
            k = f"idle_{kind}"
            if k in reps[0]:
                lines.append(f"{kind:34} {fmt(merged(reps, [k, 'wakeups_per_min']), '', 2):>8} "
                             f"{fmt(merged(reps, [k, 'core_percent']), '', 4):>8} "
                             f"{fmt(merged(reps, [k, 'rss_kib'])):>8} "
                             f"{fmt(merged(reps, [k, 'server_wakeups_per_min']), '', 2):>8} "
                             f"{fmt(merged(reps, [k, 'server_core_percent']), '', 4):>8}")
                lines.append(f"{'':34} by thread {reps[0][k]['wakeups_by_thread']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 1 and 20 jobs, two ticks each, 3 s idle (CI)")
    p.add_argument("--repeat", type=int, default=3, help="whole runs; the tables show medians (default 3)")
    p.add_argument("--backends", default="sqlite,postgres", help="which of sqlite,postgres (default both)")
    p.add_argument("--daemons", default="1,3", help="daemon counts (default 1,3)")
    p.add_argument("--jobs", default="1,100,1000", help="jobs on one tick (default 1,100,1000)")
    p.add_argument("--ticks-1000", type=int, default=5, help="measured ticks of the 1,000-job rounds (default 5)")
    p.add_argument("--database", default=os.environ.get("JOBRUN_BENCH_DATABASE_URL", DEFAULT_SERVER),
                   help=f"the PostgreSQL server (a database of its own is made per round; default {DEFAULT_SERVER})")
    p.add_argument("--heartbeat", help="--heartbeat for the PostgreSQL daemons (default: jobrun's, 5s)")
    p.add_argument("--idle-seconds", type=float, default=60.0)
    p.add_argument("--settle", type=float, default=3.0, help="seconds after start before idle sampling")
    p.add_argument("--only", default="latency,floor,idle", help="which of latency,floor,idle (default all)")
    p.add_argument("--skip-build", action="store_true", help="use the jobrun the last build made")
    p.add_argument("--jobrun", type=Path, help="the jobrun binary to measure (implies --skip-build)")
    p.add_argument("--floor-threads", type=int, default=2, help="threads of the spawn floor (default 2)")
    p.add_argument("--json", type=Path, help="also write every number here")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = p.parse_args()

    job_counts = [int(x) for x in args.jobs.split(",")]
    every, ticks = {1: 1, 100: 2, 1000: 10}, {1: 20, 100: 10, 1000: args.ticks_1000}
    idle_jobs = 1000
    if args.quick:
        args.repeat, args.idle_seconds, args.settle = 1, 3.0, 1.0
        job_counts, every, ticks, idle_jobs = [1, 20], {1: 1, 20: 1}, {1: 2, 20: 2}, 50
        args.only = ",".join(x for x in args.only.split(",") if x != "floor")
    only = set(args.only.split(","))
    if only - {"latency", "floor", "idle"}:
        raise SystemExit(f"fleet: --only takes latency, floor and idle, not {args.only!r}")
    backends = args.backends.split(",")
    if set(backends) - {"sqlite", "postgres"}:
        raise SystemExit(f"fleet: --backends takes sqlite and postgres, not {args.backends!r}")
    if "postgres" in backends:
        why = server_answers(args.database)
        if why:
            message = f"no PostgreSQL server at {args.database} ({why}); bash .ci/postgres 5432 starts one"
            if os.environ.get("CI") == "true" or not args.quick:
                raise SystemExit(f"fleet: {message}")
            log(f"skipping PostgreSQL: {message}")
            backends.remove("postgres")
    counts = [int(x) for x in args.daemons.split(",")]

    jobrun = args.jobrun
    if jobrun is None:
        argv, env, jobrun = release_build()
        if not args.skip_build:
            log(" ".join(f"{k}={v!r}" for k, v in env.items()) + " " + " ".join(argv))
            subprocess.run(argv, cwd=REPO, check=True, env={**os.environ, **env})
    jobrun = jobrun.resolve()

    work = Path(tempfile.mkdtemp(prefix="jobrun-fleet-"))
    if not shutil.which("cc"):
        raise SystemExit("fleet: needs a C compiler (cc) for benches/stamp.c")
    e2e.JOB = Job("stamp", build_c("stamp.c", work / "stamp", FREESTANDING))
    floor = build_c("spawn_floor.c", work / "spawn_floor") if "floor" in only else None
    keys = [f"{b}, {n} daemon{'s' if n > 1 else ''}, {j} job{'s' if j > 1 else ''}"
            for j in job_counts for b in backends for n in counts] + \
           [f"spawn floor, {j} job{'s' if j > 1 else ''}" for j in job_counts]
    result = {"machine": machine(), "jobrun": str(jobrun), "heartbeat": args.heartbeat,
              "rounds": keys, "idle_jobs": idle_jobs, "repeats": []}
    try:
        fleet = Fleet(args, jobrun, work)
        floor_bench = Bench(args, jobrun, work, floor)
        for rep in range(args.repeat):
            one = {}
            for j in job_counts if "latency" in only or "floor" in only else []:
                label = f"{j} job{'s' if j > 1 else ''}"
                if "latency" in only:
                    for b in backends:
                        for n in counts:
                            key = f"{b}, {n} daemon{'s' if n > 1 else ''}, {label}"
                            log(f"run {rep + 1}/{args.repeat}: {key}, {ticks[j]} ticks every {every[j]} s")
                            one[key] = fleet.rounds(b, n, j, every[j], ticks[j])
                if floor:
                    log(f"run {rep + 1}/{args.repeat}: spawn floor, {label}")
                    one[f"spawn floor, {label}"] = {**floor_bench.floor_rounds(j, every[j], ticks[j]),
                                                    "expected_starts": j * ticks[j], "started_twice": 0,
                                                    "statuses": {}, "starts_by_daemon": []}
                    one[f"spawn floor, {label}"]["starts"] = one[f"spawn floor, {label}"]["samples"]
            if "idle" in only:
                for b in backends:
                    log(f"run {rep + 1}/{args.repeat}: idle, {b}, {idle_jobs} jobs, {args.idle_seconds:.0f} s")
                    one[f"idle_{b}"] = fleet.idle(b, idle_jobs, args.idle_seconds)
            result["repeats"].append(one)
    finally:
        if args.keep:
            log(f"scratch kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    twice = sum(v.get("started_twice", 0) for r in result["repeats"] for v in r.values() if isinstance(v, dict))
    if twice:
        log(f"{twice} (job, tick) pairs started more than once")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
