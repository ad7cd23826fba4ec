//! The `tcptab` command: argument parsing and exit codes. Each subcommand
//! lives in `cmd/`, each output format in `output/`.

/// `eprintln!` that never panics: a note on stderr is lost, not fatal, when
/// stderr is closed (a daemon's reader gone, `2>&-`). `eprintln!` panics on
/// a failed write, which would kill `serve`'s collection task.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod cli;
mod cmd;
mod exit;
mod output;
mod query;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // ss's habit: `tcptab -K FILTER` is `tcptab kill FILTER` (a dry run
    // unless --yes, like the command itself).
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "-K") {
        argv[1] = "kill".into();
    }
    let cli = cli::Cli::parse_from(argv);
    let result = match cli.command {
        Some(cli::Command::List(args)) => cmd::list::run(&args),
        Some(cli::Command::Summary(args)) => cmd::summary::run(&args),
        Some(cli::Command::Explain(args)) => cmd::explain::run(&args),
        Some(cli::Command::Watch(args)) => cmd::watch::run(&args),
        Some(cli::Command::Serve(args)) => cmd::serve::run(&args),
        Some(cli::Command::Kill(args)) => cmd::kill::run(&args),
        Some(cli::Command::Schema(args)) => cmd::schema::run(&args),
        Some(cli::Command::Completions(args)) => cmd::install::completions(args.shell),
        Some(cli::Command::Man) => cmd::install::man(),
        None => cmd::list::run(&cli.list),
    };
    exit::report(result)
}
