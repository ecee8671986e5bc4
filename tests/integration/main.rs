//! End-to-end tests: the real `jobrun` binary on files in a temporary directory.
//! One integration binary (fast to link), one module per area.

mod harness;

mod cli;
mod clock_jumps;
mod daemon;
mod health;
mod incidents;
mod layout;
mod limits;
mod pid1;
mod recovery;
mod reload;
mod reproducers;
mod resources;
mod source_trust;
mod sources;
mod state_dir;
mod triggers;
