//! A job's variables as its sources give them ([`JobEnv`]), shared, never
//! copied per job.
//!
//! A crontab's variables apply to every entry after them, and a YAML file's
//! `defaults.env` to every job: copying them into each job made memory grow
//! with variables × entries (issue 11: 5,000 `V=x` lines and 5,000 entries
//! took 6.6 GB). Here an environment is a stack of shared layers: a job's own
//! variables on top of its file's, each layer written once and held by `Arc`.
//! Its size, byte count and digest are kept as layers are added, so comparing
//! and hashing (the merge rule) never needs the variables flattened.
//!
//! Plain data: no parser, no process, no clock.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

/// One layer of variables and the layers below it.
#[derive(Debug)]
struct Layer {
    below: Option<Arc<Layer>>,
    vars: BTreeMap<String, String>,
}

/// The variables of one job: cheap to clone (a pointer and three numbers).
/// A later layer's value for a name wins over an earlier one's.
#[derive(Clone, Default)]
pub struct JobEnv {
    top: Option<Arc<Layer>>,
    /// Variables in effect (a name set twice counts once).
    len: usize,
    /// Bytes of the variables in effect as `exec` counts them (`NAME=value\0`).
    bytes: usize,
    /// A wrapping sum of each variable's hash: independent of the order in
    /// which layers set them, updated as they are set.
    digest: u64,
    /// `SHELL=/bin/sh` is in effect: the default shell, which the merge rule
    /// treats as unset (kept here so it is known without a look-up).
    default_shell: bool,
}

/// A variable's hash: FNV-1a over `name`, a separator and `value`, then
/// mixed (splitmix64's finaliser) so that sums of them spread well. Written
/// out rather than std's hasher, whose output may change between Rust
/// releases: the digest also orders derived names, which must not change.
fn var_hash(name: &str, value: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes().chain([0xff]).chain(value.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn var_bytes(name: &str, value: &str) -> usize {
    name.len() + value.len() + 2
}

#[cfg(test)]
thread_local! {
    /// Layers this thread walked to flatten environments: the work that must
    /// not grow with jobs x variables.
    pub static LAYERS_WALKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// What a value of `SHELL` means to the merge rule.
const DEFAULT_SHELL: (&str, &str) = ("SHELL", "/bin/sh");

impl JobEnv {
    /// No variables.
    pub fn new() -> Self {
        JobEnv::default()
    }

    /// This environment with `vars` set on top of it; `self` is shared, not
    /// copied. Looks up each new name below (layers are few for YAML: the
    /// file's defaults and the job's own).
    pub fn with(&self, vars: BTreeMap<String, String>) -> JobEnv {
        if vars.is_empty() {
            return self.clone();
        }
        let mut next = self.clone();
        for (name, value) in &vars {
            let old = self.get(name).map(str::to_owned);
            next.account(name, value, old.as_deref());
        }
        next.top = Some(Arc::new(Layer {
            below: self.top.clone(),
            vars,
        }));
        next
    }

    /// Counts `name=value` replacing `old` in len, bytes and digest.
    fn account(&mut self, name: &str, value: &str, old: Option<&str>) {
        match old {
            Some(old) => {
                self.bytes -= var_bytes(name, old);
                self.digest = self.digest.wrapping_sub(var_hash(name, old));
            }
            None => self.len += 1,
        }
        self.bytes += var_bytes(name, value);
        self.digest = self.digest.wrapping_add(var_hash(name, value));
        if name == DEFAULT_SHELL.0 {
            self.default_shell = value == DEFAULT_SHELL.1;
        }
    }

    /// The value in effect for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let mut layer = self.top.as_deref();
        while let Some(l) = layer {
            if let Some(v) = l.vars.get(name) {
                return Some(v);
            }
            layer = l.below.as_deref();
        }
        None
    }

    /// How many variables are in effect.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the variables in effect, as `exec` counts them (`NAME=value\0`).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The variables in effect, by name. Walks every layer once: for
    /// starting a job and for messages, not for comparing.
    pub fn vars(&self) -> BTreeMap<&String, &String> {
        let mut out = BTreeMap::new();
        let mut layer = self.top.as_deref();
        while let Some(l) = layer {
            #[cfg(test)]
            LAYERS_WALKED.with(|n| n.set(n.get() + 1));
            for (k, v) in &l.vars {
                out.entry(k).or_insert(v);
            }
            layer = l.below.as_deref();
        }
        out
    }

    /// The names in effect.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.vars().into_keys()
    }

    /// The variables in effect, owned.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.vars()
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The merge rule's view (SPEC 3): `SHELL=/bin/sh` counts as unset, as a
    /// crontab that sets it means the same as one that does not. A digest and
    /// a size, for hashing without flattening.
    pub fn merge_digest(&self) -> (u64, usize) {
        if self.default_shell {
            (
                self.digest
                    .wrapping_sub(var_hash(DEFAULT_SHELL.0, DEFAULT_SHELL.1)),
                self.len - 1,
            )
        } else {
            (self.digest, self.len)
        }
    }

    /// The merge rule's equality: the same variables, `SHELL=/bin/sh` aside.
    /// Shared layers compare in O(1); others only when their digests agree
    /// (that is, when they are the same), in one pass.
    pub fn same_for_merge(&self, other: &JobEnv) -> bool {
        if self.shares_with(other) {
            return true;
        }
        if self.merge_digest() != other.merge_digest() {
            return false;
        }
        self.merge_vars() == other.merge_vars()
    }

    fn merge_vars(&self) -> BTreeMap<&String, &String> {
        let mut vars = self.vars();
        if self.default_shell {
            vars.retain(|k, _| k.as_str() != DEFAULT_SHELL.0);
        }
        vars
    }

    fn shares_with(&self, other: &JobEnv) -> bool {
        match (&self.top, &other.top) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl PartialEq for JobEnv {
    fn eq(&self, other: &JobEnv) -> bool {
        self.shares_with(other)
            || (self.len == other.len && self.digest == other.digest && self.vars() == other.vars())
    }
}

impl Eq for JobEnv {}

impl fmt::Debug for JobEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.vars()).finish()
    }
}

impl FromIterator<(String, String)> for JobEnv {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        JobEnv::new().with(iter.into_iter().collect())
    }
}

impl IntoIterator for JobEnv {
    type Item = (String, String);
    type IntoIter = std::collections::btree_map::IntoIter<String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.to_map().into_iter()
    }
}

/// Builds the environments of a file read line by line (a crontab): each
/// variable line adds a one-variable layer, and every entry takes the stack
/// as it is, in O(1). The values in effect are also kept in one map, so a
/// line costs a look-up, not a walk down the stack.
#[derive(Default)]
pub struct EnvStack {
    current: HashMap<String, String>,
    env: JobEnv,
    /// Layers in `env`'s stack.
    depth: usize,
}

impl EnvStack {
    pub fn new() -> Self {
        EnvStack::default()
    }

    /// Sets `name` for what follows.
    pub fn set(&mut self, name: String, value: String) {
        let old = self.current.insert(name.clone(), value.clone());
        let mut next = self.env.clone();
        next.account(&name, &value, old.as_deref());
        next.top = Some(Arc::new(Layer {
            below: self.env.top.take(),
            vars: BTreeMap::from([(name, value)]),
        }));
        self.depth += 1;
        // Overridden values stay in the stack; once they outnumber the
        // variables in effect, start again from one layer of those. Each
        // restart costs the variables in effect and comes after as many new
        // layers, so building stays linear, and flattening an entry's
        // environment (at each run) walks at most about twice its variables.
        if self.depth > 2 * self.current.len() + 8 {
            next.top = Some(Arc::new(Layer {
                below: None,
                vars: self
                    .current
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            }));
            self.depth = 1;
        }
        self.env = next;
    }

    /// The environment in effect now, shared.
    pub fn env(&self) -> JobEnv {
        self.env.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn later_layers_win_and_counts_follow() {
        let base = JobEnv::new().with(map(&[("A", "1"), ("B", "2")]));
        let job = base.with(map(&[("B", "3"), ("C", "4")]));
        assert_eq!(job.get("B"), Some("3"));
        assert_eq!(job.len(), 3);
        assert_eq!(job.bytes(), 3 * "A=1\0".len());
        assert_eq!(job.to_map(), map(&[("A", "1"), ("B", "3"), ("C", "4")]));
        assert_eq!(base.get("B"), Some("2"), "the shared layer is unchanged");
    }

    #[test]
    fn equality_ignores_how_the_layers_were_written() {
        let one = JobEnv::new().with(map(&[("A", "1"), ("B", "2")]));
        let two = JobEnv::new()
            .with(map(&[("B", "9")]))
            .with(map(&[("A", "1"), ("B", "2")]));
        let mut stack = EnvStack::new();
        stack.set("B".into(), "0".into());
        stack.set("A".into(), "1".into());
        stack.set("B".into(), "2".into());
        assert_eq!(one, two);
        assert_eq!(one, stack.env());
        assert_eq!(one.merge_digest(), stack.env().merge_digest());
        assert_ne!(one, JobEnv::new().with(map(&[("A", "1")])));
    }

    #[test]
    fn the_default_shell_is_unset_for_the_merge_rule_only() {
        let plain = JobEnv::new().with(map(&[("A", "1")]));
        let sh = plain.with(map(&[("SHELL", "/bin/sh")]));
        let bash = plain.with(map(&[("SHELL", "/bin/bash")]));
        assert!(plain.same_for_merge(&sh));
        assert_eq!(plain.merge_digest(), sh.merge_digest());
        assert!(!plain.same_for_merge(&bash));
        assert_ne!(plain, sh);
    }

    #[test]
    fn a_variable_set_over_and_over_does_not_deepen_the_stack_without_end() {
        let mut stack = EnvStack::new();
        stack.set("A".into(), "a".into());
        for i in 0..10_000 {
            stack.set("V".into(), i.to_string());
        }
        let before = LAYERS_WALKED.with(std::cell::Cell::get);
        assert_eq!(stack.env().to_map(), map(&[("A", "a"), ("V", "9999")]));
        let walked = LAYERS_WALKED.with(std::cell::Cell::get) - before;
        assert!(walked <= 16, "{walked} layers for 2 variables");
        assert_eq!(stack.env().len(), 2);
    }
}
