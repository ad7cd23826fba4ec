//! ss's habits, rewritten into tcptab's own command line before clap reads
//! it: `-E`, `-s` and `-K` as commands (also inside a bundle, `-tanE`, and
//! after other options, `-N ns -s`), options before a command name moved
//! after it (`tcptab -N ns summary`), and other protocols' letters
//! (`-u` in `-tulpn`) dropped with a note when TCP is asked too.
//!
//! Which words are options and which are their values is read from the
//! command's own definition (clap's), so a value that begins with `-`
//! (`--between -20m -10m`, `--at -1d`) is never taken for a flag.

use std::ffi::OsString;

use clap::{Arg, Command};

/// What ss's letters for other protocols ask for (`-u` UDP, `-w` raw,
/// `-x` UNIX, `-S` SCTP, `-d` DCCP, `-0` packet, `-A` a socket table).
const OTHER_PROTOCOLS: &str = "uwxSd0A";

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
    let kinds = scan(cli, &words);
    let mut notes = Vec::new();
    let mut out: Vec<String> = words.clone();
    // Other protocols: dropped when TCP is asked too, refused otherwise.
    let tcp = words.iter().zip(&kinds).any(|(w, k)| {
        (*k == Word::Shorts && w.contains('t')) || (*k == Word::Option && w == "--tcp")
    });
    let mut others = String::new();
    for (w, k) in out.iter_mut().zip(&kinds) {
        if *k != Word::Shorts {
            continue;
        }
        let kept: String = w[1..]
            .chars()
            .filter(|c| !OTHER_PROTOCOLS.contains(*c))
            .collect();
        others.extend(w[1..].chars().filter(|c| OTHER_PROTOCOLS.contains(*c)));
        *w = format!("-{kept}");
    }
    if let Some(c) = others.chars().next() {
        if !tcp {
            return Err(format!(
                "-{c}: tcptab reads TCP sockets only (for UDP, raw, UNIX, packet or other sockets, use ss)"
            ));
        }
        let mut letters: Vec<char> = others.chars().collect();
        letters.dedup();
        let letters: String = letters
            .iter()
            .map(|c| format!("-{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        notes.push(format!(
            "tcptab: {letters}: tcptab reads TCP sockets only; other protocols are not listed (use ss for them)"
        ));
    }
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

/// What each word is, from the options `cli` (and the command named)
/// define.
fn scan(cli: &Command, words: &[String]) -> Vec<Word> {
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
            let takes = find(context, |a| {
                a.get_long() == Some(name)
                    || a.get_all_aliases().is_some_and(|all| all.contains(&name))
            })
            .or_else(|| find(cli, |a| a.get_long() == Some(name)))
            .map_or(0, values);
            if !inline {
                for k in kinds.iter_mut().skip(i + 1).take(takes) {
                    *k = Word::Value;
                }
                i += takes;
            }
        } else if w.len() > 1 && w.starts_with('-') {
            kinds[i] = Word::Shorts;
            for (at, c) in w[1..].char_indices() {
                let Some(arg) = find(context, |a| a.get_short() == Some(c)) else {
                    continue;
                };
                let takes = values(arg);
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
        } else if std::ptr::eq(context, cli) {
            if let Some(sub) = cli.find_subcommand(w) {
                context = sub;
            }
        }
        i += 1;
    }
    kinds
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
