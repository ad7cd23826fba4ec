//! ss's habits, rewritten into tcptab's own command line before clap reads
//! it: `-E`, `-s` and `-K` as commands (also inside a bundle, `-tanE`, and
//! after other options, `-N ns -s`), options before a command name moved
//! after it (`tcptab -N ns summary`), other protocols (`-u` in `-tulpn`,
//! `--udp`, `-A udp`) dropped with a note when TCP is asked too, and ss's
//! socket tables and families read (`-A tcp`, `-f inet6` as `-6`).
//!
//! Which words are options and which are their values is read from the
//! command's own definition (clap's), so a value that begins with `-`
//! (`--between -20m -10m`, `--at -1d`) is never taken for a flag.

use std::ffi::OsString;

use clap::{Arg, Command};

/// What ss's letters for other protocols ask for (`-u` UDP, `-w` raw,
/// `-x` UNIX, `-S` SCTP, `-d` DCCP, `-0` packet, `-M` MPTCP).
const OTHER_PROTOCOLS: &str = "uwxSd0M";

/// ss's long options for other protocols.
const OTHER_LONGS: [&str; 10] = [
    "udp", "raw", "unix", "packet", "sctp", "dccp", "mptcp", "vsock", "tipc", "xdp",
];

/// ss's options that name socket tables or families, with a value:
/// `-A QUERY` (`--query`, `--socket`) and `-f FAMILY` (`--family`).
const TABLE_SHORTS: &str = "Af";
const TABLE_LONGS: [&str; 3] = ["query", "socket", "family"];

/// ss's socket tables (`-A`) other than TCP's.
const OTHER_TABLES: [&str; 16] = [
    "mptcp",
    "udp",
    "raw",
    "unix",
    "unix_dgram",
    "unix_stream",
    "unix_seqpacket",
    "packet",
    "packet_raw",
    "packet_dgram",
    "netlink",
    "vsock",
    "vsock_stream",
    "vsock_dgram",
    "tipc",
    "xdp",
];

/// ss's families (`-f`) other than inet and inet6.
const OTHER_FAMILIES: [&str; 6] = ["unix", "link", "netlink", "vsock", "tipc", "xdp"];

/// The command line to parse, and what to say about it on stderr.
#[derive(Debug, PartialEq)]
pub struct Normalized {
    pub argv: Vec<OsString>,
    pub notes: Vec<String>,
}

/// One word of the command line, as the scan read it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Word {
    /// A bundle of short flags (`-tanp`), with its letters.
    Shorts,
    /// A long option, or a short one with its value.
    Option,
    /// An option's value.
    Value,
    /// A word that is neither (a filter word, a command name).
    Positional,
    /// ss's `-A`, `-f` or their long forms (its value follows, or is
    /// after `=`).
    Table,
    /// `--` and what follows.
    Rest,
}

/// Rewrite `argv` (see the module documentation), or say why it cannot be
/// run. `cli` is built here (once: the parse that follows uses it as it
/// is).
pub fn normalize(cli: &mut Command, argv: Vec<OsString>) -> Result<Normalized, String> {
    cli.build();
    let cli = &*cli;
    let words: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let (words, mut kinds) = scan(cli, words);
    let mut out: Vec<String> = words.clone();
    let notes = Vec::from_iter(protocols(&words, &mut kinds, &mut out)?);
    // ss's modes: -E, -s, -K, where no command was named.
    let command_at = kinds
        .iter()
        .zip(&words)
        .position(|(k, w)| *k == Word::Positional && cli.find_subcommand(w).is_some());
    let mut mode: Option<char> = None;
    if command_at.is_none() {
        for (w, k) in out.iter_mut().zip(&kinds) {
            if *k != Word::Shorts {
                continue;
            }
            for m in ['E', 's', 'K'] {
                if w[1..].contains(m) {
                    if let Some(other) = mode.filter(|o| *o != m) {
                        return Err(format!(
                            "-{other} and -{m} cannot be combined (one of: -E watch closes, -s summary, -K kill)"
                        ));
                    }
                    mode = Some(m);
                    *w = w.replace(m, "");
                }
            }
        }
    }
    let mut rebuilt: Vec<String> = Vec::with_capacity(out.len() + 2);
    rebuilt.push(out[0].clone());
    let kept = |w: &String, k: &Word| !(*k == Word::Shorts && w == "-");
    match (mode, command_at) {
        (Some(m), _) => {
            match m {
                'E' => rebuilt.extend(["watch".to_string(), "--events=closed".to_string()]),
                's' => rebuilt.push("summary".into()),
                _ => rebuilt.push("kill".into()),
            }
            rebuilt.extend(
                out.iter()
                    .zip(&kinds)
                    .skip(1)
                    .filter(|(w, k)| kept(w, k))
                    .map(|(w, _)| w.clone()),
            );
        }
        (None, Some(at)) if at > 1 => {
            // Options before the command's name go after it.
            rebuilt.push(out[at].clone());
            for (i, (w, k)) in out.iter().zip(&kinds).enumerate().skip(1) {
                if i != at && kept(w, k) {
                    rebuilt.push(w.clone());
                }
            }
        }
        _ => rebuilt.extend(
            out.iter()
                .zip(&kinds)
                .skip(1)
                .filter(|(w, k)| kept(w, k))
                .map(|(w, _)| w.clone()),
        ),
    }
    Ok(Normalized {
        argv: rebuilt.into_iter().map(OsString::from).collect(),
        notes,
    })
}

/// Other protocols, tables and families (`-u`, `--udp`, `-A udp`, `-f
/// unix`): dropped from `out` when TCP is asked too (the note that says
/// so), refused otherwise; ss's `-A tcp` dropped, `-f inet` as `-4`.
fn protocols(
    words: &[String],
    kinds: &mut [Word],
    out: &mut [String],
) -> Result<Option<String>, String> {
    let tables = Tables::read(words, kinds)?;
    let tcp = tables.tcp
        || words.iter().zip(kinds.iter()).any(|(w, k)| {
            (*k == Word::Shorts && w.contains('t')) || (*k == Word::Option && w == "--tcp")
        });
    let mut others = tables.others;
    let mut family = tables.family;
    let was = kinds.to_vec();
    for (i, w) in out.iter_mut().enumerate() {
        match was[i] {
            Word::Shorts => {
                others.extend(
                    w[1..]
                        .chars()
                        .filter(|c| OTHER_PROTOCOLS.contains(*c))
                        .map(|c| format!("-{c}")),
                );
                let kept: String = w[1..]
                    .chars()
                    .filter(|c| !OTHER_PROTOCOLS.contains(*c))
                    .collect();
                *w = format!("-{kept}");
            }
            Word::Option
                if OTHER_LONGS
                    .iter()
                    .any(|l| w[..].strip_prefix("--") == Some(l)) =>
            {
                others.push(w.clone());
                (*w, kinds[i]) = ("-".into(), Word::Shorts);
            }
            // ss's tables and families: read above; the first family's
            // word says it as tcptab's -4 or -6.
            Word::Table | Word::Value if was[i] == Word::Table || was[i - 1] == Word::Table => {
                let flag = (was[i] == Word::Table && is_family(w))
                    .then(|| family.take())
                    .flatten();
                (*w, kinds[i]) = (flag.unwrap_or("-").into(), Word::Shorts);
            }
            _ => {}
        }
    }
    if let Some(first) = others.first() {
        if !tcp {
            return Err(format!(
                "{first}: tcptab reads TCP sockets only (for UDP, raw, UNIX, packet or other sockets, use ss)"
            ));
        }
        others.dedup();
        return Ok(Some(format!(
            "tcptab: {}: tcptab reads TCP sockets only; other protocols are not listed (use ss for them)",
            others.join(", ")
        )));
    }
    Ok(None)
}

/// What ss's `-A` and `-f` options ask for.
#[derive(Debug, Default)]
struct Tables {
    /// TCP's table was named (`-A tcp`, `-A inet`, `-A all`).
    tcp: bool,
    /// Other tables and families, as typed (`-A udp`, `-f unix`).
    others: Vec<String>,
    /// tcptab's flag for the one family named (`-f inet`: `-4`).
    family: Option<&'static str>,
}

fn is_family(option: &str) -> bool {
    option == "-f" || option.starts_with("--family")
}

impl Tables {
    fn read(words: &[String], kinds: &[Word]) -> Result<Tables, String> {
        let mut tables = Tables::default();
        let (mut v4, mut v6) = (false, false);
        for (i, w) in words.iter().enumerate() {
            if kinds[i] != Word::Table {
                continue;
            }
            let (option, value) = match w.split_once('=') {
                Some((option, value)) => (option, Some(value)),
                None => (
                    w.as_str(),
                    words
                        .get(i + 1)
                        .filter(|_| kinds[i + 1] == Word::Value)
                        .map(String::as_str),
                ),
            };
            if is_family(option) {
                match value {
                    Some("inet") => v4 = true,
                    Some("inet6") => v6 = true,
                    Some(other) if OTHER_FAMILIES.contains(&other) => {
                        tables.others.push(format!("{option} {other}"));
                    }
                    Some(other) => return Err(format!(
                        "{option} {other}: not a family: tcptab reads inet (IPv4, as -4) and inet6 (IPv6, as -6)"
                    )),
                    None => return Err(format!(
                        "{option}: a family is expected: inet (IPv4, as -4) or inet6 (IPv6, as -6)"
                    )),
                }
                continue;
            }
            let Some(value) = value else {
                return Err(format!(
                    "{option}: a socket table is expected: tcptab reads tcp (ss's other tables are read by ss)"
                ));
            };
            for table in value.split(',') {
                match table {
                    "tcp" => tables.tcp = true,
                    "all" | "inet" => {
                        tables.tcp = true;
                        tables.others.push(format!("{option} {table}"));
                    }
                    t if OTHER_TABLES.contains(&t) => tables.others.push(format!("{option} {t}")),
                    t => {
                        return Err(format!(
                            "{option} {t}: not a socket table ss knows (tcp, or all, inet, {})",
                            OTHER_TABLES.join(", ")
                        ))
                    }
                }
            }
        }
        tables.family = match (v4, v6) {
            (true, false) => Some("-4"),
            (false, true) => Some("-6"),
            _ => None,
        };
        Ok(tables)
    }
}

/// What each word is, from the options `cli` (and the command named)
/// define; ss's `-A` or `-f` in a bundle is split from it (`-tAtcp`:
/// `-t`, `-A`, `tcp`).
fn scan(cli: &Command, mut words: Vec<String>) -> (Vec<String>, Vec<Word>) {
    let mut kinds = vec![Word::Positional; words.len()];
    let mut context = cli;
    let mut i = 1;
    while i < words.len() {
        let w = &words[i];
        if w == "--" {
            for k in &mut kinds[i..] {
                *k = Word::Rest;
            }
            break;
        }
        if let Some(long) = w.strip_prefix("--") {
            kinds[i] = Word::Option;
            let (name, inline) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            let arg = find(context, |a| {
                a.get_long() == Some(name)
                    || a.get_all_aliases().is_some_and(|all| all.contains(&name))
            })
            .or_else(|| find(cli, |a| a.get_long() == Some(name)));
            let takes = match arg {
                Some(arg) => values(arg),
                None if TABLE_LONGS.contains(&name) => {
                    kinds[i] = Word::Table;
                    1
                }
                None => 0,
            };
            if !inline {
                for k in kinds.iter_mut().skip(i + 1).take(takes) {
                    *k = Word::Value;
                }
                i += takes;
            }
        } else if w.len() > 1 && w.starts_with('-') {
            kinds[i] = Word::Shorts;
            let mut table_at = None;
            for (at, c) in w[1..].char_indices() {
                let takes = match find(context, |a| a.get_short() == Some(c)) {
                    Some(arg) => values(arg),
                    None if TABLE_SHORTS.contains(c) => {
                        table_at = Some(1 + at);
                        break;
                    }
                    None => continue,
                };
                if takes > 0 {
                    kinds[i] = Word::Option;
                    // Its value is the rest of the bundle, or what follows.
                    if at + c.len_utf8() == w.len() - 1 {
                        for k in kinds.iter_mut().skip(i + 1).take(takes) {
                            *k = Word::Value;
                        }
                        i += takes;
                    }
                    break;
                }
            }
            if let Some(at) = table_at {
                i = split_table(&mut words, &mut kinds, i, at);
            }
        } else if std::ptr::eq(context, cli) {
            if let Some(sub) = cli.find_subcommand(w) {
                context = sub;
            }
        }
        i += 1;
    }
    (words, kinds)
}

/// Split ss's `-A`/`-f` at byte `at` of bundle `i` into the letters
/// before it, the option and its value (the rest of the bundle, or the
/// next word); the index of the last of them.
fn split_table(words: &mut Vec<String>, kinds: &mut Vec<Word>, i: usize, at: usize) -> usize {
    let w = words[i].clone();
    let (flags, rest) = w.split_at(at);
    let letter = rest.chars().next().unwrap_or('A');
    let value = &rest[letter.len_utf8()..];
    let mut parts = Vec::new();
    if flags.len() > 1 {
        parts.push((flags.to_string(), Word::Shorts));
    }
    parts.push((format!("-{letter}"), Word::Table));
    if !value.is_empty() {
        parts.push((value.to_string(), Word::Value));
    }
    let n = parts.len();
    let (new_words, new_kinds): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
    words.splice(i..=i, new_words);
    kinds.splice(i..=i, new_kinds);
    let last = i + n - 1;
    if value.is_empty() && words.get(last + 1).is_some_and(|w| w != "--") {
        kinds[last + 1] = Word::Value;
        return last + 1;
    }
    last
}

fn find(cmd: &Command, test: impl Fn(&Arg) -> bool) -> Option<&Arg> {
    cmd.get_arguments().find(|a| !a.is_positional() && test(a))
}

/// How many words an option takes after it.
fn values(arg: &Arg) -> usize {
    if !arg.get_action().takes_values() {
        return 0;
    }
    arg.get_num_args().map_or(1, |r| r.min_values().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn run(line: &str) -> Result<Normalized, String> {
        let argv = std::iter::once("tcptab")
            .chain(line.split_whitespace())
            .map(OsString::from)
            .collect();
        normalize(&mut crate::cli::Cli::command(), argv)
    }

    fn words(line: &str) -> String {
        let n = run(line).unwrap();
        n.argv[1..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn values_that_begin_with_a_dash_are_values() {
        assert_eq!(
            words("history --db h.db --between -20m -10m"),
            "history --db h.db --between -20m -10m"
        );
        for t in ["-30s", "-10m", "-1d", "-1w", "-20m", "-0s"] {
            assert_eq!(
                words(&format!("history --db h.db --at {t}")),
                format!("history --db h.db --at {t}")
            );
        }
    }

    #[test]
    fn ss_modes_in_bundles_and_after_options() {
        assert_eq!(words("-tanE"), "watch --events=closed -tan");
        assert_eq!(words("-N ns -E"), "watch --events=closed -N ns");
        assert_eq!(words("-N ns -s"), "summary -N ns");
        assert_eq!(words("-s -N ns"), "summary -N ns");
        assert_eq!(words("-K dport = :80"), "kill dport = :80");
        assert_eq!(words("-N ns summary"), "summary -N ns");
        assert!(run("-E -s").unwrap_err().contains("cannot be combined"));
    }

    #[test]
    fn other_protocols_are_dropped_beside_tcp_and_refused_alone() {
        let n = run("-tulpn").unwrap();
        assert_eq!(words("-tulpn"), "-tlpn");
        assert_eq!(n.notes.len(), 1, "{:?}", n.notes);
        assert!(n.notes[0].contains("-u"));
        assert_eq!(words("-tunap"), "-tnap");
        let e = run("-ua").unwrap_err();
        assert!(e.starts_with("-u: tcptab reads TCP sockets only"), "{e}");
        let e = run("-x").unwrap_err();
        assert!(e.starts_with("-x:"), "{e}");
    }

    #[test]
    fn ss_tables_and_families_are_read() {
        // TCP's table: nothing to say.
        for line in ["-A tcp -l", "-Atcp -l", "--query=tcp -l", "--socket tcp -l"] {
            let n = run(line).unwrap();
            assert_eq!(words(line), "-l", "{line}");
            assert!(n.notes.is_empty(), "{line}: {:?}", n.notes);
        }
        assert_eq!(words("-tlA tcp"), "-tl");
        // Families as -4 and -6, in a bundle too; both are every socket.
        assert_eq!(words("-f inet -l"), "-4 -l");
        assert_eq!(words("-tlf inet6"), "-tl -6");
        assert_eq!(words("--family=inet6 -s"), "summary -6");
        assert_eq!(words("-f inet -f inet6 -l"), "-l");
        assert_eq!(words("-N ns -f inet6 -s"), "summary -N ns -6");
        // Tables with others: TCP's part, and a note naming the rest.
        for (line, named, left) in [
            ("-A inet -l", "-A inet", "-l"),
            ("-A tcp,udp -l", "-A udp", "-l"),
            ("-t --udp -l", "--udp", "-t -l"),
            ("-t -f unix -l", "-f unix", "-t -l"),
        ] {
            let n = run(line).unwrap();
            assert_eq!(words(line), left, "{line}");
            assert_eq!(n.notes.len(), 1, "{line}: {:?}", n.notes);
            assert!(
                n.notes[0].starts_with(&format!("tcptab: {named}: ")),
                "{:?}",
                n.notes
            );
        }
        // Others alone, unknown names and missing values: one line each.
        for (line, said) in [
            ("-A udp", "-A udp: tcptab reads TCP sockets only"),
            ("--udp", "--udp: tcptab reads TCP sockets only"),
            ("-M", "-M: tcptab reads TCP sockets only"),
            ("-f unix", "-f unix: tcptab reads TCP sockets only"),
            ("-A bogus", "-A bogus: not a socket table ss knows"),
            ("-f bogus", "-f bogus: not a family"),
            ("-A", "-A: a socket table is expected"),
            ("-l -f", "-f: a family is expected"),
        ] {
            let e = run(line).unwrap_err();
            assert!(e.starts_with(said), "{line}: {e}");
        }
        // After `--`, and as an option's value, they are not ss's.
        assert_eq!(words("list -- -A udp"), "list -- -A udp");
        assert_eq!(words("history --db -f"), "history --db -f");
    }

    #[test]
    fn nothing_else_changes() {
        for line in [
            "list -tanp",
            "-tlnp",
            "state established dport = :443",
            "watch -p --format jsonl",
            "list --sport 80 -- -u",
        ] {
            assert_eq!(words(line), line);
        }
    }
}
