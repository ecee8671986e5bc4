//! `jobrun man [SUBCOMMAND]`: the roff man page, generated from the
//! command-line definition itself (clap_mangen), written to stdout: jobrun(1),
//! or with a subcommand the jobrun-SUBCOMMAND(1) page its SEE ALSO names.
//! Knows only the clap definition; no sources, no state, no clock (the page
//! carries no date, so builds are reproducible).

use std::io::Write;

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::{Args, EXIT_OK};

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write the page of this subcommand (jobrun-SUBCOMMAND(1)) instead of jobrun(1).
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
}

pub fn run(a: &ManArgs, out: &mut dyn Write) -> Result<i32> {
    let mut cmd = Args::command();
    // Building fills in the subcommands' display names ("jobrun-check"),
    // which name their pages.
    cmd.build();
    let cmd = match a.subcommand.as_deref() {
        None => cmd,
        Some(name) => {
            let Some(sub) = cmd.find_subcommand(name) else {
                let names: Vec<&str> = cmd
                    .get_subcommands()
                    .map(clap::Command::get_name)
                    .filter(|n| *n != "help")
                    .collect();
                anyhow::bail!("no subcommand {name:?}; name one of: {}", names.join(", "));
            };
            sub.clone()
        }
    };
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .context("rendering the man page")?;
    out.write_all(&page).context("writing the man page")?;
    Ok(EXIT_OK)
}
