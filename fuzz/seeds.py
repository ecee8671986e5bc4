#!/usr/bin/env python3
"""Writes the checked-in seed corpus of the fuzz targets (fuzz/corpus/<target>/).

Seeds come from the repository itself, so they follow the code: the real-world
crontabs of tests/fixtures/corpus/, jobs.example.yaml, the YAML and crontab
texts of the tests, and the expressions of the schedule tests' tables, plus a
few hand-written values. Run from anywhere: `python3 fuzz/seeds.py`. It replaces
the corpus directories; the stable smoke test (tests/integration/fuzz_smoke.rs)
then runs every seed once.
"""

import hashlib
import re
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus"

# Indexes into chrono_tz::TZ_VARIANTS (chrono-tz 0.10.4): any index is valid
# (the target takes it modulo the list), these pick interesting zones.
ZONES = {
    "Europe/Berlin": 433,
    "America/New_York": 170,
    "Australia/Lord_Howe": 358,  # 30-minute DST
    "Asia/Kathmandu": 281,  # +05:45
    "Europe/Dublin": 441,  # negative DST in the zone data
    "Pacific/Apia": 529,  # skipped a whole day in 2011
    "Pacific/Chatham": 532,  # +12:45/+13:45
    "Antarctica/Troll": 233,  # a 2-hour DST
    "UTC": 592,
}

# (seconds since the epoch, range bits): the target maps the raw value into the
# range, so for range 0 (1970-2100) and 1 (years 0-9999) a value inside the range
# is kept as written.
STARTS = [
    (1_767_225_600, 0),  # 2026-01-01T00:00:00Z
    (1_774_745_999, 0),  # 2026-03-29T00:59:59Z, the minute before Berlin's gap
    (1_774_746_000 - 120, 0),
    (1_792_891_800, 0),  # 2026-10-25T00:30:00Z, Berlin's repeated hour
    (1_741_568_340, 0),  # 2025-03-10T00:59:00Z
    (1_325_160_000, 0),  # 2011-12-29T12:00:00Z, Apia's missing day
    (951_782_400, 0),  # 2000-02-29T00:00:00Z
    (4_102_444_000, 0),  # 2099-12-31T23:46:40Z
    (253_402_300_000, 1),  # 9999-12-31, past croner's horizon
    (95_617_584_000, 1),  # 5000-01-01
    (0, 2),  # the first instant chrono can represent
    (-1, 2),
    (2**62, 2),
]


def rust_strings(path):
    """The plain string literals of a Rust file, unescaped."""
    text = path.read_text()
    out = []
    for m in re.finditer(r'(?<![r#\w])"((?:[^"\\]|\\.)*)"', text, re.S):
        raw = m.group(1)

        def unescape(e):
            s = e.group(0)
            simple = {"\\n": "\n", "\\t": "\t", "\\r": "\r", '\\"': '"', "\\\\": "\\", "\\'": "'", "\\0": "\0"}
            if s in simple:
                return simple[s]
            if s.startswith("\\u{"):
                return chr(int(s[3:-1], 16))
            if s.startswith("\\x"):
                return chr(int(s[2:], 16))
            if s.startswith("\\\n"):
                return ""
            return s

        out.append(re.sub(r"\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|\\\n\s*|\\.", unescape, raw))
    return out


def write(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    if name is None:
        name = hashlib.sha1(data).hexdigest()
    (d / name).write_bytes(data)


def crontab_seeds():
    corpus = ROOT / "tests" / "fixtures" / "corpus"
    for f in sorted(corpus.rglob("*")):
        if f.is_file() and f.parent != corpus:
            name = str(f.relative_to(corpus)).replace("/", "__")
            write("crontab", name, f.read_bytes())
    seen = set()
    for s in rust_strings(ROOT / "src" / "source" / "crontab.rs") + rust_strings(
        ROOT / "src" / "source" / "system.rs"
    ):
        if "\n" in s and re.search(r"(^|\n)\s*(@\w+|[\d*][^\n]* )", s) and s not in seen and "{" not in s:
            seen.add(s)
            write("crontab", None, s)
    for s in [
        "CRON_TZ=America/New_York\n30 2 * * * root /bin/true\n",
        "TZ=Europe/Berlin\nCRON_TZ=Australia/Lord_Howe\n0,30 1-3 * * * true\n",
        "0 9 * jan-mar mon-fri root echo names # not a comment\n",
        "\ufeff# bom\n*/5 * * * * root date +\\%s % stdin%more\n",
        "@reboot root echo up\n@yearly root echo y\n@every 5m x\n",
        "0 0 30 2 * root never\n0 0 31 4,6 * root never\n0 0 29 2 1 root rare\n",
        "A = 'quoted value' \nB=\"x\"y\n C=\n=x\n* * * * * root env\n",
        "0 0 L * * root ext\n0 0 * * 5L root ext\n0 0 1W * * root ext\n",
        "1-59/2 */3 1,15 */2 0-6 nobody odd\n59 23 31 12 7 nobody last\n",
        "* * * * * * root six fields\n0 0 0 * * * * seven\n",
        "5 4 * * sun root weekly\r\n0 22 * * 1-5 root weekday",
        "\xff\xfe invalid\n# \xff comment\n* * * * * root x\n",
    ]:
        write("crontab", None, s.encode("latin-1") if "\xff" in s else s)


def supercronic_seeds():
    corpus = ROOT / "tests" / "fixtures" / "corpus"
    write("supercronic", "azuracast", (corpus / "github/AzuraCast__AzuraCast/util/docker/web/cron/azuracast@71ab777").read_bytes())
    seen = set()
    for path in [ROOT / "src" / "source" / "supercronic_tests.rs", ROOT / "tests" / "integration" / "supercronic.rs"]:
        for s in rust_strings(path):
            if "\n" in s and s not in seen:
                seen.add(s)
                write("supercronic", None, s.replace("{root}", "/tmp"))
    # Each expression of the schedule tests as an entry.
    exprs = [e for e in rust_strings(ROOT / "src" / "schedule" / "supercronic_tests.rs") if re.fullmatch(r"[\w*/?#,@ -]+", e) and len(e.split()) >= 1 and not re.fullmatch(r"[\w-]+", e)]
    write("supercronic", None, "".join(f"{e} echo {i}\n" for i, e in enumerate(exprs)))
    for s in [
        "A=1\n* * * * * * * echo $A\nA=2\nSHELL=/bin/bash\nCRON_TZ=Europe/Berlin\n0 30 2 * * * * echo gap\n",
        "*/5 * * * * * echo year-not-seconds\n0 2 * * * 5 echo five\n0 0 * * * 2020 echo past\n",
        "0 0 L,15W,LW * * echo days\n0 0 * * 0-7,5L,1#5 echo weekdays\n0 0 ? * ? * echo any\n",
        "0 0 */2 * 1 echo or\n0 0 1,* * 1 echo star\n5/20 * * * * echo step\n",
        "\t  # comment\nUSER=nobody\nX = 'y'\nY=\n@reboot echo up\n@midnight echo m\n@every 1m x\n",
        "* * * * * * 2099 echo last\n0 0 29 2 * 2027 never\n0 0 1 january,JUL MON-fri 1970-2099/7 echo names\n",
    ]:
        write("supercronic", None, s)


def yaml_seeds():
    write("yaml", "jobs.example.yaml", (ROOT / "jobs.example.yaml").read_bytes())
    seen = set()
    files = [ROOT / "src" / "source" / "yaml.rs", ROOT / "src" / "plan.rs"]
    files += sorted((ROOT / "tests" / "integration").glob("*.rs"))
    for f in files:
        for s in rust_strings(f):
            if ("jobs:" in s or s.startswith("- name:")) and s not in seen:
                seen.add(s)
                write("yaml", None, s)
    for s in [
        "jobs:\n  - {name: a, schedule: '*/7 * * * * *', command: x, timezone: Pacific/Chatham}\n",
        "defaults: &d\n  timeout: 1h 30m\njobs:\n  - <<: *d\n    name: a\n    command: x\n",
        "jobs:\n  - name: a\n    schedule: ['0 0 L * *', '0 0 1W * *', '0 0 * * fri#2']\n    command: x\n",
        "jobs:\n  - name: a\n    command: x\n    on_success: [b]\n  - name: b\n    command: y\n    on_failure: [a]\n",
        "jobs:\n  - name: a\n    schedule: '30 2 * * *'\n    timezone: Europe/Berlin\n    command: x\n    catch_up: 2d\n",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
        "jobs:\n  - name: a\n    command: x\n    timeout: 18446744073709551615\n",
    ]:
        write("yaml", None, s)


def expression_seeds():
    exprs = []
    files = [
        ROOT / "src" / "schedule" / "tests.rs",
        ROOT / "src" / "schedule" / "vixie.rs",
        ROOT / "src" / "schedule" / "wall.rs",
        ROOT / "src" / "schedule" / "mod.rs",
    ]
    field = r"[A-Za-z0-9*/,#?-]+"
    pattern = re.compile(rf"^\s*(@\w*|{field}(\s+{field}){{4,6}})\s*$")
    for f in files:
        for s in rust_strings(f):
            if pattern.match(s) and s not in exprs and not re.match(r"^\d{4}-", s):
                exprs.append(s)
    exprs += ["", " ", "@", "* * * * *", "*/0 * * * *", "0 0 31 2 *", "0 0 29 2 1", "0 0 LW 2 *"]
    zones = list(ZONES.values())
    for i, expr in enumerate(exprs):
        words = expr.split()
        yaml = len(words) == 6 or re.search(r"[LW#?]", expr) is not None
        zone = zones[i % len(zones)]
        start, rng = STARTS[i % len(STARTS)]
        count = 7
        flags = (1 if yaml else 0) | (rng << 1) | (count << 4)
        head = struct.pack("<HqB", zone, start, flags)
        write("expression", None, head + expr.encode())
        if not yaml and i % 3 == 0:
            write("expression", None, struct.pack("<HqB", zone, start, flags | 1) + expr.encode())


def values_seeds():
    by_kind = {
        0: ["10m", "1h 30m", "0", "90", "'2d'", "18446744073709551615", "300000000000y", "-5s", "1ns"],
        1: ["5s", "0s", "9223372036854775807"],
        2: ["30s", "\"2m\""],
        3: ["12h", "100y"],
        4: ["10s", "1h"],
        5: ["1m", "1d"],
        6: ["1s", "250ms"],
        7: ["3", "0", "4294967295", "-1"],
        8: ["Europe/Berlin", "UTC", "Mars/Olympus", "\"\""],
        9: ["www-data", "root", "\"a b\"", "''"],
        10: ["A: '1'", "PATH: /bin, HOME: /root", "1X: y", "A=B: c"],
        11: ["\"*/5 * * * *\"", "[\"@daily\", \"0 0 L * *\"]", "\"0 0 30 2 *\"", "'* * * * * * *'"],
        12: ["next", "fuzz", "missing", "next, next"],
        13: ["10m", "0"],
        14: ["MAILTO=", "A = 'b' ", "CRON_TZ=Pacific/Apia", "SHELL=", "=x", "A B=c"],
        15: ["root", "www-data", "nobody", "a/b", "*"],
        16: ["5", "100000", "100001", "18446744073709551615", "1000000000000"],
        17: ["3h", "1y", "300000000000y", "18446744073709551615", "10 --json"],
    }
    for kind, values in by_kind.items():
        for v in values:
            write("values", None, bytes([kind]) + v.encode())


if __name__ == "__main__":
    # Inputs the fuzzers found (crash-*, kept as regression seeds) stay.
    for target in ["crontab", "supercronic", "yaml", "expression", "values"]:
        for f in (OUT / target).glob("*"):
            if not f.name.startswith("crash-"):
                f.unlink()
    crontab_seeds()
    supercronic_seeds()
    yaml_seeds()
    expression_seeds()
    values_seeds()
    for target in ["crontab", "supercronic", "yaml", "expression", "values"]:
        print(target, len(list((OUT / target).iterdir())))
