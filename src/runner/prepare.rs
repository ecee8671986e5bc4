//! Preparing what the child starts with, before it exists: its final
//! environment (`HOME`, `USER` and `LOGNAME` of the user it runs as), its
//! working directory (checked here, so that a missing one is reported as
//! such: from inside the fork every failure is a bare errno), and the words
//! that say what the child did before executing, for start errors.
//!
//! Must not know how the child is started or supervised.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use super::identity::Identity;
use super::RunError;

/// The child's environment: `env`, with `HOME`, `USER` and `LOGNAME` set from
/// `identity` (when the child switches user) except where the job's
/// definition set them (`explicit`).
pub(super) fn environment(
    mut env: BTreeMap<String, String>,
    explicit: &BTreeSet<String>,
    identity: Option<&Identity>,
) -> BTreeMap<String, String> {
    if let Some(identity) = identity {
        for (key, value) in [
            ("HOME", identity.home.clone()),
            ("USER", identity.name.clone()),
            ("LOGNAME", identity.name.clone()),
        ] {
            if !explicit.contains(key) {
                env.insert(key.to_string(), value);
            }
        }
    }
    env
}

/// The directory the child runs in: `workdir`, else with `home_workdir` the
/// child's `HOME` (see [`home_dir`]), else `None` (jobrun's own).
pub(super) fn directory(
    workdir: Option<&PathBuf>,
    home_workdir: bool,
    env: &BTreeMap<String, String>,
) -> Option<PathBuf> {
    match workdir {
        Some(path) => Some(path.clone()),
        None if home_workdir => Some(home_dir(env.get("HOME").map(String::as_str))),
        None => None,
    }
}

/// What the child does before executing its program, for start errors:
/// ` (as user U, in DIR)`, ` (as user U)`, ` (in DIR)` or nothing.
pub(super) fn setup(user: Option<&String>, switches: bool, dir: Option<&PathBuf>) -> String {
    match (user, dir) {
        (Some(user), Some(dir)) if switches => {
            format!(" (as user {user}, in {})", dir.display())
        }
        (Some(user), None) if switches => format!(" (as user {user})"),
        (_, Some(dir)) => format!(" (in {})", dir.display()),
        _ => String::new(),
    }
}

/// A crontab job's directory: its `HOME` when that is a directory, else `/`
/// (Debian's cron ignores a failed `chdir(HOME)` and stays in `/`; a job
/// run as `nobody`, whose home is `/nonexistent`, must still run).
fn home_dir(home: Option<&str>) -> PathBuf {
    match home {
        Some(home) if Path::new(home).is_dir() => PathBuf::from(home),
        _ => PathBuf::from("/"),
    }
}

pub(super) fn check_workdir(job: &str, path: &Path) -> Result<CString, RunError> {
    let error = |source| RunError::Workdir {
        job: job.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(error)?;
    if !meta.is_dir() {
        return Err(error(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| error(io::Error::new(io::ErrorKind::InvalidInput, "contains NUL")))
}
