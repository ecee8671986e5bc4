//! `jobrun completions SHELL`: a shell completion script generated from the
//! command-line definition itself (clap_complete), so it never drifts from the
//! real options and subcommands. Knows only the clap definition; no sources,
//! no state.

use std::io::Write;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use super::{Args, EXIT_OK};

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for. Load it with e.g.
    /// `source <(jobrun completions bash)`, or save it where the shell looks
    /// for completions.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(a: &CompletionsArgs, out: &mut dyn Write) -> Result<i32> {
    let mut cmd = Args::command();
    // clap_complete panics when its writer fails; generate into memory so a
    // closed pipe (`jobrun completions bash | head`) is an ordinary io error.
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "jobrun", &mut script);
    out.write_all(&script)
        .context("writing the completion script")?;
    Ok(EXIT_OK)
}
