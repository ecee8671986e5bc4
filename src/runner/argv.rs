//! What the child executes: the argv of a [`Program`] (`shell -c command`,
//! or the job's own words) and the program's path, a bare name being looked
//! up in the job's `PATH` as execvp would.
//!
//! Must not know how the child is started or supervised.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::{Program, RunError};

/// Where a bare program name is looked for when the job has no `PATH`
/// (glibc's execvp default).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// The program's argv; the first element is argv[0].
pub(super) fn argv(job: &str, program: &Program) -> Result<Vec<OsString>, RunError> {
    Ok(match program {
        Program::Shell { shell, command } => {
            vec![shell.into(), "-c".into(), command.into()]
        }
        Program::Argv(argv) if argv.is_empty() => {
            return Err(RunError::EmptyCommand {
                job: job.to_string(),
            });
        }
        Program::Argv(argv) => argv.iter().map(OsString::from).collect(),
    })
}

/// The program to execute for `first` (argv[0]). A bare name is looked up in
/// the job's PATH here, as execvp would (glibc's default path when the job
/// has none). `None`: left to execvp in a forked child (a PATH with relative
/// directories).
pub(super) fn locate(first: &OsString, env: &BTreeMap<String, String>) -> Option<OsString> {
    if first.as_bytes().contains(&b'/') {
        Some(first.clone())
    } else {
        let path = env.get("PATH").map_or(DEFAULT_PATH, String::as_str);
        search_path(&first.to_string_lossy(), path).map(PathBuf::into_os_string)
    }
}

/// The first executable file named `name` in the directories of `path`.
/// `None` also for a PATH with a relative directory: execvp resolves that
/// in the job's working directory, so it is left to execvp.
fn search_path(name: &str, path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if path.split(':').any(|dir| !dir.starts_with('/')) {
        return None;
    }
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| std::path::Path::new(dir).join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
