#!/usr/bin/env python3
"""How jobrun's costs grow with the number of jobs (issue 12, item 12).
Python 3.11 standard library only.

Owns: generating one job source of N jobs (a YAML file or a user crontab,
every job with its own schedule or all sharing one), running the release
binary on it from the outside and printing a table (and JSON). It never
judges a time: it reports, and exits non-zero only when a command failed or
a daemon did not come up.

Measures, for 1,000, 10,000 and 100,000 jobs x {YAML, crontab} x {distinct
expressions, one shared expression}:
  check     `jobrun --config F check` (or `--crontab F`): wall time
  list      `jobrun ... list` with an empty state directory: wall time
  start     `jobrun ... daemon`: wall time from exec until the daemon has
            recorded itself in the state (its `daemons` row, written just
            before its first heartbeat, when the scheduling loop begins)
  rss       the daemon's VmRSS once started, and its peak (VmHWM)

No job fires while measured: the distinct expressions name months away from
today's, the shared one is `0 0 1 1 *` (and 1 January is skipped by the
same rule). Each YAML job is a shell command (`/bin/true N`), as each
crontab line is, so YAML and crontab carry the same jobs.

Usage:
  benches/scale.py --quick                  # CI smoke: 200 and 2,000 jobs, ~10 s
  benches/scale.py                          # the table in BENCHMARKS.md ("Scaling")
  benches/scale.py --skip-build --old /tmp/old/target/.../jobrun --json out.json
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
from pathlib import Path

# The production build (the README's), /proc and machine helpers are
# e2e.py's: this script runs from benches/, so it imports them.
from e2e import machine, release_build, status_kb

REPO = Path(__file__).resolve().parent.parent

SHARED = "0 0 1 1 *"


def log(msg: str) -> None:
    print(f"[scale] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------- sources


def quiet_months() -> list[int]:
    """Months in which no generated job may fire during the run: neither
    this month nor the next, nor January (the shared expression's)."""
    now = dt.datetime.now(dt.timezone.utc).month
    return [m for m in range(2, 13) if m not in (now, now % 12 + 1)]


def expressions(n: int, shared: bool) -> list[str]:
    """`n` cron expressions, all different (minute, hour, day of the month
    and a quiet month), or one expression `n` times."""
    if shared:
        return [SHARED] * n
    months = quiet_months()
    per_month = 60 * 24 * 28
    return [
        f"{i % 60} {i // 60 % 24} {i // 1440 % 28 + 1} {months[i // per_month % len(months)]} *"
        for i in range(n)
    ]


def write_yaml(path: Path, exprs: list[str]) -> None:
    """A bare list of jobs, block style (one job: three lines). Kept short:
    a source file may hold at most 8 MiB."""
    lines = []
    for i, expr in enumerate(exprs):
        lines += [f"- name: j{i}", f'  schedule: "{expr}"', f"  command: /bin/true {i}"]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def write_crontab(path: Path, exprs: list[str]) -> None:
    """A user-format crontab with the same jobs."""
    lines = ["SHELL=/bin/sh", "CRON_TZ=UTC"]
    lines += [f"{expr} /bin/true {i}" for i, expr in enumerate(exprs)]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def source(cache: Path, kind: str, n: int, shared: bool) -> list[str]:
    """The source option for `kind` (yaml, crontab) with `n` jobs, written once."""
    name = f"{kind}-{n}-{'shared' if shared else 'distinct'}"
    if kind == "yaml":
        path = cache / f"{name}.yaml"
        if not path.exists():
            write_yaml(path, expressions(n, shared))
        return ["--config", str(path)]
    path = cache / f"{name}.crontab"
    if not path.exists():
        write_crontab(path, expressions(n, shared))
    return ["--crontab", str(path)]


# ------------------------------------------------------------------- probes


def env() -> dict:
    return dict(os.environ, LC_ALL="C", TZ="UTC", RUST_LOG="warn")


def timed(argv: list[str], timeout: float) -> float:
    """Wall seconds of one command; its output is discarded, a failure stops
    the benchmark."""
    start = time.monotonic()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env(),
                          timeout=timeout)
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"scale: {' '.join(argv)} exited {done.returncode}:\n"
                         f"{done.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


def registered(db: Path) -> bool:
    """Whether a daemon has recorded itself in the state at `db`."""
    if not db.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.05)
        try:
            return conn.execute("SELECT count(*) FROM daemons").fetchone()[0] > 0
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def daemon_start(jobrun: Path, src: list[str], work: Path, timeout: float) -> tuple[float, int, int]:
    """Seconds until the daemon is up, and its RSS and peak RSS then (KiB)."""
    state, marker = work / "state", work / "run"
    for d in (state, marker):
        shutil.rmtree(d, ignore_errors=True)
    db = state / "jobrun.db"
    argv = [str(jobrun), *src, "--state-dir", str(state), "daemon", "--reboot-marker-dir", str(marker)]
    with open(work / "daemon.stderr", "wb") as err:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env(),
                                start_new_session=True)
    try:
        while not registered(db):
            if proc.poll() is not None:
                raise SystemExit(f"scale: the daemon exited {proc.returncode}:\n"
                                 f"{(work / 'daemon.stderr').read_text(errors='replace')[-2000:]}")
            if time.monotonic() - start > timeout:
                raise SystemExit(f"scale: the daemon was not up after {timeout:.0f} s")
            time.sleep(0.005)
        up = time.monotonic() - start
        rss, hwm = status_kb(proc.pid, "VmRSS") or 0, status_kb(proc.pid, "VmHWM") or 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return up, rss, hwm


def measure(jobrun: Path, src: list[str], work: Path, repeat: int, timeout: float) -> dict:
    """Medians over `repeat` runs of each measure."""
    empty = work / "empty-state"
    runs = {"check": [], "list": [], "start": [], "rss": [], "hwm": []}
    for _ in range(repeat):
        runs["check"].append(timed([str(jobrun), *src, "check"], timeout))
        shutil.rmtree(empty, ignore_errors=True)
        runs["list"].append(timed([str(jobrun), *src, "--state-dir", str(empty), "list"], timeout))
        up, rss, hwm = daemon_start(jobrun, src, work, timeout)
        runs["start"].append(up)
        runs["rss"].append(rss)
        runs["hwm"].append(hwm)
    return {k: statistics.median(v) for k, v in runs.items()}


# ------------------------------------------------------------------- report


def secs(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def mib(kb: float) -> str:
    return f"{kb / 1024:.1f}"


def report(result: dict) -> str:
    """A markdown table: one row per case, `old → new` when an old binary ran."""
    names = list(result["binaries"])
    out = [f"machine: {result['machine']}", ""]
    for name in names:
        out.append(f"{name}: {result['binaries'][name]}")
    out.append("")
    head = "| jobs | source | expressions | check | list | daemon start | RSS after start / peak (MiB) |"
    out += [head, "|---|---|---|---|---|---|---|"]
    for case in result["cases"]:
        cells = {k: [] for k in ("check", "list", "start", "rss")}
        for name in names:
            m = case["by"].get(name)
            if m is None:
                for v in cells.values():
                    v.append("-")
                continue
            cells["check"].append(secs(m["check"]))
            cells["list"].append(secs(m["list"]))
            cells["start"].append(secs(m["start"]))
            cells["rss"].append(f"{mib(m['rss'])} / {mib(m['hwm'])}")
        out.append(f"| {case['jobs']:,} | {case['kind']} | {case['exprs']} | "
                   + " | ".join(" → ".join(v) for v in cells.values()) + " |")
    return "\n".join(out)


# ----------------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 200 and 2,000 jobs, once each (CI)")
    p.add_argument("--jobs", default="1000,10000,100000", help="job counts (default 1000,10000,100000)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each measure; the table shows medians")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds any one command may take")
    p.add_argument("--skip-build", action="store_true", help="use the jobrun the last build made")
    p.add_argument("--jobrun", type=Path, help="the jobrun binary to measure (implies --skip-build)")
    p.add_argument("--old", type=Path, help="an older jobrun measured beside it (the 'before' column)")
    p.add_argument("--old-max-jobs", type=int, default=None,
                   help="measure the old binary only up to this many jobs")
    p.add_argument("--json", type=Path, help="also write every number here")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = p.parse_args()
    if args.quick:
        args.jobs, args.repeat = "200,2000", 1
    counts = [int(n) for n in args.jobs.split(",")]

    jobrun = args.jobrun
    if jobrun is None:
        argv, extra, jobrun = release_build()
        if not args.skip_build:
            log(" ".join(f"{k}={v!r}" for k, v in extra.items()) + " " + " ".join(argv))
            subprocess.run(argv, cwd=REPO, check=True, env={**os.environ, **extra})
    binaries = {}
    if args.old:
        binaries["before"] = args.old.resolve()
    binaries["now"] = jobrun.resolve()

    work = Path(tempfile.mkdtemp(prefix="jobrun-scale-"))
    result = {"machine": machine(), "binaries": {k: str(v) for k, v in binaries.items()},
              "repeat": args.repeat, "cases": []}
    try:
        for n in counts:
            for kind in ("yaml", "crontab"):
                for shared in (False, True):
                    src = source(work, kind, n, shared)
                    case = {"jobs": n, "kind": "YAML" if kind == "yaml" else "crontab",
                            "exprs": "shared" if shared else "distinct", "by": {}}
                    for name, binary in binaries.items():
                        if name == "before" and args.old_max_jobs and n > args.old_max_jobs:
                            continue
                        log(f"{name}: {n} jobs, {case['kind']}, {case['exprs']} expressions")
                        case["by"][name] = measure(binary, src, work, args.repeat, args.timeout)
                    result["cases"].append(case)
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
