//! The `tcptab` command: argument parsing and exit codes. Each subcommand
//! lives in `cmd/`, each output format in `output/`.

mod cli;
mod cmd;
mod exit;
mod output;
mod query;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        Some(cli::Command::List(args)) => cmd::list::run(&args),
        Some(cli::Command::Summary(args)) => cmd::summary::run(&args),
        Some(cli::Command::Explain(args)) => cmd::explain::run(&args),
        Some(cli::Command::Watch(args)) => cmd::watch::run(&args),
        Some(cli::Command::Serve(args)) => cmd::serve::run(&args),
        None => cmd::list::run(&cli.list),
    };
    exit::report(result)
}
