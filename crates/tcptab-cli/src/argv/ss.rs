//! ss's options that tcptab does not define as its own: other protocols
//! (`-u`, `--udp`, `-A udp`, `-f unix`), socket tables and families
//! (`-A tcp`, `-f inet6`), the filter from a file (`-F FILE`), the long
//! forms of its modes (`--summary`), and what tcptab does not read (`-Z`,
//! `-T`, ...), each said in one line.

use super::Word;

/// What ss's letters for other protocols ask for (`-u` UDP, `-w` raw,
/// `-x` UNIX, `-S` SCTP, `-d` DCCP, `-0` packet, `-M` MPTCP).
const OTHER_PROTOCOLS: &str = "uwxSd0M";

/// ss's long options for other protocols.
const OTHER_LONGS: [&str; 10] = [
    "udp", "raw", "unix", "packet", "sctp", "dccp", "mptcp", "vsock", "tipc", "xdp",
];

/// ss's options with a value that tcptab reads itself: `-A QUERY`
/// (`--query`, `--socket`), `-f FAMILY` (`--family`), `-F FILE`
/// (`--filter`) and `-D FILE` (`--diag`). None is one of tcptab's own
/// (the scan asks the command's definition first).
pub(super) const VALUE_SHORTS: &str = "AfFD";
pub(super) const VALUE_LONGS: [&str; 5] = ["query", "socket", "family", "filter", "diag"];

/// The long forms of ss's modes, as their letters.
pub(super) const MODE_LONGS: [(&str, char); 3] = [("summary", 's'), ("events", 'E'), ("kill", 'K')];

/// ss's socket tables (`-A`) other than TCP's.
const OTHER_TABLES: [&str; 18] = [
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
    "dccp",
    "sctp",
    "vsock",
    "vsock_stream",
    "vsock_dgram",
    "tipc",
    "xdp",
];

/// ss's families (`-f`) other than inet and inet6.
const OTHER_FAMILIES: [&str; 6] = ["unix", "link", "netlink", "vsock", "tipc", "xdp"];

/// ss's options for what tcptab does not read: (letter, long name, what).
const UNREAD: [(Option<char>, &str, &str); 7] = [
    (Some('T'), "threads", "threads (-p shows the processes)"),
    (Some('Z'), "context", "SELinux contexts"),
    (Some('z'), "contexts", "SELinux contexts"),
    (Some('b'), "bpf", "sockets' BPF filters"),
    (None, "tos", "TOS and priority"),
    (None, "inet-sockopt", "inet socket options"),
    (None, "tipcinfo", "TIPC sockets"),
];

fn unread(option: &str, what: &str) -> String {
    format!("{option}: tcptab does not read {what}; use ss {option}")
}

/// What ss's options asked for, beside tcptab's own.
#[derive(Debug, Default)]
pub(super) struct Read {
    /// Other protocols dropped beside TCP.
    pub note: Option<String>,
    /// The filter `-F FILE` held.
    pub filter: Option<String>,
}

/// Read ss's options in `words` (as `kinds` says they are): other
/// protocols dropped from `out` when TCP is asked too (with the note that
/// says so), refused otherwise; `-A tcp` dropped, `-f inet` as `-4`; the
/// filter of `-F FILE`. What tcptab does not read is refused.
pub(super) fn read(
    words: &[String],
    kinds: &mut [Word],
    out: &mut [String],
) -> Result<Read, String> {
    let valued = Valued::read(words, kinds)?;
    let tcp = valued.tcp
        || words.iter().zip(kinds.iter()).any(|(w, k)| {
            (*k == Word::Shorts && w.contains('t')) || (*k == Word::Option && w == "--tcp")
        });
    let mut others = valued.others;
    let mut family = valued.family;
    let was = kinds.to_vec();
    for (i, w) in out.iter_mut().enumerate() {
        let long = w.strip_prefix("--").unwrap_or_default();
        // What tcptab does not read, as a letter of a bundle or by name.
        let not_read = match was[i] {
            Word::Shorts => UNREAD.iter().find_map(|&(c, _, what)| {
                c.filter(|c| w.contains(*c))
                    .map(|c| (format!("-{c}"), what))
            }),
            Word::Option => UNREAD
                .iter()
                .find(|u| u.1 == long)
                .map(|u| (w.clone(), u.2)),
            _ => None,
        };
        if let Some((option, what)) = not_read {
            return Err(unread(&option, what));
        }
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
            Word::Option if OTHER_LONGS.contains(&long) => {
                others.push(w.clone());
                (*w, kinds[i]) = ("-".into(), Word::Shorts);
            }
            // ss's valued options: read above; the first family's word
            // says the last one's as tcptab's -4 or -6.
            Word::Ss | Word::Value if was[i] == Word::Ss || was[i - 1] == Word::Ss => {
                let flag = (was[i] == Word::Ss && is_family(w))
                    .then(|| family.take())
                    .flatten();
                (*w, kinds[i]) = (flag.unwrap_or("-").into(), Word::Shorts);
            }
            _ => {}
        }
    }
    let mut read = Read {
        note: None,
        filter: valued.filter,
    };
    if let Some(first) = others.first() {
        if !tcp {
            return Err(format!(
                "{first}: tcptab reads TCP sockets only (for UDP, raw, UNIX, packet or other sockets, use ss)"
            ));
        }
        others.dedup();
        read.note = Some(format!(
            "tcptab: {}: tcptab reads TCP sockets only; other protocols are not listed (use ss for them)",
            others.join(", ")
        ));
    }
    Ok(read)
}

/// What ss's options with a value ask for.
#[derive(Debug, Default)]
struct Valued {
    /// TCP's table was named (`-A tcp`, `-A inet`, `-A all`).
    tcp: bool,
    /// Other tables and families, as typed (`-A udp`, `-f unix`).
    others: Vec<String>,
    /// tcptab's flag for the family named last (`-f inet`: `-4`; in ss
    /// the last `-f` is the one read).
    family: Option<&'static str>,
    /// The filter `-F FILE` held, its lines joined.
    filter: Option<String>,
}

fn is_family(option: &str) -> bool {
    option == "-f" || option.starts_with("--family")
}

impl Valued {
    fn read(words: &[String], kinds: &[Word]) -> Result<Valued, String> {
        let mut valued = Valued::default();
        for (i, w) in words.iter().enumerate() {
            if kinds[i] != Word::Ss {
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
            match option {
                "-f" | "--family" => match value {
                    Some("inet") => valued.family = Some("-4"),
                    Some("inet6") => valued.family = Some("-6"),
                    Some(other) if OTHER_FAMILIES.contains(&other) => {
                        valued.others.push(format!("{option} {other}"));
                    }
                    Some(other) => return Err(format!(
                        "{option} {other}: not a family: tcptab reads inet (IPv4, as -4) and inet6 (IPv6, as -6)"
                    )),
                    None => return Err(format!(
                        "{option}: a family is expected: inet (IPv4, as -4) or inet6 (IPv6, as -6)"
                    )),
                },
                "-F" | "--filter" => valued.filter = Some(filter_file(option, value)?),
                "-D" | "--diag" => {
                    return Err(format!(
                        "{option}: tcptab does not dump inet_diag's raw messages; it writes every field it reads with --format jsonl (use ss {option} for the raw dump)"
                    ))
                }
                _ => valued.tables(option, value)?,
            }
        }
        Ok(valued)
    }

    /// `-A QUERY`: a comma-separated list of ss's tables.
    fn tables(&mut self, option: &str, value: Option<&str>) -> Result<(), String> {
        let Some(value) = value else {
            return Err(format!(
                "{option}: a socket table is expected: tcptab reads tcp (ss's other tables are read by ss)"
            ));
        };
        for table in value.split(',') {
            match table {
                "tcp" => self.tcp = true,
                "all" | "inet" => {
                    self.tcp = true;
                    self.others.push(format!("{option} {table}"));
                }
                t if OTHER_TABLES.contains(&t) => self.others.push(format!("{option} {t}")),
                t => {
                    return Err(format!(
                        "{option} {t}: not a socket table ss knows (tcp, or all, inet, {})",
                        OTHER_TABLES.join(", ")
                    ))
                }
            }
        }
        Ok(())
    }
}

/// A filter file larger than this is not a filter (`-F /dev/zero`).
const FILTER_FILE_MAX: u64 = 1 << 20;

/// The filter in file `value` (`-F FILE`, `-F -` standard input), its
/// lines joined as one filter.
fn filter_file(option: &str, value: Option<&str>) -> Result<String, String> {
    use std::io::Read as _;
    let Some(path) = value else {
        return Err(format!(
            "{option}: a file is expected, which holds a filter (docs/filters.md)"
        ));
    };
    let said = |e: std::io::Error| format!("{option} {path}: {e}");
    let source: Box<dyn std::io::Read> = match path {
        "-" => Box::new(std::io::stdin()),
        _ => Box::new(std::fs::File::open(path).map_err(said)?),
    };
    let mut text = String::new();
    source
        .take(FILTER_FILE_MAX + 1)
        .read_to_string(&mut text)
        .map_err(said)?;
    if text.len() as u64 > FILTER_FILE_MAX {
        return Err(format!(
            "{option} {path}: more than 1 MiB, which is no filter"
        ));
    }
    Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
}
