//! Each network namespace's TCP counters as the kernel keeps them: the
//! `Tcp:` lines of `/proc/net/snmp` and the `TcpExt:` lines of
//! `/proc/net/netstat`, named as `nstat` names them (`TcpRetransSegs`,
//! `TcpExtListenOverflows`). Every one is a counter since boot (or since
//! the namespace was made), except the few `Tcp:` values that are settings
//! or gauges, which are left out ([`GAUGES`]).

use std::io;
use std::path::Path;

/// `Tcp:` fields that are not counters: the RTO algorithm and bounds, the
/// connection limit, connections established now.
pub const GAUGES: [&str; 5] = ["RtoAlgorithm", "RtoMin", "RtoMax", "MaxConn", "CurrEstab"];

/// One counter: its `nstat` name and value.
pub type Counter = (String, u64);

/// The counters of one section (`Tcp` or `TcpExt`) of a file in the
/// kernel's two-line layout (`Section: Name Name ...` then `Section: 1 2
/// ...`), prefixed with the section's name.
pub fn section(text: &str, name: &str, path: &Path) -> io::Result<Vec<Counter>> {
    let prefix = format!("{name}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let bad = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return Err(bad(format!("no '{name}:' header and values lines")));
    };
    let names: Vec<&str> = names[prefix.len()..].split_whitespace().collect();
    let values: Vec<&str> = values[prefix.len()..].split_whitespace().collect();
    if names.len() != values.len() {
        return Err(bad(format!(
            "'{name}:' has {} names and {} values",
            names.len(),
            values.len()
        )));
    }
    let mut out = Vec::with_capacity(names.len());
    for (field, value) in names.into_iter().zip(values) {
        if name == "Tcp" && GAUGES.contains(&field) {
            continue;
        }
        let value: u64 = value
            .parse()
            .map_err(|_| bad(format!("{name}: {field}: '{value}' is not a counter")))?;
        out.push((format!("{name}{field}"), value));
    }
    Ok(out)
}

/// `Tcp` of `DIR/snmp` then `TcpExt` of `DIR/netstat`, for `DIR` a
/// `/proc/net` (`/proc/thread-self/net` for the calling thread's
/// namespace, or a captured copy).
pub fn read(dir: &Path) -> io::Result<Vec<Counter>> {
    let file = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path)
            .map(|text| (text, path.clone()))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    };
    let (snmp, snmp_path) = file("snmp")?;
    let (netstat, netstat_path) = file("netstat")?;
    let mut out = section(&snmp, "Tcp", &snmp_path)?;
    out.extend(section(&netstat, "TcpExt", &netstat_path)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_named_as_nstat_names_them() {
        let snmp = "Ip: Forwarding\nIp: 1\nTcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens CurrEstab RetransSegs\nTcp: 1 200 120000 -1 7 3 9\n";
        let got = section(snmp, "Tcp", Path::new("snmp")).unwrap();
        assert_eq!(
            got,
            [("TcpActiveOpens".into(), 7), ("TcpRetransSegs".into(), 9)]
        );
        let netstat =
            "TcpExt: ListenOverflows ListenDrops\nTcpExt: 4 5\nIpExt: InNoRoutes\nIpExt: 0\n";
        let got = section(netstat, "TcpExt", Path::new("netstat")).unwrap();
        assert_eq!(got[0], ("TcpExtListenOverflows".into(), 4));
    }

    #[test]
    fn a_bad_file_says_where_and_what() {
        let e = section("Tcp: A B\nTcp: 1\n", "Tcp", Path::new("/x/snmp")).unwrap_err();
        assert_eq!(e.to_string(), "/x/snmp: 'Tcp:' has 2 names and 1 values");
        let e = section("Tcp: A\nTcp: -3\n", "Tcp", Path::new("/x/snmp")).unwrap_err();
        assert_eq!(e.to_string(), "/x/snmp: Tcp: A: '-3' is not a counter");
        assert!(section("", "TcpExt", Path::new("n")).is_err());
    }

    #[test]
    fn this_machine_s_counters() {
        let got = read(Path::new("/proc/thread-self/net")).unwrap();
        assert!(got.iter().any(|(n, _)| n == "TcpExtListenOverflows"));
        assert!(!got.iter().any(|(n, _)| n == "TcpCurrEstab"));
    }
}
