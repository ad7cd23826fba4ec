//! ss's habits, rewritten into tcptab's own command line before clap reads
//! it: `-E`, `-s` and `-K` as commands (also inside a bundle, `-tanE`, and
//! after other options, `-N ns -s`), options before a command name moved
//! after it (`tcptab -N ns summary`), and ss's options that are not
//! tcptab's own read ([`ss`]: other protocols dropped with a note when TCP
//! is asked too, `-A tcp`, `-f inet6` as `-6`, `-F FILE`).
//!
//! Which words are options and which are their values is read from the
//! command's own definition (clap's), so a value that begins with `-`
//! (`--between -20m -10m`, `--at -1d`) is never taken for a flag.

use std::ffi::OsString;

use clap::{Arg, Command};

mod ss;

/// The command line to parse, and what to say about it on stderr.
#[derive(Debug, PartialEq)]
pub struct Normalized {
    pub argv: Vec<OsString>,
    pub notes: Vec<String>,
}

/// One word of the command line, as the scan read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Word {
    /// A bundle of short flags (`-tanp`), with its letters.
    Shorts,
    /// A long option, or a short one with its value.
    Option,
    /// An option's value.
    Value,
    /// A word that is neither (a filter word, a command name).
    Positional,
    /// One of ss's options with a value that tcptab reads itself (`-A`,
    /// `-f`, `-F`, `-D` or their long forms; the value follows, or is
    /// after `=`).
    Ss,
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
    let ss = ss::read(&words, &mut kinds, &mut out)?;
    let notes = Vec::from_iter(ss.note);
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
    if let Some(filter) = ss.filter {
        // ss's `-F FILE`: the filter, where the command line has none.
        let typed = kinds.iter().enumerate().skip(1).any(|(i, k)| {
            matches!(k, Word::Positional | Word::Rest) && Some(i) != command_at && words[i] != "--"
        });
        if typed {
            return Err(
                "-F: a filter is in the file and on the command line: give one of them".into(),
            );
        }
        if !filter.is_empty() {
            rebuilt.push(filter);
        }
    }
    Ok(Normalized {
        argv: rebuilt.into_iter().map(OsString::from).collect(),
        notes,
    })
}

/// What each word is, from the options `cli` (and the command named)
/// define; ss's `-A`, `-f`, `-F` or `-D` in a bundle is split from it
/// (`-tAtcp`: `-t`, `-A`, `tcp`).
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
            let mode = ss::MODE_LONGS.iter().find(|(long, _)| *long == name);
            let takes = match (arg, mode) {
                (Some(arg), _) => values(arg),
                (None, _) if ss::VALUE_LONGS.contains(&name) => {
                    kinds[i] = Word::Ss;
                    1
                }
                // ss's `--summary`: as its `-s`, where no command was
                // named before it.
                (None, Some((_, letter))) if !inline && std::ptr::eq(context, cli) => {
                    kinds[i] = Word::Shorts;
                    words[i] = format!("-{letter}");
                    0
                }
                (None, _) => 0,
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
                    None if ss::VALUE_SHORTS.contains(c) => {
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
                i = split_valued(&mut words, &mut kinds, i, at);
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

/// Split ss's valued option (`-A`, `-f`, `-F`, `-D`) at byte `at` of
/// bundle `i` into the letters before it, the option and its value (the
/// rest of the bundle, or the next word); the index of the last of them.
fn split_valued(words: &mut Vec<String>, kinds: &mut Vec<Word>, i: usize, at: usize) -> usize {
    let w = words[i].clone();
    let (flags, rest) = w.split_at(at);
    let letter = rest.chars().next().unwrap_or('A');
    let value = &rest[letter.len_utf8()..];
    let mut parts = Vec::new();
    if flags.len() > 1 {
        parts.push((flags.to_string(), Word::Shorts));
    }
    parts.push((format!("-{letter}"), Word::Ss));
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
        // Families as -4 and -6, in a bundle too; the last one named, as
        // in ss.
        assert_eq!(words("-f inet -l"), "-4 -l");
        assert_eq!(words("-tlf inet6"), "-tl -6");
        assert_eq!(words("--family=inet6 -s"), "summary -6");
        assert_eq!(words("-f inet -f inet6 -l"), "-6 -l");
        assert_eq!(words("-f inet6 -l -f inet"), "-4 -l");
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
    fn ss_s_filter_file_long_modes_and_what_is_not_read() {
        let dir = std::env::temp_dir().join(format!("tcptab-argv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("filter");
        std::fs::write(&file, "state listening\n  sport = :22\n").unwrap();
        let f = file.display();
        // Each line of the file is a word of the filter.
        assert_eq!(
            words(&format!("-tnF {f}")),
            "-tn state listening sport = :22"
        );
        assert_eq!(
            words(&format!("--filter={f} -s")),
            "summary state listening sport = :22"
        );
        assert_eq!(
            words(&format!("-H -F {f} -p")),
            "-H -p state listening sport = :22"
        );
        let e = run(&format!("-F {f} dport = :80")).unwrap_err();
        assert!(e.contains("in the file and on the command line"), "{e}");
        let e = run(&format!("-F {f}.missing")).unwrap_err();
        assert!(
            e.starts_with(&format!("-F {f}.missing: No such file")),
            "{e}"
        );
        let e = run("-F /dev/zero").unwrap_err();
        assert_eq!(e, "-F /dev/zero: more than 1 MiB, which is no filter");
        let e = run(&format!("-F {}", dir.display())).unwrap_err();
        assert!(e.starts_with(&format!("-F {}: ", dir.display())), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        // The long forms of ss's modes, where no command is named.
        assert_eq!(words("--summary -4"), "summary -4");
        assert_eq!(words("--events"), "watch --events=closed");
        assert_eq!(words("--kill dport = :1"), "kill dport = :1");
        assert_eq!(words("list --summary"), "list --summary");
        assert_eq!(words("watch --events closed"), "watch --events closed");
        // What tcptab does not read: one line naming it, and ss.
        for (line, said) in [
            ("-tanpT", "-T: tcptab does not read threads"),
            ("-Z", "-Z: tcptab does not read SELinux contexts; use ss -Z"),
            ("--contexts", "--contexts: tcptab does not read SELinux"),
            ("-b", "-b: tcptab does not read sockets' BPF filters"),
            ("--tos", "--tos: tcptab does not read TOS"),
            (
                "-D dump",
                "-D: tcptab does not dump inet_diag's raw messages",
            ),
        ] {
            let e = run(line).unwrap_err();
            assert!(e.starts_with(said), "{line}: {e}");
        }
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
