//! `tcptab completions SHELL` and `tcptab man`: what a package or a user
//! installs beside the binary, generated from the command line's own
//! definition (clap_complete, clap_mangen), so they never drift from it.

use std::io::{self, Write};

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut command = Cli::command();
    let mut out = io::stdout().lock();
    clap_complete::generate(shell, &mut command, "tcptab", &mut out);
    out.flush().context("writing output")
}

pub fn man() -> Result<()> {
    let mut out = io::stdout().lock();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .context("writing the manual page")?;
    out.flush().context("writing output")
}
