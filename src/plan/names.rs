//! Derived names for crontab jobs (SPEC 3): what the job is, and nothing
//! that depends on the other lines.
//!
//! The rule:
//!
//! 1. The base name says what the job runs: the program or script that does
//!    the work, found by reading the line as the shell does and looking
//!    through guards (`test -x X &&`, `[ -x X ] &&`, `command -v X`, `if`,
//!    `cd DIR &&`, `sleep N`, `perl -e '...'`), wrappers (`env`, `nice`,
//!    `ionice`, `flock`, `timeout`, `sudo`...), interpreters (`php x.php`
//!    gives `x`) and redirections (see `words`). `run-parts DIR` gives
//!    `run-parts-` and the directory's name. A line that runs only generic
//!    tools (`find`, `cat`, `echo`...) is named after the file it comes from
//!    (`munin` for `/etc/cron.d/munin`), unless that name says nothing
//!    (`crontab`, a user's spool file); then the first tool, else `job`.
//! 2. A base that one job has is its name. Jobs that share a base are each
//!    named the base, a dash and six hex digits of a hash of who runs them
//!    and what they run (user, command, shell, standard input; sysstat's two
//!    lines are `debian-sa1-0c8bee` and `debian-sa1-51da6a`); jobs alike in all of
//!    that (twins that differ in environment or directory) add two digits
//!    of a hash that adds those. Nothing positional: reordering lines or files,
//!    and adding or removing lines with another base, renames nothing, and a
//!    job of a shared base keeps its name whatever else shares it. The one
//!    change other lines make: the first job to share a base with a job that
//!    had it alone gives that job its suffix (and removing it takes it away),
//!    and a twin's two extra digits come and go with the twin; the state
//!    follows such a rename (`DerivedName`, `Store::follow_names`).
//!
//! Each derived job also gets an identity (`DerivedName::key`) that does not
//! depend on its name; the name jobrun's earlier rule gave it (`legacy`,
//! computed only when the state asks) lets runs recorded before schema 6 be
//! found under the new name.
//!
//! Must not know how jobs are merged, schedules, storage or the wall clock.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::Job;
use crate::job::{JobSpec, OwnUser};

mod legacy;
mod words;

/// Gives crontab jobs their names (see the module's rule). YAML names are
/// never changed. `own`: the user jobrun runs as, which a job without a user
/// runs as too (the same job whether its user is written or not). Returns
/// each derived job's index and identity (see `key`).
///
/// Linear but for one sort of the base names: 100,000 jobs are named in
/// well under 0.1 s (the merge key's hash is computed once per job, groups
/// are runs of the sorted bases, not a map of vectors, and a name one job
/// has is checked against the YAML names only).
pub(super) fn assign_derived_names(jobs: &mut [Job], own: Option<&OwnUser>) -> Vec<(usize, u64)> {
    // YAML names, then the suffixed names given (a base one job has cannot
    // clash with another: the bases are distinct).
    let mut taken: HashSet<String> = jobs
        .iter()
        .filter(|j| !j.name.is_empty())
        .map(|j| j.name.clone())
        .collect();
    let mut hashes: Vec<(u64, u64)> = vec![(0, 0); jobs.len()];
    let mut bases: Vec<(String, usize)> = Vec::new();
    for (i, job) in jobs.iter().enumerate().filter(|(_, j)| j.name.is_empty()) {
        bases.push((base_name(job), i));
        hashes[i] = identity_hashes(&job.spec, own);
    }
    bases.sort_unstable();
    let groups: Vec<&[(String, usize)]> = bases.chunk_by(|a, b| a.0 == b.0).collect();
    // Bases one job has first, so a script whose name looks like a suffixed
    // one (`backup-1a2b3c`) keeps its own name.
    let mut shared: Vec<&[(String, usize)]> = Vec::new();
    for group in groups {
        let (base, i) = &group[0];
        if group.len() == 1 && !taken.contains(base) {
            jobs[*i].name = base.clone();
        } else {
            shared.push(group);
        }
    }
    // A suffixed name may not be a base some job has alone (a script named
    // `backup-1a2b3c`): the bases are sorted, so that is a binary search.
    let is_base = |name: &str| {
        bases
            .binary_search_by(|(b, _)| b.as_str().cmp(name))
            .is_ok()
    };
    for group in shared {
        let base = &group[0].0;
        let mut pending: Vec<usize> = group.iter().map(|(_, i)| *i).collect();
        // Six digits of the short hash, then those and two or sixteen of the
        // full one; at each width a suffix two members would share is given
        // to neither (the next width decides), so none depends on who else
        // is there but a twin (the same user and command).
        for width in [0, 2, 16] {
            let suffix = |i: usize| {
                let (short, long) = hashes[i];
                let long = format!("{long:016x}");
                format!("{base}-{:06x}{}", short >> 40, &long[..width])
            };
            let mut count: HashMap<String, usize> = HashMap::new();
            for &i in &pending {
                *count.entry(suffix(i)).or_default() += 1;
            }
            pending.retain(|&i| {
                let name = suffix(i);
                if count[&name] == 1 && !taken.contains(&name) && !is_base(&name) {
                    taken.insert(name.clone());
                    jobs[i].name = name;
                    false
                } else {
                    true
                }
            });
        }
        // Equal full hashes: a collision of 64 bits, or the same job in all
        // but the environment's digest. Numbered in the order of their hash.
        pending.sort_by_key(|&i| hashes[i]);
        let mut n = 2;
        for i in pending {
            let mut name = format!("{base}-{:016x}-{n}", hashes[i].1);
            while taken.contains(&name) || is_base(&name) {
                n += 1;
                name = format!("{base}-{:016x}-{n}", hashes[i].1);
            }
            taken.insert(name.clone());
            jobs[i].name = name;
        }
    }
    bases.iter().map(|&(_, i)| (i, hashes[i].1)).collect()
}

/// A derived job's identity as the state keeps it: 16 hex digits of the
/// hash of its merge key.
pub(super) fn key(hash: u64) -> String {
    format!("{hash:016x}")
}

/// The names jobrun's earlier rule gave the derived jobs, by identity
/// (`DerivedName::key`): only the state needs them, and only for jobs it
/// has not recorded yet, so they are computed on demand.
pub(super) fn legacy_names(jobs: &[Job], derived: &[(usize, u64)]) -> HashMap<String, String> {
    let legacy = legacy::legacy_names(jobs);
    derived
        .iter()
        .filter_map(|&(i, hash)| Some((key(hash), legacy[i].clone()?)))
        .collect()
}

/// What the job is, before any suffix: its command's word, else its file's
/// name, else the first generic tool it runs, else `job`.
fn base_name(job: &Job) -> String {
    let said = words::describe(&job.spec.command.to_string());
    if let Some(found) = said.found {
        return found;
    }
    // The first file in path order, not in reading order: copies of one job
    // in two files are named alike however the files are read.
    let file = job
        .origins
        .iter()
        .map(|o| &*o.path)
        .min()
        .and_then(file_label);
    file.or(said.noise).unwrap_or_else(|| "job".to_string())
}

/// A file's name, when it says what its jobs are about (`/etc/cron.d/sysstat`),
/// not when it only says they are cron's (`/etc/crontab`) or whose they are
/// (`/var/spool/cron/crontabs/alice`).
fn file_label(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.split(['.', '@']).next().unwrap_or(name);
    let parent = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|p| p.to_str())
        .unwrap_or("");
    let generic = matches!(stem, "crontab" | "cronjobs" | "cron" | "root" | "jobs")
        || matches!(parent, "crontabs" | "cron" | "tabs");
    let label = words::sanitize(name);
    (!generic && !label.is_empty()).then_some(label)
}

/// Two stable hashes of a job: of who runs it and what it runs (user,
/// command, shell, standard input), and of that with its environment and
/// directory (its whole merge key).
fn identity_hashes(spec: &JobSpec, own: Option<&OwnUser>) -> (u64, u64) {
    let mut h = Fnv::default();
    let user = spec
        .user
        .as_deref()
        .filter(|u| !own.is_some_and(|own| own.is(u)));
    h.field(user.unwrap_or("").as_bytes());
    h.field(spec.command.normalized().as_bytes());
    h.field(&[u8::from(matches!(
        spec.command,
        crate::job::Command::Argv(_)
    ))]);
    h.field(
        spec.shell
            .as_deref()
            .filter(|s| *s != "/bin/sh")
            .unwrap_or("")
            .as_bytes(),
    );
    h.field(spec.stdin.as_deref().unwrap_or("\u{0}none").as_bytes());
    let short = h.finish();
    let (digest, len) = spec.env.merge_digest();
    h.field(&digest.to_le_bytes());
    h.field(&(len as u64).to_le_bytes());
    h.field(
        spec.workdir
            .as_deref()
            .map(|p| p.as_os_str().as_encoded_bytes())
            .unwrap_or(b"\0none"),
    );
    (short, h.finish())
}

/// FNV-1a with a final mix: the same on every machine and in every version
/// (names and state keys are made from it), unlike std's hasher.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn field(&mut self, bytes: &[u8]) {
        for b in bytes.iter().chain(&[0xff]) {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 30;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 27;
        h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }
}

/// A readable name for a crontab command alone (no file to fall back on).
/// For example `php /app/cron/sendnotifications.php >> log 2>&1` gives
/// `sendnotifications`, and
/// `test -x /usr/bin/certbot && perl -e 'sleep 5' && certbot -q renew`
/// gives `certbot`.
pub fn derive_name(command: &str) -> String {
    let said = words::describe(command);
    said.found
        .or(said.noise)
        .unwrap_or_else(|| "job".to_string())
}

#[cfg(test)]
mod tests;
