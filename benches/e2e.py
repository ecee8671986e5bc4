#!/usr/bin/env python3
"""End-to-end benchmark of the real jobrun daemon, side by side with Debian's
cron and yacron (issue 6). Python 3.11 standard library only.

Owns: building jobrun --release, generating job sources, running each daemon
in a scratch directory, measuring from the outside (/proc, the jobs' own clock
readings, the run database) and printing a results table (and JSON). It never
judges a time: it reports, and exits non-zero only when something did not run.

Measures (see BENCHMARKS.md for what each means and the results):
  fire latency  1, 100, 1,000 jobs due on one tick: tick -> the job's first
                instruction (the job, benches/stamp.c, reads the clock at its
                entry point and writes it next to $JOBRUN_TICK); p50, p99,
                max over every job of every tick; beside it the spawn floor
                (benches/spawn_floor.c) and the daemon's own CPU per tick
  burst         1,000 jobs on one tick: tick -> last start, tick -> last record
  idle          1,000 jobs none due within the hour: CPU time and wake-ups
                (voluntary context switches summed over every thread; the
                involuntary ones, preemptions, are reported beside them)
                over --idle-seconds
  http          the idle round again with `daemon --http` open (issue 15):
                wake-ups and RSS beside the same daemon without it, then
                the cost of one scrape of /metrics (and of the status page /)
                with 1,000 jobs, each with a run on record: the scraper's wall
                time and the daemon's CPU per request
  memory        peak RSS (VmHWM) with 1,000 jobs loaded, and after 10,000 runs
  cli           `jobrun list` with 10,000 jobs, `jobrun history --limit 50` on
                1,000,000 runs: wall time
  output        one job writing 1 GiB in 4 KiB lines and one writing a single
                100 MiB line: the daemon's peak RSS while it pumps them, and
                that the history counts every byte (--quick: 64 MiB, 16 MiB)

jobrun's own rounds use seconds-field schedules (a tick every few seconds).
cron and yacron only fire on minute boundaries, so the comparison rounds give
all three daemons the same user crontab with minute ticks; those take about
ten minutes per daemon. cron runs in a private mount namespace (unshare) with
the benchmark's crontab bind-mounted over its spool, so the host's crontabs
are neither read nor touched.

Usage:
  benches/e2e.py --quick                 # CI smoke: jobrun only, ~20 s
  benches/e2e.py                         # jobrun rounds; cron/yacron when installed
  benches/e2e.py --compare=no --repeat 3 --json out.json
  benches/e2e.py --compare=no --baseline OLD/jobrun   # an older build beside this one,
                                         # round by round, in one run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc
# `--job bash`: the job as a bash one-liner (bash's builtin clock, no fork).
# Its reading comes after bash's own start-up (about 1 ms of CPU here), so it
# measures bash as much as the scheduler. LC_ALL=C keeps the decimal point a
# point.
RECORD = 'echo "$EPOCHREALTIME ${JOBRUN_TICK:-} %s" >> %s'


class Job:
    """The job every daemon runs. By default benches/stamp.c, built static:
    reading the clock is its first act, so the reading is the job's first
    instruction (the issue's definition of fire latency). cron and yacron
    always go through a shell; jobrun runs the same command line as argv."""

    def __init__(self, kind: str, stamp: Path | None):
        self.kind, self.stamp = kind, stamp

    def argv(self, name: str, out: Path) -> list[str]:
        if self.kind == "bash":
            return ["/bin/bash", "-c", RECORD % (name, out)]
        return [str(self.stamp), name, str(out)]

    def line(self, name: str, out: Path) -> str:
        """The same job as a crontab command line."""
        if self.kind == "bash":
            return RECORD % (name, out)
        return f"{self.stamp} {name} {out}"

    def shell(self) -> str:
        return "/bin/bash" if self.kind == "bash" else "/bin/sh"


JOB = Job("bash", None)  # set in main()


# The production build the README gives: on Linux with glibc, static and
# not position-independent (no libc.so, ld.so or relocated pages: about 3 MiB
# less resident memory, BENCHMARKS.md change 13).
STATIC_RUSTFLAGS = "-C target-feature=+crt-static -C relocation-model=static"


def release_build() -> tuple[list[str], dict, Path]:
    """The cargo command, its extra environment and the binary it makes."""
    host = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    triple = next(line.split()[1] for line in host.splitlines() if line.startswith("host:"))
    argv = ["cargo", "build", "--release", "--locked", "--quiet"]
    if triple.endswith("-linux-gnu"):
        argv += ["--target", triple]
        return argv, {"RUSTFLAGS": STATIC_RUSTFLAGS}, REPO / "target" / triple / "release" / "jobrun"
    return argv, {}, REPO / "target" / "release" / "jobrun"


def records_of(d: Path) -> Path:
    """Where a round's jobs write their readings: a subfolder, not the folder
    of the sources, which jobrun watches for edits (non-recursively): there
    it would be woken by every job's write, a cost of the benchmark's layout
    rather than of the schedule."""
    out = d / "out"
    out.mkdir(exist_ok=True)
    return out / "records"


# The stamp job without a C library (benches/stamp.c explains why), tried
# first; then the ordinary builds.
FREESTANDING = ["-DSTAMP_FREESTANDING", "-ffreestanding", "-fno-builtin",
                "-fno-tree-loop-distribute-patterns", "-fno-stack-protector",
                "-fno-asynchronous-unwind-tables", "-nostdlib", "-static", "-no-pie"]


def build_c(source: str, out: Path, first: list[str] | None = None) -> Path:
    """Builds benches/SOURCE with cc: with the `first` flags if they work,
    else static when the C library allows it, else dynamic."""
    src = REPO / "benches" / source
    tries = ([first] if first else []) + [["-static", "-lpthread"], ["-lpthread"]]
    for flags in tries:
        done = subprocess.run(["cc", "-O2", "-o", str(out), str(src), *flags],
                              capture_output=True, text=True)
        if done.returncode == 0:
            log(f"built {source} with {' '.join(flags)}")
            return out
    raise SystemExit(f"e2e: cc could not build {src}:\n{done.stderr}")


def log(msg: str) -> None:
    print(f"[e2e] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc probes


def threads(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []


def switches(pid: int) -> dict[str, tuple[int, int]]:
    """(voluntary, involuntary) context switches of each live thread. A
    voluntary switch is a thread going to sleep, so each is one wake-up
    later; an involuntary one is a running thread preempted, which the
    daemon did not ask for (another process wanted the core)."""
    out = {}
    for tid in threads(pid):
        try:
            text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        vol = invol = 0
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches"):
                vol = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches"):
                invol = int(line.split()[1])
        out[tid] = (vol, invol)
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (dead threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def schedstat_ns(pid: int) -> int:
    """On-CPU nanoseconds summed over live threads (finer than utime+stime)."""
    total = 0
    for tid in threads(pid):
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return total


def status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


@dataclass
class Idle:
    seconds: float
    cpu_ms: float
    cpu_ms_schedstat: float
    wakeups: int
    preemptions: int
    wakeups_by_thread: dict
    threads_before: int
    threads_after: int

    @property
    def wakeups_per_min(self) -> float:
        return self.wakeups * 60.0 / self.seconds

    @property
    def core_percent(self) -> float:
        return 100.0 * max(self.cpu_ms, self.cpu_ms_schedstat) / 1000.0 / self.seconds


def measure_idle(pid: int, seconds: float) -> Idle:
    t_before = len(threads(pid))
    sw0, cpu0, ss0 = switches(pid), cpu_seconds(pid), schedstat_ns(pid)
    start = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - start
    sw1, cpu1, ss1 = switches(pid), cpu_seconds(pid), schedstat_ns(pid)
    # Threads born in the window count whole; threads that died in it are lost
    # (their count is reported so churn shows).
    wakeups = sum(v - sw0.get(tid, (0, 0))[0] for tid, (v, _) in sw1.items())
    by_thread: dict[str, int] = {}
    for tid, (v, _) in sw1.items():
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except (FileNotFoundError, ProcessLookupError):
            name = "?"
        if v - sw0.get(tid, (0, 0))[0]:
            by_thread[name] = by_thread.get(name, 0) + v - sw0.get(tid, (0, 0))[0]
    preemptions = sum(i - sw0.get(tid, (0, 0))[1] for tid, (_, i) in sw1.items())
    return Idle(
        seconds=elapsed,
        cpu_ms=(cpu1 - cpu0) * 1000,
        cpu_ms_schedstat=max(0, ss1 - ss0) / 1e6,
        wakeups=wakeups,
        preemptions=preemptions,
        wakeups_by_thread=by_thread,
        threads_before=t_before,
        threads_after=len(threads(pid)),
    )


# ------------------------------------------------------------------- daemons


class Daemon:
    """One daemon process in the foreground, its stderr in a file."""

    def __init__(self, name: str, argv: list[str], workdir: Path, env: dict | None = None):
        self.name = name
        self.stderr_path = workdir / f"{name}.stderr"
        self.stdout_path = workdir / f"{name}.stdout"
        full_env = dict(os.environ, LC_ALL="C", TZ="UTC", RUST_LOG="warn")
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            argv,
            stdout=open(self.stdout_path, "wb"),
            stderr=open(self.stderr_path, "wb"),
            env=full_env,
            start_new_session=True,
        )
        self._pid = None

    @property
    def pid(self) -> int:
        """The daemon itself (for cron, the process inside unshare)."""
        if self._pid is None:
            self._pid = self.proc.pid
            # `unshare ... cron -f` execs, so the pid is cron's; yacron's is python's.
        return self._pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


# ------------------------------------------------------------------- sources


def job_name(group: str, i: int) -> str:
    return f"{group}-{i:04d}"


def yaml_jobs(path: Path, jobs: list[tuple[str, str]], out: Path) -> None:
    """A jobrun YAML file: (name, schedule) each running JOB as argv."""
    lines = ["defaults:", "  timezone: UTC", "jobs:"]
    for name, sched in jobs:
        lines += [
            f"  - name: {name}",
            f'    schedule: "{sched}"',
            "    argv: " + json.dumps(JOB.argv(name, out)),
        ]
    path.write_text("\n".join(lines) + "\n")


def crontab(path: Path, jobs: list[tuple[str, str]], out: Path) -> None:
    """A user-format crontab (what cron's spool and jobrun --crontab read)."""
    lines = [f"SHELL={JOB.shell()}", "LC_ALL=C", "CRON_TZ=UTC"]
    for name, sched in jobs:
        lines.append(f"{sched} {JOB.line(name, out)}")
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def yacron_yaml(path: Path, jobs: list[tuple[str, str]], out: Path) -> None:
    lines = [
        "defaults:",
        f"  shell: {JOB.shell()}",
        "  utc: true",
        "  captureStderr: false",
        "  captureStdout: false",
        "  concurrencyPolicy: Allow",
        "  environment:",
        "    - key: LC_ALL",
        "      value: C",
        "jobs:",
    ]
    for name, sched in jobs:
        lines += [
            f"  - name: {name}",
            f'    schedule: "{sched}"',
            "    command: " + json.dumps(JOB.line(name, out)),
        ]
    path.write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------- results


def read_records(path: Path) -> list[tuple[float, str, str]]:
    """(clock reading, tick or "", job) per line the jobs wrote."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append((float(parts[0]), parts[1], parts[2]))
        elif len(parts) == 2:  # cron/yacron: no JOBRUN_TICK
            out.append((float(parts[0]), "", parts[1]))
    return out


def tick_of(reading: float, tick_text: str) -> float:
    if tick_text:
        return dt.datetime.fromisoformat(tick_text.replace("Z", "+00:00")).timestamp()
    # Minute ticks: the boundary the job ran after.
    return float(int(reading // 60) * 60)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


@dataclass
class Latency:
    samples_ms: list[float] = field(default_factory=list)
    ticks: int = 0
    complete_ticks: int = 0  # ticks on which every job started (none skipped)
    last_start_ms: list[float] = field(default_factory=list)  # per tick
    last_record_ms: list[float] = field(default_factory=list)  # per tick (jobrun)

    def summary(self) -> dict:
        return {
            "ticks": self.ticks,
            "complete_ticks": self.complete_ticks,
            "samples": len(self.samples_ms),
            "p50_ms": percentile(self.samples_ms, 50),
            "p99_ms": percentile(self.samples_ms, 99),
            "max_ms": max(self.samples_ms) if self.samples_ms else float("nan"),
            "last_start_ms": statistics.median(self.last_start_ms) if self.last_start_ms else None,
            "last_record_ms": statistics.median(self.last_record_ms) if self.last_record_ms else None,
        }


def latency_from(records, jobs: int, skip_before: float, db: Path | None) -> Latency:
    """Groups the readings by tick, keeps the ticks every job reached, drops
    the ticks before `skip_before` (start-up)."""
    by_tick: dict[float, list[float]] = {}
    for reading, tick_text, _ in records:
        tick = tick_of(reading, tick_text)
        by_tick.setdefault(tick, []).append(reading)
    lat = Latency()
    finished = finished_by_tick(db) if db else {}
    for tick in sorted(by_tick):
        readings = by_tick[tick]
        if tick < skip_before:
            continue
        lat.ticks += 1
        lat.complete_ticks += len(readings) >= jobs
        lat.samples_ms += [(r - tick) * 1000 for r in readings]
        lat.last_start_ms.append((max(readings) - tick) * 1000)
        if tick in finished:
            lat.last_record_ms.append((finished[tick] - tick) * 1000)
    return lat


def finished_by_tick(db: Path) -> dict[float, float]:
    """The latest finished_at of each tick's runs, from the run history."""
    if not db.exists():
        return {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT tick, max(finished_at), count(*), sum(status = 'running') FROM runs "
            "WHERE tick IS NOT NULL GROUP BY tick"
        ).fetchall()
    finally:
        conn.close()
    out = {}
    for tick, finished, _count, running in rows:
        if finished and not running:
            t = dt.datetime.fromisoformat(tick.replace("Z", "+00:00")).timestamp()
            out[t] = dt.datetime.fromisoformat(finished.replace("Z", "+00:00")).timestamp()
    return out


def skipped_runs(db: Path, upto: float, since: float = 0.0) -> int:
    """Ticks recorded `skipped` (the job's previous run was still going)."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT tick FROM runs WHERE status = 'skipped'").fetchall()
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()
    ticks = [dt.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for (t,) in rows]
    return sum(1 for t in ticks if since <= t <= upto)


def settled(db: Path, last_tick: float, jobs: int) -> bool:
    """Every job claimed `last_tick`, and no run up to it is still running."""
    if not db.exists():
        return False
    stamp = dt.datetime.fromtimestamp(last_tick, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        claimed, running = conn.execute(
            "SELECT (SELECT count(*) FROM runs WHERE tick = ?1), "
            "(SELECT count(*) FROM runs WHERE tick <= ?1 AND status = 'running')",
            (stamp,),
        ).fetchone()
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()
    return claimed >= jobs and running == 0


def db_runs(db: Path) -> tuple[int, int]:
    """(finished runs, running runs)."""
    if not db.exists():
        return (0, 0)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(
            "SELECT count(*) - coalesce(sum(status = 'running'), 0), "
            "coalesce(sum(status = 'running'), 0) FROM runs"
        ).fetchone()
    except sqlite3.OperationalError:
        return (0, 0)
    finally:
        conn.close()


def wait_until(what: str, timeout: float, check, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"e2e: timed out after {timeout:.0f}s waiting for {what}")


# ------------------------------------------------------------------- jobrun


class Bench:
    def __init__(self, args, jobrun: Path, work: Path, floor: Path | None):
        self.args = args
        self.jobrun = jobrun
        self.work = work
        self.floor = floor

    def scratch(self, name: str) -> Path:
        d = self.work / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d

    def start_jobrun(self, name: str, d: Path, source: list[str]) -> Daemon:
        argv = [str(self.jobrun), "daemon", "--state-dir", str(d / "state"), *source,
                "--reboot-marker-dir", str(d / "run")]
        daemon = Daemon(name, argv, d)
        wait_until(
            f"{name} to start",
            60,
            lambda: (d / "state" / "jobrun.db").exists() and daemon.alive() and status_kb(daemon.pid, "VmHWM"),
        )
        return daemon

    def jobrun_rounds(self, jobs: int, every: int, ticks: int) -> dict:
        """`jobs` jobs on a tick every `every` seconds, `ticks` ticks measured
        after one warm-up tick."""
        d = self.scratch(f"jobrun-{jobs}")
        out = records_of(d)
        sched = f"*/{every} * * * * *"
        cfg = d / "jobs.yaml"
        yaml_jobs(cfg, [(job_name("j", i), sched) for i in range(jobs)], out)
        daemon = self.start_jobrun(f"jobrun-{jobs}", d, ["--config", str(cfg)])
        started = time.time()
        loaded_hwm = status_kb(daemon.pid, "VmHWM")
        # Measure ticks at least one full period after start (warm-up dropped),
        # then wait for their runs to be recorded (or give up after a minute:
        # a daemon that cannot keep up is measured as it is).
        skip_before = (int(started // every) + 2) * every
        last_tick = skip_before + (ticks - 1) * every
        db = d / "state" / "jobrun.db"
        # The daemon's own CPU time (not its jobs') over the measured ticks:
        # what starting, supervising and recording them costs it.
        time.sleep(max(0.0, skip_before - 0.5 - time.time()))
        cpu_before = cpu_seconds(daemon.pid)
        while time.time() < last_tick + 1:
            time.sleep(0.5)
        deadline = time.time() + 60
        while time.time() < deadline and not settled(db, last_tick, jobs):
            time.sleep(0.5)
        cpu_per_tick_ms = (cpu_seconds(daemon.pid) - cpu_before) * 1000 / ticks
        hwm = status_kb(daemon.pid, "VmHWM")
        runs = db_runs(db)[0]
        daemon.stop()
        records = [r for r in read_records(out) if tick_of(r[0], r[1]) <= last_tick]
        lat = latency_from(records, jobs, skip_before, db)
        return {
            **lat.summary(),
            "skipped": skipped_runs(db, last_tick, since=skip_before),
            "rss_loaded_kib": loaded_hwm,
            "rss_peak_kib": hwm,
            "runs": runs,
            "daemon_cpu_per_tick_ms": cpu_per_tick_ms,
        }

    def floor_rounds(self, jobs: int, every: int, ticks: int) -> dict:
        """The spawn floor (benches/spawn_floor.c) on the same ticks and jobs
        as jobrun_rounds: the bare cost of starting the jobs on this machine."""
        d = self.scratch(f"floor-{jobs}")
        out = records_of(d)
        started = time.time()
        subprocess.run([str(self.floor), str(jobs), str(every), str(ticks + 1),
                        str(self.args.floor_threads), str(JOB.stamp), str(out)],
                       check=True, timeout=(ticks + 3) * every + 120)
        skip_before = (int(started // every) + 3) * every  # the first tick is warm-up
        lat = latency_from(read_records(out), jobs, skip_before, None)
        return lat.summary()

    def jobrun_idle(self, jobs: int, seconds: float, http: bool = False) -> dict:
        """`jobs` jobs none due within the hour; with `http`, `--http` open
        (and, after the idle window, the scrape costs)."""
        name = "jobrun-idle-http" if http else "jobrun-idle"
        d = self.scratch(name)
        hour = (dt.datetime.now(UTC).hour + 2) % 24
        cfg = d / "jobs.yaml"
        names = [job_name("idle", i) for i in range(jobs)]
        yaml_jobs(cfg, [(n, f"{i % 60} {hour} * * *") for i, n in enumerate(names)], records_of(d))
        extra = []
        if http:
            # One run of each job on record, so the status page draws a
            # timeline per job (and the metrics seed from a history).
            seed_runs(self.jobrun, d / "state", names)
            port = free_port()
            extra = ["--http", f"127.0.0.1:{port}"]
        daemon = self.start_jobrun(name, d, ["--config", str(cfg), *extra])
        if http:
            wait_until("the listener", 30, lambda: http_get(port, "/healthz") is not None)
        time.sleep(self.args.settle)
        idle = measure_idle(daemon.pid, seconds)
        hwm = status_kb(daemon.pid, "VmHWM")
        rss = status_kb(daemon.pid, "VmRSS")
        out = idle_json(idle, hwm, rss)
        if http:
            out["scrape"] = scrape_costs(daemon.pid, port, "/metrics", self.args.scrapes)
            out["page"] = scrape_costs(daemon.pid, port, "/", max(3, self.args.scrapes // 10))
            out["rss_after_scrapes_kib"] = status_kb(daemon.pid, "VmRSS")
        daemon.stop()
        return out

    def output_flood(self, flood_bytes: int, line_bytes: int) -> dict:
        """A job writing `flood_bytes` in 4 KiB lines beside one writing one
        `line_bytes` line: the daemon's peak RSS while it reads them, and the
        byte counts the history records (they must be exact)."""
        d = self.scratch("output")
        cfg = d / "jobs.yaml"
        # A tick a few seconds after start; the daemon reads both outputs at once.
        tick = dt.datetime.now(UTC) + dt.timedelta(seconds=4)
        sched = f"{tick.second} {tick.minute} {tick.hour} * * *"
        cfg.write_text(
            "jobs:\n"
            f"  - name: flood\n    schedule: \"{sched}\"\n"
            f"    command: yes \"$(head -c 4095 /dev/zero | tr '\\0' a)\" | head -c {flood_bytes}\n"
            f"  - name: longline\n    schedule: \"{sched}\"\n"
            f"    command: head -c {line_bytes} /dev/zero | tr '\\0' b\n")
        daemon = self.start_jobrun("output", d, ["--config", str(cfg)])
        base_kib = status_kb(daemon.pid, "VmHWM")
        db = d / "state" / "jobrun.db"

        def finished():
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
                    rows = c.execute("SELECT job, status, output_bytes FROM runs "
                                     "WHERE status != 'running'").fetchall()
            except sqlite3.Error:
                return None
            return rows if len(rows) >= 2 else None

        started = time.monotonic()
        rows = wait_until("the output jobs to finish", 600, finished, interval=0.5)
        seconds = time.monotonic() - started
        peak_kib = status_kb(daemon.pid, "VmHWM")
        daemon.stop()
        counted = {job: (status, n) for job, status, n in rows}
        want = {"flood": ("succeeded", flood_bytes), "longline": ("succeeded", line_bytes)}
        if counted != want:
            raise SystemExit(f"e2e: output jobs recorded {counted}, expected {want}")
        return {"flood_bytes": flood_bytes, "line_bytes": line_bytes, "seconds": seconds,
                "rss_before_kib": base_kib, "rss_peak_kib": peak_kib}

    def cli_times(self) -> dict:
        """`list` with 10,000 jobs and `history --limit 50` on 1,000,000 runs."""
        n_jobs, n_runs = self.args.cli_jobs, self.args.cli_runs
        d = self.scratch("cli")
        tab = d / "crontab"
        crontab(tab, [(job_name("c", i), ["*/5 * * * *", "0 9 * * 1-5", "@hourly", "30 2 * * *"][i % 4])
                      for i in range(n_jobs)], records_of(d))
        state = history_db(self.jobrun, n_runs, self.args.cache)
        empty = d / "empty-state"
        times = {}
        times["list_empty_history_ms"] = wall(
            [str(self.jobrun), "list", "--crontab", str(tab), "--state-dir", str(empty)], self.args.cli_repeat)
        times["list_1m_history_ms"] = wall(
            [str(self.jobrun), "list", "--crontab", str(tab), "--state-dir", str(state)], self.args.cli_repeat)
        times["history_limit_50_ms"] = wall(
            [str(self.jobrun), "history", "--limit", "50", "--state-dir", str(state)], self.args.cli_repeat)
        times["history_job_limit_50_ms"] = wall(
            [str(self.jobrun), "history", "job-0500", "--limit", "50", "--state-dir", str(state)],
            self.args.cli_repeat)
        times["jobs"], times["runs"] = n_jobs, n_runs
        return times


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str) -> bytes | None:
    """The body of GET `path` on the daemon's listener, or None."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
            return r.read()
    except urllib.error.HTTPError as e:  # /healthz answers 503 when unhealthy
        return e.read()
    except OSError:
        return None


def seed_runs(jobrun: Path, state: Path, names: list[str]) -> None:
    """One succeeded run of each job in a new state directory, written
    directly (as `history_db` does): jobrun's schema from one manual run."""
    seed = state.parent / "seed.yaml"
    seed.write_text('jobs:\n  - name: seed\n    command: "true"\n')
    subprocess.run([str(jobrun), "run", "seed", "--config", str(seed), "--state-dir", str(state)],
                   check=True, stdout=subprocess.DEVNULL)
    now = dt.datetime.now(UTC) - dt.timedelta(minutes=5)
    at = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    conn = sqlite3.connect(state / "jobrun.db")
    with conn:
        conn.executemany(
            "INSERT INTO runs (job, trigger, tick, claimed_at, started_at, finished_at, duration_ms, status, "
            "exit_code, pid, host, owner, output_bytes, output_tail) "
            "VALUES (?, 'schedule', ?, ?, ?, ?, 120, 'succeeded', 0, 1, 'bench-host', 'bench-host:1:x', 0, x'')",
            [(n, at, at, at, at) for n in names])
    conn.close()


def scrape_costs(pid: int, port: int, path: str, count: int) -> dict:
    """`count` sequential GETs of `path`: the scraper's wall time per request
    (median, max) and the daemon's CPU per request."""
    http_get(port, path)  # warm-up
    walls = []
    cpu0, ss0 = cpu_seconds(pid), schedstat_ns(pid)
    size = 0
    for _ in range(count):
        t = time.perf_counter()
        body = http_get(port, path)
        walls.append((time.perf_counter() - t) * 1000)
        size = len(body or b"")
    cpu_ms = max((cpu_seconds(pid) - cpu0) * 1000, (schedstat_ns(pid) - ss0) / 1e6)
    return {"requests": count, "wall_ms_p50": round(statistics.median(walls), 2),
            "wall_ms_max": round(max(walls), 2), "daemon_cpu_ms": round(cpu_ms / count, 2),
            "bytes": size}


def idle_json(idle: Idle, hwm, rss) -> dict:
    return {
        "seconds": round(idle.seconds, 1),
        "cpu_ms": round(idle.cpu_ms, 1),
        "cpu_ms_schedstat": round(idle.cpu_ms_schedstat, 2),
        "core_percent": round(idle.core_percent, 4),
        "wakeups": idle.wakeups,
        "wakeups_per_min": round(idle.wakeups_per_min, 2),
        "preemptions": idle.preemptions,
        "wakeups_by_thread": idle.wakeups_by_thread,
        "threads": [idle.threads_before, idle.threads_after],
        "rss_peak_kib": hwm,
        "rss_kib": rss,
    }


def wall(argv: list[str], repeat: int) -> dict:
    """Wall times of `repeat` runs (after one warm-up run), in ms."""
    env = dict(os.environ, LC_ALL="C", TZ="UTC", NO_COLOR="1")
    times = []
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        elapsed = (time.perf_counter() - t0) * 1000
        if r.returncode != 0:
            raise SystemExit(f"e2e: {' '.join(argv)} failed: {r.stderr.decode(errors='replace')}")
        if i:
            times.append(elapsed)
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def history_db(jobrun: Path, runs: int, cache: Path) -> Path:
    """A state directory whose history holds `runs` runs of 1,000 jobs, built
    once (jobrun creates the schema; one transaction fills it) and cached."""
    state = cache / f"e2e-history-{runs}"
    if (state / "complete").exists():
        return state
    if state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True)
    log(f"building a history of {runs} runs in {state} (once)")
    # One manual run creates the database with jobrun's own schema.
    seed = state.parent / f"e2e-history-{runs}.yaml"
    seed.write_text('jobs:\n  - name: seed\n    command: "true"\n')
    subprocess.run([str(jobrun), "run", "seed", "--config", str(seed), "--state-dir", str(state)],
                   check=True, stdout=subprocess.DEVNULL)
    conn = sqlite3.connect(state / "jobrun.db")
    conn.execute("PRAGMA synchronous=OFF")
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)

    def fmt(t: dt.datetime) -> str:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"

    def rows():
        for i in range(runs):
            tick = base + dt.timedelta(minutes=i // 1000)
            dur = 5 + i % 300
            failed = i % 97 == 0
            yield (f"job-{i % 1000:04d}", fmt(tick), fmt(tick), fmt(tick), fmt(tick + dt.timedelta(milliseconds=dur)),
                   dur, "failed" if failed else "succeeded", 1 if failed else 0, 10_000 + i % 30_000,
                   "bench-host", "bench-host:1:x", 15, b"done: 120 rows\n")

    with conn:
        conn.executemany(
            "INSERT INTO runs (job, trigger, tick, claimed_at, started_at, finished_at, duration_ms, status, "
            "exit_code, pid, host, owner, output_bytes, output_tail) "
            "VALUES (?, 'schedule', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())
    conn.close()
    (state / "complete").write_text("")
    return state


# ------------------------------------------------------- cron and yacron side


def minute_jobs(groups: list[int]) -> list[tuple[str, str]]:
    """Groups of jobs, group k firing at minutes where minute % len == k, so
    each minute tick has exactly one group due."""
    jobs = []
    period = len(groups)
    for k, n in enumerate(groups):
        minutes = ",".join(str(m) for m in range(k, 60, period))
        jobs += [(job_name(f"g{n}", i), f"{minutes} * * * *") for i in range(n)]
    return jobs


def cron_argv(d: Path) -> list[str]:
    """Debian cron in the foreground in a private mount namespace: its
    crontab, cron.d and spool are the benchmark's, the host's stay hidden."""
    etc_cron_d = d / "cron.d"
    etc_cron_d.mkdir(exist_ok=True)
    (d / "etc-crontab").write_text("")
    (d / "etc-crontab").chmod(0o644)
    spool = d / "spool"
    spool.mkdir(exist_ok=True)
    shutil.copy(d / "crontab", spool / "root")
    (spool / "root").chmod(0o600)
    script = (
        f"mount --bind {etc_cron_d} /etc/cron.d && "
        f"mount --bind {d / 'etc-crontab'} /etc/crontab && "
        f"mount --bind {spool} /var/spool/cron/crontabs && "
        f"mkdir -p {d / 'run'} && mount --bind {d / 'run'} /run && "
        "exec cron -f -L 0"
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def comparison(bench: Bench, daemons: list[str], groups: list[int], rounds: int, idle_s: float) -> dict:
    """Every daemon in turn on the same minute-tick jobs; then idle."""
    results = {}
    for name in daemons:
        d = bench.scratch(f"cmp-{name}")
        out = records_of(d)
        jobs = minute_jobs(groups)
        crontab(d / "crontab", jobs, out)
        if name == "jobrun":
            daemon = bench.start_jobrun("cmp-jobrun", d, ["--crontab", str(d / "crontab")])
        elif name == "cron":
            daemon = Daemon("cmp-cron", cron_argv(d), d)
        else:
            yacron_yaml(d / "yacron.yaml", jobs, out)
            daemon = Daemon("cmp-yacron", [shutil.which("yacron") or "yacron", "-c", str(d / "yacron.yaml")], d)
        time.sleep(3)
        if not daemon.alive():
            raise SystemExit(f"e2e: {name} did not start: {daemon.stderr()[-2000:]}")
        loaded = status_kb(daemon.pid, "VmHWM")
        start = time.time()
        first_full = (int(start // 60) + 1) * 60  # the first whole minute we see fully
        minutes = rounds * len(groups)
        log(f"{name}: {minutes} minute ticks ({len(jobs)} jobs), ends about "
            f"{dt.datetime.fromtimestamp(first_full + minutes * 60, UTC):%H:%M:%S} UTC")
        end = first_full + minutes * 60 + 15  # the last group's runs finish well within 15 s
        while time.time() < end:
            if not daemon.alive():
                raise SystemExit(f"e2e: {name} died: {daemon.stderr()[-2000:]}")
            time.sleep(1)
        peak = status_kb(daemon.pid, "VmHWM")
        records = read_records(out)
        per_group = {}
        for n in groups:
            mine = [r for r in records if r[2].startswith(f"g{n}-")]
            lat = latency_from([(r, "", j) for r, _, j in mine], n, first_full, None)
            per_group[str(n)] = lat.summary()
        # Idle: only minute ticks are due... so measure idle on a fresh config.
        daemon.stop()
        idle = compare_idle(bench, name, idle_s)
        results[name] = {"latency": per_group, "rss_loaded_kib": loaded, "rss_peak_kib": peak,
                         "runs": len(records), "idle": idle}
    return results


def compare_idle(bench: Bench, name: str, seconds: float) -> dict:
    d = bench.scratch(f"idle-{name}")
    hour = (dt.datetime.now(UTC).hour + 2) % 24
    jobs = [(job_name("idle", i), f"{i % 60} {hour} * * *") for i in range(1000)]
    crontab(d / "crontab", jobs, records_of(d))
    if name == "jobrun":
        daemon = bench.start_jobrun("idle-jobrun", d, ["--crontab", str(d / "crontab")])
    elif name == "cron":
        daemon = Daemon("idle-cron", cron_argv(d), d)
    else:
        yacron_yaml(d / "yacron.yaml", jobs, records_of(d))
        daemon = Daemon("idle-yacron", [shutil.which("yacron") or "yacron", "-c", str(d / "yacron.yaml")], d)
    time.sleep(max(3, bench.args.settle))
    idle = measure_idle(daemon.pid, seconds)
    hwm, rss = status_kb(daemon.pid, "VmHWM"), status_kb(daemon.pid, "VmRSS")
    daemon.stop()
    return idle_json(idle, hwm, rss)


# --------------------------------------------------------------------- report


def fmt(v, unit="", digits=1) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def med(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and v != v)]
    return statistics.median(values) if values else None


def merged(reps: list[dict], path: list[str]):
    vals = []
    for r in reps:
        v = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        vals.append(v)
    return med(vals)


def baseline_report(result: dict) -> list[str]:
    """Old beside new, the medians of each, for the measures both took."""
    old, new = result["baseline_repeats"], result["repeats"]
    rows = []
    for n in result["job_counts"]:
        key = f"latency_{n}"
        if key in old[0] and key in new[0]:
            for stat in ("p50_ms", "p99_ms"):
                rows.append((f"fire latency, {n} job(s), {stat[:3]} (ms)", [key, stat], 2))
            if "daemon_cpu_per_tick_ms" in old[0][key]:
                rows.append((f"daemon CPU per tick, {n} job(s) (ms)", [key, "daemon_cpu_per_tick_ms"], 1))
    big = f"latency_{max(result['job_counts'])}"
    if big in old[0] and big in new[0]:
        rows.append(("peak RSS after the runs (KiB)", [big, "rss_peak_kib"], 0))
    if "idle" in old[0] and "idle" in new[0]:
        rows += [("idle: wake-ups per minute", ["idle", "wakeups_per_min"], 2),
                 ("idle: % of one core", ["idle", "core_percent"], 4),
                 (f"peak RSS, {result['idle_jobs']} jobs loaded (KiB)", ["idle", "rss_peak_kib"], 0)]
    lines = ["", f"old beside new, same run (old: {result['baseline']})",
             f"{'measure':44} {'old':>9} {'new':>9} {'new/old':>8}"]
    for label, path, digits in rows:
        o, n = merged(old, path), merged(new, path)
        ratio = f"{n / o:.2f}" if isinstance(o, (int, float)) and isinstance(n, (int, float)) and o else "-"
        lines.append(f"{label:44} {fmt(o, '', digits):>9} {fmt(n, '', digits):>9} {ratio:>8}")
    return lines


def report(result: dict) -> str:
    reps = result["repeats"]
    lines = [f"jobrun e2e benchmark: {result['machine']}",
             f"medians of {len(reps)} run(s); job: {result.get('job', 'bash')}", ""]
    lines.append("jobrun, seconds-field ticks")
    lines.append(f"{'measure':44} {'p50':>9} {'p99':>9} {'max':>9}")
    for prefix, label in (("latency", "fire latency"), ("floor", "spawn floor")):
        for n in result["job_counts"]:
            key = f"{prefix}_{n}"
            if key not in reps[0]:
                continue
            lines.append(
                f"{label + ', ' + str(n) + ' job(s) on one tick (ms)':44} "
                f"{fmt(merged(reps, [key, 'p50_ms']), '', 2):>9} {fmt(merged(reps, [key, 'p99_ms']), '', 2):>9} "
                f"{fmt(merged(reps, [key, 'max_ms']), '', 2):>9}"
            )
    lines.append("")
    for n in result["job_counts"]:
        key = f"latency_{n}"
        if key in reps[0] and "daemon_cpu_per_tick_ms" in reps[0][key]:
            lines.append(
                f"{'daemon CPU per tick, ' + str(n) + ' job(s) (ms)':44} "
                f"{fmt(merged(reps, [key, 'daemon_cpu_per_tick_ms']), '', 1):>9}"
            )
    big = f"latency_{max(result['job_counts'])}"
    if big in reps[0]:
        lines += [
            f"{'burst ' + str(max(result['job_counts'])) + ' jobs: tick -> last start (ms)':44} "
            f"{fmt(merged(reps, [big, 'last_start_ms'])):>9}",
            f"{'burst: tick -> last record (ms)':44} {fmt(merged(reps, [big, 'last_record_ms'])):>9}",
            f"{'peak RSS after ' + str(merged(reps, [big, 'runs'])) + ' runs (KiB)':44} "
            f"{fmt(merged(reps, [big, 'rss_peak_kib'])):>9}",
        ]
    if "idle" in reps[0]:
        lines += [
            f"{'idle: wake-ups per minute':44} {fmt(merged(reps, ['idle', 'wakeups_per_min']), '', 2):>9}",
            f"{'idle: preemptions in the window':44} {fmt(merged(reps, ['idle', 'preemptions'])):>9}",
            f"{'idle: % of one core':44} {fmt(merged(reps, ['idle', 'core_percent']), '', 4):>9}",
            f"{'peak RSS, ' + str(result['idle_jobs']) + ' jobs loaded (KiB)':44} "
            f"{fmt(merged(reps, ['idle', 'rss_peak_kib'])):>9}",
        ]
    if "http" in reps[0]:
        lines += ["", f"{'daemon --http, ' + str(result['idle_jobs']) + ' idle jobs':40} {'without':>8} {'with':>8}"]
        for label, path, digits in (
            ("idle: wake-ups per minute", ["wakeups_per_min"], 2),
            ("idle: % of one core", ["core_percent"], 4),
            ("RSS after the idle window (KiB)", ["rss_kib"], 0),
            ("peak RSS (KiB)", ["rss_peak_kib"], 0),
        ):
            lines.append(f"{label:40} {fmt(merged(reps, ['idle', *path]) if 'idle' in reps[0] else merged(reps, ['http_off', *path]), '', digits):>8} "
                         f"{fmt(merged(reps, ['http', *path]), '', digits):>8}")
        for what in ("scrape", "page"):
            lines.append(
                f"{'GET ' + ('/metrics' if what == 'scrape' else '/') + ': wall p50 / max, daemon CPU (ms)':40} "
                f"{fmt(merged(reps, ['http', what, 'wall_ms_p50']), '', 2):>8} "
                f"{fmt(merged(reps, ['http', what, 'wall_ms_max']), '', 2):>8} "
                f"{fmt(merged(reps, ['http', what, 'daemon_cpu_ms']), '', 2):>8}  "
                f"({reps[0]['http'][what]['bytes']} bytes)")
    if "output" in reps[0]:
        o = reps[0]["output"]
        lines += [
            f"{'output ' + str(o['flood_bytes'] >> 20) + '+' + str(o['line_bytes'] >> 20) + ' MiB line: peak RSS (KiB)':44} "
            f"{fmt(merged(reps, ['output', 'rss_peak_kib'])):>9}",
            f"{'output: RSS before the jobs ran (KiB)':44} {fmt(merged(reps, ['output', 'rss_before_kib'])):>9}",
            f"{'output: start -> both recorded (s)':44} {fmt(merged(reps, ['output', 'seconds'])):>9}",
        ]
    if "cli" in reps[0]:
        c = "cli"
        lines += [
            f"{'list, ' + str(reps[0][c]['jobs']) + ' jobs, no history (ms)':44} "
            f"{fmt(merged(reps, [c, 'list_empty_history_ms', 'median'])):>9}",
            f"{'list, same jobs, ' + str(reps[0][c]['runs']) + '-run history (ms)':44} "
            f"{fmt(merged(reps, [c, 'list_1m_history_ms', 'median'])):>9}",
            f"{'history --limit 50 (ms)':44} {fmt(merged(reps, [c, 'history_limit_50_ms', 'median'])):>9}",
            f"{'history NAME --limit 50 (ms)':44} {fmt(merged(reps, [c, 'history_job_limit_50_ms', 'median'])):>9}",
        ]
    if result.get("baseline_repeats"):
        lines += baseline_report(result)
    if result.get("comparison"):
        cmp = result["comparison"]
        names = list(cmp[0].keys())
        lines += ["", "side by side, minute ticks (same crontab for every daemon)"]
        lines.append(f"{'measure':44} " + " ".join(f"{n:>10}" for n in names))
        for g in result["groups"]:
            for stat in ("p50_ms", "p99_ms", "max_ms"):
                vals = [merged(cmp, [n, "latency", str(g), stat]) for n in names]
                lines.append(f"{f'fire latency {g} job(s), {stat[:-3]} (ms)':44} " +
                             " ".join(f"{fmt(v, '', 1):>10}" for v in vals))
        g = max(result["groups"])
        rows = [
            (f"burst {g}: tick -> last start (ms)", ["latency", str(g), "last_start_ms"], 1),
            ("idle: wake-ups per minute", ["idle", "wakeups_per_min"], 2),
            ("idle: preemptions in the window", ["idle", "preemptions"], 0),
            ("idle: % of one core", ["idle", "core_percent"], 4),
            ("peak RSS, 1,000 jobs loaded (KiB)", ["idle", "rss_peak_kib"], 0),
            (f"peak RSS after the rounds (KiB)", ["rss_peak_kib"], 0),
        ]
        for label, path, digits in rows:
            vals = [merged(cmp, [n, *path]) for n in names]
            lines.append(f"{label:44} " + " ".join(f"{fmt(v, '', digits):>10}" for v in vals))
    return "\n".join(lines)


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {os.uname().sysname} {os.uname().release}"


# ----------------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: jobrun only, few jobs and ticks, short idle window (CI)")
    p.add_argument("--repeat", type=int, default=3, help="whole runs; the table shows medians (default 3)")
    p.add_argument("--compare", choices=["auto", "yes", "no"], default="auto",
                   help="also run cron and yacron on minute ticks: when installed (auto), always, never")
    p.add_argument("--compare-repeat", type=int, default=1,
                   help="comparison runs (each about 10 minutes per daemon); default 1")
    p.add_argument("--compare-rounds", type=int, default=3,
                   help="minute ticks per job group (1, 100, 1,000 jobs) and daemon; default 3")
    p.add_argument("--ticks-1000", type=int, default=10,
                   help="measured ticks of the 1,000-job round (10 = 10,000 runs for the RSS measure)")
    p.add_argument("--cli-repeat", type=int, default=10, help="timed runs of each list/history command")
    p.add_argument("--idle-seconds", type=float, default=60.0)
    p.add_argument("--settle", type=float, default=3.0, help="seconds after start before idle sampling")
    p.add_argument("--skip-build", action="store_true", help="use the jobrun the last build made")
    p.add_argument("--jobrun", type=Path, help="the jobrun binary to measure (implies --skip-build)")
    p.add_argument("--baseline", type=Path,
                   help="an older jobrun binary measured beside this one in the same run, each round "
                        "of each repeat run by both in turn (old first); the report adds old vs new")
    p.add_argument("--job", choices=["stamp", "bash"], default="stamp",
                   help="the job: benches/stamp.c built static (default), or a bash one-liner")
    p.add_argument("--floor-threads", type=int, default=2,
                   help="threads of the spawn floor (benches/spawn_floor.c); default 2, one per core here")
    p.add_argument("--only", default="latency,idle,http,cli,output",
                   help="which of latency,idle,http,cli,output to measure (default all)")
    p.add_argument("--scrapes", type=int, default=100, help="timed GETs of /metrics in the http round")
    p.add_argument("--json", type=Path, help="also write every number here")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = p.parse_args()

    if args.quick:
        args.repeat = 1
        args.compare = "no"
        args.idle_seconds = min(args.idle_seconds, 3.0)
        args.settle = 1.0
        args.scrapes = 5
        job_counts, every, ticks = [1, 20], {1: 1, 20: 1}, {1: 3, 20: 2}
        args.cli_jobs, args.cli_runs, args.cli_repeat = 200, 2_000, 1
        idle_jobs = 50
        flood = (64 << 20, 16 << 20)
    else:
        flood = (1 << 30, 100 << 20)
        job_counts, every, ticks = [1, 100, 1000], {1: 1, 100: 2, 1000: 10}, {1: 30, 100: 10, 1000: args.ticks_1000}
        args.cli_jobs, args.cli_runs = 10_000, 1_000_000
        idle_jobs = 1000

    jobrun = args.jobrun
    if jobrun is None:
        argv, env, jobrun = release_build()
        if not args.skip_build:
            log(" ".join(f"{k}={v!r}" for k, v in env.items()) + " " + " ".join(argv))
            subprocess.run(argv, cwd=REPO, check=True, env={**os.environ, **env})
    jobrun = jobrun.resolve()
    args.cache = REPO / "target" / "bench-data"
    args.cache.mkdir(parents=True, exist_ok=True)

    daemons = ["jobrun"]
    if args.compare != "no":
        have_cron = shutil.which("cron") and shutil.which("unshare") and os.geteuid() == 0
        have_yacron = shutil.which("yacron")
        if args.compare == "yes" and not (have_cron and have_yacron):
            raise SystemExit("e2e: --compare=yes needs cron (as root, with unshare) and yacron installed")
        daemons += [n for n, ok in (("cron", have_cron), ("yacron", have_yacron)) if ok]

    only = set(args.only.split(","))
    if only - {"latency", "idle", "http", "cli", "output"}:
        raise SystemExit(f"e2e: --only takes latency, idle, http, cli and output, not {args.only!r}")
    work = Path(tempfile.mkdtemp(prefix="jobrun-e2e-"))
    floor = None
    global JOB
    if args.job == "stamp" and not shutil.which("cc"):
        log("no C compiler (cc): measuring with --job bash, without the spawn floor")
        args.job = "bash"
    if args.job == "stamp":
        JOB = Job("stamp", build_c("stamp.c", work / "stamp", FREESTANDING))
        floor = build_c("spawn_floor.c", work / "spawn_floor")
    else:
        JOB = Job("bash", None)
    result = {"machine": machine(), "jobrun": str(jobrun), "job": args.job, "job_counts": job_counts,
              "idle_jobs": idle_jobs, "repeats": []}
    try:
        bench = Bench(args, jobrun, work, floor)
        old_bench = None
        if args.baseline:
            old_bench = Bench(args, args.baseline.resolve(), work, floor)
            result["baseline"] = str(args.baseline.resolve())
            result["baseline_repeats"] = []
        for rep in range(args.repeat):
            if old_bench:
                old = {}
                for n in job_counts if "latency" in only else []:
                    log(f"run {rep + 1}/{args.repeat}: baseline fire latency, {n} job(s), {ticks[n]} ticks")
                    old[f"latency_{n}"] = old_bench.jobrun_rounds(n, every[n], ticks[n])
                if "idle" in only:
                    log(f"run {rep + 1}/{args.repeat}: baseline idle, {idle_jobs} jobs")
                    old["idle"] = old_bench.jobrun_idle(idle_jobs, args.idle_seconds)
                result["baseline_repeats"].append(old)
            one = {}
            for n in job_counts if "latency" in only else []:
                log(f"run {rep + 1}/{args.repeat}: fire latency, {n} job(s), {ticks[n]} ticks")
                one[f"latency_{n}"] = bench.jobrun_rounds(n, every[n], ticks[n])
                if floor:
                    log(f"run {rep + 1}/{args.repeat}: spawn floor, {n} job(s), {ticks[n]} ticks")
                    one[f"floor_{n}"] = bench.floor_rounds(n, every[n], ticks[n])
            if "idle" in only:
                log(f"run {rep + 1}/{args.repeat}: idle, {idle_jobs} jobs, {args.idle_seconds:.0f} s")
                one["idle"] = bench.jobrun_idle(idle_jobs, args.idle_seconds)
            if "http" in only:
                if "idle" not in only:
                    log(f"run {rep + 1}/{args.repeat}: idle without --http, {idle_jobs} jobs, {args.idle_seconds:.0f} s")
                    one["http_off"] = bench.jobrun_idle(idle_jobs, args.idle_seconds)
                log(f"run {rep + 1}/{args.repeat}: idle with --http, {idle_jobs} jobs, {args.idle_seconds:.0f} s, then scrapes")
                one["http"] = bench.jobrun_idle(idle_jobs, args.idle_seconds, http=True)
            if "cli" in only:
                log(f"run {rep + 1}/{args.repeat}: list and history")
                one["cli"] = bench.cli_times()
            if "output" in only:
                log(f"run {rep + 1}/{args.repeat}: output of {flood[0] >> 20} MiB and a {flood[1] >> 20} MiB line")
                one["output"] = bench.output_flood(*flood)
            result["repeats"].append(one)
        if len(daemons) > 1:
            groups = [1, 100, 1000]
            result["groups"] = groups
            result["comparison"] = []
            result["compare_rounds"] = args.compare_rounds
            for rep in range(args.compare_repeat):
                log(f"comparison {rep + 1}/{args.compare_repeat}: {', '.join(daemons)}")
                result["comparison"].append(
                    comparison(bench, daemons, groups, args.compare_rounds, args.idle_seconds))
    finally:
        if args.keep:
            log(f"scratch kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
