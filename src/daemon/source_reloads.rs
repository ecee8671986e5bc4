//! The scheduler loop's reload component: everything that starts a reload
//! (SIGHUP, a change of a source file, debounced) and the reload that ends
//! with a new plan, behind one awaitable [`SourceReloads::next_plan`], so
//! the loop has one reload arm. The reloading itself is [`reload`]'s.
//!
//! Knows the reload machinery and the daemon's file watcher; nothing of
//! ticks, runs or the store.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::Instant;

use super::file_watch::FileWatch;
use super::reload::{self, ReloadOptions, Reloads, SourceWatcher};
use super::watch::{Armer, Prepared};
use crate::job::Diagnostic;
use crate::plan::Plan;

pub(super) struct SourceReloads {
    hangup: Signal,
    /// Watches the sources (when the daemon reloads at all).
    watcher: Option<SourceWatcher>,
    reloads: Option<Reloads>,
    /// A source changed: the reload starts then (the debounce).
    reload_at: Option<Instant>,
}

impl SourceReloads {
    /// Installs the SIGHUP handler and watches the sources on `files`;
    /// `armer` sets up the `watch:` jobs' watches of each new plan.
    pub(super) fn new(
        options: Option<ReloadOptions>,
        plan: &Arc<Plan>,
        files: &FileWatch,
        armer: Armer,
    ) -> Result<SourceReloads> {
        let hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let watcher = options.as_ref().map(|r| reload::watch(files, &r.watch));
        let reloads = options.map(|r| Reloads::new(r, plan, armer));
        Ok(SourceReloads {
            hangup,
            watcher,
            reloads,
            reload_at: None,
        })
    }

    /// The source errors and warnings of the plan in force.
    pub(super) fn problems(&self) -> Vec<Diagnostic> {
        reload::problems(&self.reloads)
    }

    /// The next plan a reload gives, with the watches its new `watch:` jobs
    /// need; reloads start on SIGHUP and after a source changed. Never
    /// resolves for a daemon that does not reload. Cancel-safe: the loop
    /// drops it at each wake-up, and what it waits for stays here.
    pub(super) async fn next_plan(&mut self) -> (Arc<Plan>, Prepared) {
        loop {
            tokio::select! {
                _ = self.hangup.recv() => reload::request(&mut self.reloads, "SIGHUP"),
                Some(()) = source_changed(&mut self.watcher) => {
                    self.reload_at.get_or_insert_with(|| Instant::now() + reload::DEBOUNCE);
                }
                () = sleep_until(self.reload_at) => {
                    self.reload_at = None;
                    reload::request(&mut self.reloads, "file change");
                }
                (plan, prepared) = reload::next_plan(&mut self.reloads) => {
                    // A source directory replaced is watched again.
                    if let Some(w) = &mut self.watcher {
                        w.refresh();
                    }
                    return (plan, prepared);
                }
            }
        }
    }
}

/// The next change of a source; never resolves without a watcher.
async fn source_changed(watcher: &mut Option<SourceWatcher>) -> Option<()> {
    match watcher {
        Some(w) => w.changes.recv().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`; never resolves without one.
pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
