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

/// A first word that is not a command but looks like one mistyped (`lsit`):
/// said so, rather than read as a filter word.
fn mistyped_command(cli: &clap::Command, argv: &[std::ffi::OsString]) -> Option<String> {
    let commands: Vec<&str> = cli
        .get_subcommands()
        .map(|c| c.get_name())
        .chain(["help"])
        .collect();
    let first = argv.get(1)?.to_str()?;
    if first.starts_with('-') || commands.contains(&first) {
        return None;
    }
    // Words of the filter language are not mistyped commands.
    const FILTER_WORDS: [&str; 14] = [
        "state",
        "exclude",
        "excl",
        "sport",
        "dport",
        "src",
        "dst",
        "dev",
        "autobound",
        "not",
        "and",
        "or",
        "(",
        "!",
    ];
    if FILTER_WORDS.contains(&first) {
        return None;
    }
    let close = commands
        .iter()
        .find(|c| edit_distance(first, c) <= 2 && first.len() >= 3)?;
    Some(format!(
        "unknown command '{}': did you mean '{close}'? (see `tcptab --help`)",
        tcptab::filter::excerpt(first)
    ))
}

/// Levenshtein distance, for the did-you-mean.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

mod argv;
mod cli;
mod cmd;
mod exit;
mod output;
mod report;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    // ss's habits (-E, -s, -K, options before the command, other
    // protocols' letters), rewritten into tcptab's command line.
    // The command line's description, built once for the three readings.
    let mut command = cli::Cli::command();
    let argv = match argv::normalize(&mut command, std::env::args_os().collect()) {
        Ok(n) => {
            for line in &n.notes {
                note!("{line}");
            }
            n.argv
        }
        Err(message) => {
            note!("error: {message}");
            return ExitCode::from(exit::ERROR);
        }
    };
    if let Some(message) = mistyped_command(&command, &argv) {
        note!("error: {message}");
        return ExitCode::from(exit::ERROR);
    }
    // As `Cli::parse_from`, without building the description again.
    let matches = command.get_matches_from(argv);
    let cli = cli::Cli::from_arg_matches(&matches)
        .unwrap_or_else(|e| e.format(&mut cli::Cli::command()).exit());
    let result = match cli.command {
        Some(cli::Command::List(args)) => cmd::list::run(&args),
        Some(cli::Command::Summary(args)) => cmd::summary::run(&args),
        Some(cli::Command::Explain(args)) => cmd::explain::run(&args),
        Some(cli::Command::Watch(args)) => cmd::watch::run(&args),
        Some(cli::Command::Top(args)) => cmd::top::run(&args),
        Some(cli::Command::Record(args)) => cmd::record::run(&args),
        Some(cli::Command::History(args)) => cmd::history::run(&args),
        Some(cli::Command::Serve(args)) => cmd::serve::run(&args),
        Some(cli::Command::Kill(args)) => cmd::kill::run(&args),
        Some(cli::Command::Audit(args)) => cmd::audit::run(&args),
        Some(cli::Command::Schema(args)) => cmd::schema::run(&args),
        Some(cli::Command::Completions(args)) => cmd::install::completions(args.shell),
        Some(cli::Command::Man(args)) => cmd::install::man(&args),
        None => cmd::list::run(&cli.list),
    };
    exit::report(result)
}
