//! Derived names on the real-world crontabs (tests/fixtures/corpus): what
//! they say, and that no name moves when other lines are added, removed or
//! reordered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::job::{JobSpec, OwnUser, SourceSet};
use crate::plan::Plan;
use crate::source::crontab::{parse_crontab, CrontabFormat};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus")
}

/// Every corpus file in Vixie syntax, read as it is installed.
fn corpus() -> Vec<(String, Vec<Arc<JobSpec>>)> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(corpus_dir().join("index.json")).unwrap()).unwrap();
    let mut out = Vec::new();
    for entry in index.as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        let format = match entry["format"].as_str().unwrap() {
            "system" => CrontabFormat::SystemOrDcron,
            "user" => CrontabFormat::User,
            _ => continue,
        };
        let path = corpus_dir().join(file);
        let set = parse_crontab(&path, &std::fs::read(&path).unwrap(), format, Some("root"));
        out.push((file.to_string(), set.jobs));
    }
    assert!(out.len() > 30, "the corpus is read: {}", out.len());
    out
}

fn root() -> Option<OwnUser> {
    Some(OwnUser {
        name: Some("root".into()),
        uid: 0,
    })
}

/// Each job's name, by the job's identity.
fn names(jobs: &[Arc<JobSpec>]) -> BTreeMap<String, String> {
    named(jobs).into_iter().map(|(k, (n, _))| (k, n)).collect()
}

/// Each job's name and who runs what (user, command), by the job's identity.
fn named(jobs: &[Arc<JobSpec>]) -> BTreeMap<String, (String, (Option<String>, String))> {
    let (plan, _) = Plan::build(
        SourceSet {
            jobs: jobs.to_vec(),
            own_user: root(),
            ..Default::default()
        },
        chrono_tz::UTC,
    );
    let derived = plan.derived_names();
    assert_eq!(derived.len(), plan.jobs().len());
    derived
        .iter()
        .map(|d| {
            let spec = &plan.get(&d.name).expect("a job of the plan").spec;
            let what = (spec.user.clone(), spec.command.normalized());
            (d.key.clone(), (d.name.clone(), what))
        })
        .collect()
}

/// A stable shuffle (no randomness in tests): a Fisher-Yates pass driven by
/// a linear congruential generator seeded with `seed`.
fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut out = items.to_vec();
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    for i in (1..out.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        out.swap(i, (state >> 33) as usize % (i + 1));
    }
    out
}

fn unrelated(n: usize) -> Arc<JobSpec> {
    let mut set = parse_crontab(
        Path::new("/etc/cron.d/other"),
        format!("*/7 * * * * root /opt/tools/unrelated-{n}.sh --now\n").as_bytes(),
        CrontabFormat::System,
        None,
    );
    set.jobs.remove(0)
}

/// The base a suffixed name was made from.
fn base(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((base, hex)) if hex.len() >= 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) => base,
        _ => name,
    }
}

/// The stability rule on one set of jobs: reordering, adding unrelated
/// lines, and removing a line never rename another job, but for the job a
/// removal leaves alone with its base, which then loses its suffix, and for
/// a job that the removed one ran the same command as the same user as (a
/// twin in another environment), whose suffix gets shorter.
fn assert_stable(what: &str, jobs: &[Arc<JobSpec>]) {
    let whole = named(jobs);
    let before = names(jobs);
    for seed in 1..=6 {
        assert_eq!(
            names(&shuffled(jobs, seed)),
            before,
            "{what}: shuffle {seed}"
        );
    }
    let reversed: Vec<_> = jobs.iter().rev().cloned().collect();
    assert_eq!(names(&reversed), before, "{what}: reversed");

    let mut more = vec![unrelated(1), unrelated(2)];
    more.extend(jobs.iter().cloned());
    let after = names(&more);
    for (key, name) in &before {
        assert_eq!(after.get(key), Some(name), "{what}: lines added before it");
    }

    for removed in 0..jobs.len() {
        let mut fewer = jobs.to_vec();
        let gone = fewer.remove(removed);
        let gone = (gone.user.clone(), gone.command.normalized());
        let after = names(&fewer);
        for (key, name) in &after {
            let was = &before[key];
            if was != name && whole[key].1 == gone {
                assert!(
                    was.starts_with(name.as_str()),
                    "{what}: twin {was} became {name}"
                );
            } else if was != name {
                // Only the last job of a shared base changes: it becomes the base.
                assert_eq!(name, base(was), "{what}: line {removed} removed");
                let shared = after.values().filter(|n| base(n) == name).count();
                assert_eq!(shared, 1, "{what}: line {removed} removed renamed {was}");
            }
        }
    }
}

#[test]
fn corpus_names_do_not_move_when_other_lines_do() {
    for (file, jobs) in corpus() {
        assert_stable(&file, &jobs);
    }
}

#[test]
fn a_synthetic_crontab_keeps_its_names_under_every_change() {
    let text = "\
MAILTO=root
17 * * * * root cd / && run-parts --report /etc/cron.hourly
25 6 * * * root test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }
*/5 * * * * root /opt/app/bin/backup.sh --incremental
0 3 * * * root /opt/app/bin/backup.sh --full
0 3 * * * www-data /opt/app/bin/backup.sh --full
PATH=/usr/bin:/bin
0 4 * * * www-data /opt/app/bin/backup.sh --full
@reboot root sleep 60 && /usr/local/bin/warm-cache
0 0 * * * root find /tmp -mtime +7 -delete
30 0 * * * root echo hi | mail -s hi root
";
    let set = parse_crontab(
        Path::new("/etc/cron.d/app"),
        text.as_bytes(),
        CrontabFormat::System,
        None,
    );
    assert!(
        set.diagnostics
            .iter()
            .all(|d| d.severity == crate::job::Severity::Note),
        "{:?}",
        set.diagnostics
    );
    assert_stable("synthetic", &set.jobs);
    let all: Vec<String> = names(&set.jobs).into_values().collect();
    let count = |b: &str| all.iter().filter(|n| base(n) == b).count();
    assert_eq!(count("backup"), 4, "{all:?}");
    assert_eq!(
        count("app"),
        2,
        "generic tools: named after the file: {all:?}"
    );
    for alone in [
        "run-parts-cron.hourly",
        "run-parts-cron.daily",
        "warm-cache",
    ] {
        assert!(all.iter().any(|n| n == alone), "{alone}: {all:?}");
    }
}

#[test]
fn corpus_names_say_what_the_job_is() {
    let corpus: BTreeMap<String, Vec<Arc<JobSpec>>> = corpus().into_iter().collect();
    let named = |file: &str| -> Vec<String> {
        let mut all: Vec<String> = names(&corpus[file]).into_values().collect();
        all.sort();
        all
    };
    assert_eq!(named("debian/certbot/etc/cron.d/certbot"), ["certbot"]);
    assert_eq!(named("debian/php-common/etc/cron.d/php"), ["sessionclean"]);
    assert_eq!(named("debian/anacron/etc/cron.d/anacron"), ["anacron"]);
    assert_eq!(named("debian/mdadm/etc/cron.d/mdadm"), ["checkarray"]);
    assert_eq!(named("debian/fcheck/etc/cron.d/fcheck"), ["fcheck"]);
    assert_eq!(
        named("debian/cron-daemon-common/etc/crontab"),
        [
            "run-parts-cron.daily",
            "run-parts-cron.hourly",
            "run-parts-cron.monthly",
            "run-parts-cron.weekly"
        ]
    );
    let sysstat = named("debian/sysstat/etc/cron.d/sysstat");
    assert_eq!(sysstat.len(), 2);
    assert!(
        sysstat.iter().all(|n| base(n) == "debian-sa1"),
        "{sysstat:?}"
    );
    assert_ne!(sysstat[0], sysstat[1]);
    let munin = named("debian/munin/etc/cron.d/munin");
    assert!(munin.contains(&"munin-cron".to_string()), "{munin:?}");
    assert_eq!(munin.iter().filter(|n| base(n) == "munin").count(), 2);
    assert_eq!(
        named("debian/e2fsprogs/etc/cron.d/e2scrub_all"),
        ["e2scrub_all", "e2scrub_all_cron"]
    );
    assert_eq!(
        named("debian/inn2/etc/cron.d/inn2"),
        ["ctlinnd", "news.daily", "rnews"]
    );
}

#[test]
fn words_look_through_guards_wrappers_and_inline_code() {
    let cases = [
        ("test -x /usr/bin/certbot -a \\! -d /run/systemd/system && perl -e 'sleep int(rand(43200))' && certbot -q renew --no-random-sleep-on-renew", "certbot"),
        ("command -v debian-sa1 > /dev/null && debian-sa1 1 1", "debian-sa1"),
        ("[ -x /etc/init.d/anacron ] && if [ ! -d /run/systemd/system ]; then /usr/sbin/invoke-rc.d anacron start >/dev/null; fi", "anacron"),
        ("test -x /usr/sbin/fcheck && if ! nocache nice ionice -c3 /usr/sbin/fcheck -asxrf /etc/fcheck/fcheck.cfg >/var/run/fcheck.out 2>&1; then mailx root; fi", "fcheck"),
        ("sleep $((60 + $RANDOM % 230)); /app/duck.sh 2>&1", "duck"),
        ("env VVQUIET=1 $VV $VIROVERSE/scripts/worker ImportJob", "worker"),
        ("flock -n /tmp/x.lock timeout 5m env A=1 /opt/sync.py", "sync"),
        ("cd /srv/app && python3 -m app.tasks.cleanup", "app.tasks.cleanup"),
        (">/dev/null 2>&1 /usr/bin/report", "report"),
        ("periodic daily", "periodic-daily"),
        ("su - postgres -c '/usr/local/bin/vacuum-all.sh >/dev/null'", "vacuum-all"),
        ("bash -c 'sleep 5 && /usr/local/bin/rotate.sh'", "rotate"),
        ("echo hello", "echo"),
        ("sleep 10", "job"),
    ];
    for (command, want) in cases {
        assert_eq!(super::derive_name(command), want, "{command}");
    }
}
