//! jobrun's earlier rule for derived names (before state schema 6), kept
//! only to find the runs recorded under it: `legacy_names` gives each
//! crontab job the name that rule gave it (the command's first word after
//! guards and wrappers, numbered `-2`, `-3`... within a base name), so the
//! store can move those runs to the job's current name once (see
//! `Store::follow_names`). Frozen: never change what it returns.
//!
//! Must not be used to name jobs.

use std::collections::{BTreeMap, HashSet};

use super::super::Job;
use crate::job::JobSpec;

/// The names the earlier rule gave `jobs` (`None` for jobs named in YAML).
pub(in crate::plan) fn legacy_names(jobs: &[Job]) -> Vec<Option<String>> {
    let derived = |j: &Job| j.spec.name.is_none();
    let mut names: Vec<Option<String>> = vec![None; jobs.len()];
    let mut taken: HashSet<String> = jobs
        .iter()
        .filter(|j| !derived(j))
        .map(|j| j.name.clone())
        .collect();
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, job) in jobs.iter().enumerate().filter(|(_, j)| derived(j)) {
        groups
            .entry(derive_name(&job.spec.command.to_string()))
            .or_default()
            .push(i);
    }
    for (base, members) in groups {
        let mut keyed: Vec<_> = members
            .into_iter()
            .map(|i| {
                let spec = &jobs[i].spec;
                let key = (
                    spec.user.clone().unwrap_or_default(),
                    spec.command.normalized(),
                    spec.env.len(),
                    spec.workdir.is_some(),
                );
                (key, i)
            })
            .collect();
        keyed.sort_by(|(ka, a), (kb, b)| {
            let (x, y) = (&jobs[*a].spec, &jobs[*b].spec);
            let argv = |s: &JobSpec| matches!(s.command, crate::job::Command::Argv(_));
            ka.cmp(kb)
                .then_with(|| argv(x).cmp(&argv(y)))
                .then_with(|| (&x.stdin, &x.shell).cmp(&(&y.stdin, &y.shell)))
                .then_with(|| x.env.merge_digest().cmp(&y.env.merge_digest()))
                .then_with(|| x.env.vars().cmp(&y.env.vars()))
                .then_with(|| x.workdir.cmp(&y.workdir))
        });
        let mut n = 1;
        for (_, i) in keyed {
            let mut name = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            while taken.contains(&name) {
                n += 1;
                name = format!("{base}-{n}");
            }
            n += 1;
            taken.insert(name.clone());
            names[i] = Some(name);
        }
    }
    names
}

/// Programs that run another program named by a later argument.
const WRAPPERS: &[&str] = &[
    "env", "nice", "ionice", "nohup", "chronic", "timeout", "flock", "sudo", "su", "setsid",
    "run-one", "cronic", "time", "stdbuf", "chrt", "taskset",
];
/// Interpreters whose first non-option argument is the script that names the job.
const INTERPRETERS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "php", "php-cli", "python", "python2", "python3", "perl",
    "ruby", "node", "nodejs", "bun", "deno", "lua", "Rscript",
];
/// Commands that guard or prepare the real command (`test -x X && X`, `cd /d && X`).
const GUARDS: &[&str] = &[
    "test", "[", "[[", "cd", "true", "false", ":", "sleep", "fi", "done", "esac",
];
/// Shell keywords that may stand before a command (`then /usr/bin/x`).
const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "do", "while", "until", "!", "{", "exec",
];

/// A readable name for a crontab command. For example
/// `php /app/cron/sendnotifications.php >> log 2>&1` gives `sendnotifications`,
/// and `test -x /usr/sbin/anacron || run-parts --report /etc/cron.daily` gives
/// `run-parts`.
pub(super) fn derive_name(command: &str) -> String {
    for simple in command.split(['|', ';', '&', '(', ')', '\n']) {
        let words: Vec<&str> = simple.split_whitespace().collect();
        let Some(name) = name_from_words(&words) else {
            continue;
        };
        let clean = sanitize(&name);
        if !clean.is_empty() {
            return clean;
        }
    }
    "job".to_string()
}

/// The name the words of one simple command give. A loop, not recursion:
/// each wrapper (`env`, `nice`, `sudo -u x`) moves a slice's start forward,
/// so `env env ... env x` costs one pass over its words, whatever their count.
fn name_from_words(words: &[&str]) -> Option<String> {
    let mut words = words;
    loop {
        let mut i = 0;
        // Variable assignments and keywords before the command (`LANG=C foo`, `then foo`).
        while i < words.len() && (is_assignment(words[i]) || KEYWORDS.contains(&words[i])) {
            i += 1;
        }
        let program = *words.get(i)?;
        let base = basename(program);
        if GUARDS.contains(&base) || is_redirect(program) {
            return None;
        }
        if WRAPPERS.contains(&base) {
            words = skip_wrapper_args(base, &words[i + 1..]);
            continue;
        }
        if INTERPRETERS.contains(&base) || base.starts_with("python") || base.starts_with("php") {
            let script = words[i + 1..]
                .iter()
                .take_while(|w| !is_redirect(w))
                .find(|w| !w.starts_with('-') && !is_assignment(w));
            if let Some(script) = script {
                return Some(strip_extension(basename(script)).to_string());
            }
        }
        return Some(strip_extension(base).to_string());
    }
}

/// The words after a wrapper that start the wrapped command (a sub-slice:
/// nothing is copied).
fn skip_wrapper_args<'w, 'a>(wrapper: &str, rest: &'w [&'a str]) -> &'w [&'a str] {
    let mut i = 0;
    while i < rest.len() && (rest[i].starts_with('-') || is_assignment(rest[i])) {
        // Options that take a value: `sudo -u www-data`, `ionice -c 3`, `nice -n 10`.
        let takes_value = matches!(
            rest[i],
            "-u" | "-g" | "-c" | "-n" | "-p" | "-w" | "-E" | "-s"
        );
        i += if takes_value { 2 } else { 1 };
    }
    // `timeout 5m cmd`, `flock /tmp/lock cmd`, `su user -c cmd`: one positional
    // argument before the command.
    if matches!(wrapper, "timeout" | "flock" | "chrt" | "taskset") && i < rest.len() {
        i += 1;
    }
    rest.get(i..).unwrap_or_default()
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn is_redirect(word: &str) -> bool {
    word.starts_with(['>', '<']) || word.starts_with("2>") || word.starts_with("1>")
}

fn basename(path: &str) -> &str {
    let path = path.trim_matches(|c| c == '"' || c == '\'');
    path.rsplit('/').next().unwrap_or(path)
}

fn strip_extension(name: &str) -> &str {
    match name.rfind('.') {
        Some(dot) if dot > 0 => &name[..dot],
        _ => name,
    }
}

/// Lowercase, `[a-z0-9_.-]` only, starting with a letter or digit (SPEC 1.1).
fn sanitize(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    mapped
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .trim_end_matches(['-', '.', '_'])
        .to_string()
}
