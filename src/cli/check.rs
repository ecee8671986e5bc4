//! `jobrun check`: validate every source and report with `path:line`.

use std::io::Write;

use anyhow::Result;

use super::{load_plan, Env, GlobalArgs, EXIT_FAILURE, EXIT_OK};
use crate::job::{Diagnostic, Severity};

pub fn run(global: &GlobalArgs, env: &Env, out: &mut dyn Write) -> Result<i32> {
    let (plan, mut diagnostics, _) = load_plan(global, env)?;
    if !env.running_as_root {
        for job in plan.jobs().iter().filter(|j| j.spec.user.is_some()) {
            diagnostics.push(Diagnostic::warning(
                Some(job.spec.origin.clone()),
                format!(
                    "job {} runs as user {:?}, which needs jobrun to run as root; \
                     started as this user it will fail",
                    job.name,
                    job.spec.user.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    let count = |s: Severity| diagnostics.iter().filter(|d| d.severity == s).count();
    let (errors, warnings, notes) = (
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Note),
    );
    for d in &diagnostics {
        writeln!(out, "{d}")?;
    }
    let merged = plan.jobs().iter().filter(|j| j.is_merged()).count();
    writeln!(
        out,
        "{} job(s) ({merged} merged from several entries): {errors} error(s), {warnings} warning(s), {notes} note(s)",
        plan.jobs().len()
    )?;
    Ok(if errors > 0 { EXIT_FAILURE } else { EXIT_OK })
}
