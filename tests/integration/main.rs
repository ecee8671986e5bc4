//! End-to-end tests: the real `jobrun` binary on files in a temporary directory.
//! One integration binary (fast to link), one module per area.

mod backends;
mod harness;

mod check_json;
mod cli;
mod clock_jumps;
mod completions;
mod daemon;
mod examples;
mod fleet;
mod fuzz_findings;
mod fuzz_smoke;
mod health;
mod http;
mod incidents;
mod jitter;
mod layout;
mod limits;
mod migration;
mod migration_errors;
mod notify;
mod pg_cluster;
mod pid1;
mod postgres;
mod recovery;
mod reload;
mod reproducers;
mod resources;
mod source_trust;
mod sources;
mod state_dir;
mod static_build;
mod supercronic;
mod triggers;
