//! Starts `--http` (see [`crate::http`]) before the first firing, so its
//! metrics count every run of this daemon exactly once on top of the
//! history, and tells it what the loop does: its passes (liveness) and its
//! reloads.

use std::sync::Arc;

use anyhow::Result;

use super::reload::ReloadOptions;
use crate::fire::FireContext;
use crate::http::{HttpOptions, Server};
use crate::job::{Diagnostic, Severity};
use crate::plan::Plan;

/// The listener, when `options` asks for one.
pub(super) async fn start(
    options: Option<HttpOptions>,
    ctx: &FireContext,
    plan: &Arc<Plan>,
    reload: Option<&ReloadOptions>,
    location: &crate::store::Location,
) -> Result<Option<Server>> {
    let Some(options) = options else {
        return Ok(None);
    };
    let sources_ok = reload.is_none_or(|r| no_errors(&r.started_with.1));
    Ok(Some(
        crate::http::start(options, ctx, plan, sources_ok, location).await?,
    ))
}

/// Whether `problems` has no error (warnings are fine).
pub(super) fn no_errors(problems: &[Diagnostic]) -> bool {
    !problems.iter().any(|d| d.severity == Severity::Error)
}

#[cfg(test)]
#[path = "listener_tests.rs"]
mod tests;
