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

/// An ss flag for another protocol (`-u`, `-w`, `-x`, `-S`, `-d`, `-0`,
/// `-A`), alone or in a bundle such as `-tua`, before any `--`.
fn other_protocol(argv: &[std::ffi::OsString]) -> Option<String> {
    for arg in argv.iter().skip(1).filter_map(|a| a.to_str()) {
        if arg == "--" {
            break;
        }
        let Some(bundle) = arg.strip_prefix('-').filter(|b| !b.starts_with('-')) else {
            continue;
        };
        if !bundle.chars().all(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        if let Some(c) = bundle.chars().find(|c| "uwxSd0A".contains(*c)) {
            return Some(format!("-{c}"));
        }
    }
    None
}

/// A first word that is not a command but looks like one mistyped (`lsit`):
/// said so, rather than read as a filter word.
fn mistyped_command(argv: &[std::ffi::OsString]) -> Option<String> {
    const COMMANDS: [&str; 13] = [
        "list",
        "top",
        "record",
        "history",
        "summary",
        "explain",
        "watch",
        "kill",
        "serve",
        "schema",
        "completions",
        "man",
        "help",
    ];
    let first = argv.get(1)?.to_str()?;
    if first.starts_with('-') || COMMANDS.contains(&first) {
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
    let close = COMMANDS
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
    match argv.get(1).and_then(|a| a.to_str()) {
        Some("-K") => argv[1] = "kill".into(),
        // ss's -s: the summary.
        Some("-s") => argv[1] = "summary".into(),
        // ss's -E: the sockets that close, as they close.
        Some("-E") => {
            argv[1] = "watch".into();
            argv.insert(2, "--events=closed".into());
        }
        _ => {}
    }
    if let Some(flag) = other_protocol(&argv) {
        note!("error: {flag}: tcptab reads TCP sockets only (for UDP, raw, UNIX, packet or other sockets, use ss)");
        return ExitCode::from(exit::ERROR);
    }
    if let Some(message) = mistyped_command(&argv) {
        note!("error: {message}");
        return ExitCode::from(exit::ERROR);
    }
    let cli = cli::Cli::parse_from(argv);
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
        Some(cli::Command::Schema(args)) => cmd::schema::run(&args),
        Some(cli::Command::Completions(args)) => cmd::install::completions(args.shell),
        Some(cli::Command::Man) => cmd::install::man(),
        None => cmd::list::run(&cli.list),
    };
    exit::report(result)
}
