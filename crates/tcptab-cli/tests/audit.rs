//! `tcptab audit` in a fresh namespace holding listeners on every scope
//! (addresses on a veth pair made there, checked with `ip -j addr`), a
//! policy, a baseline and a malformed policy.

use std::process::Child;

mod common;

use common::{tcptab, tcptab_line};
use testkit::NamedNetns;

/// Listeners on `binds` ((address, port, v6only)) in `ns`, held until the
/// child is killed.
fn listeners(ns: &NamedNetns, binds: &[(&str, u16, bool)]) -> Child {
    let list: Vec<String> = binds
        .iter()
        .map(|(a, p, v6)| format!("('{a}', {p}, {})", if *v6 { "True" } else { "False" }))
        .collect();
    let code = format!(
        "import socket, time\n\
         held = []\n\
         for a, p, v6 in [{}]:\n\
         \x20   f = socket.AF_INET6 if ':' in a else socket.AF_INET\n\
         \x20   s = socket.socket(f)\n\
         \x20   if f == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6 else 0)\n\
         \x20   s.bind((a, p)); s.listen(); held.append(s)\n\
         print('ready', flush=True); time.sleep(600)\n",
        list.join(", ")
    );
    let (child, line) = testkit::spawn_until_line(ns.command("python3").args(["-c", &code]));
    assert_eq!(line, "ready");
    child
}

/// A listener on 0.0.0.0:`port` bound to interface `device`.
fn bound_to_device(ns: &NamedNetns, device: &str, port: u16) -> Child {
    let code = format!(
        "import socket, time\n\
         s = socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'{device}')\n\
         s.bind(('0.0.0.0', {port})); s.listen()\n\
         print('ready', flush=True); time.sleep(600)\n"
    );
    let (child, line) = testkit::spawn_until_line(ns.command("python3").args(["-c", &code]));
    assert_eq!(line, "ready");
    child
}

/// (interface, address) of every address in the namespace, sorted: `ip -j
/// addr`, the oracle.
fn interface_addresses(ns: &NamedNetns) -> Vec<(String, String)> {
    let out = testkit::tool("ip")
        .args(["-j", "-n", &ns.name, "addr"])
        .output()
        .unwrap();
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut list: Vec<(String, String)> = common::items(&all)
        .flat_map(|i| {
            let name = i["ifname"].as_str().unwrap().to_string();
            common::items(&i["addr_info"])
                .map(move |a| (name.clone(), a["local"].as_str().unwrap().to_string()))
        })
        .collect();
    list.sort();
    list
}

fn ip(args: &[&str]) {
    let out = testkit::tool("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

fn audit(ns: &NamedNetns, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut args = vec!["audit", "-N", &ns.name, "--format", "json"];
    args.extend_from_slice(extra);
    let out = tcptab(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code(), value, stderr)
}

#[test]
fn scopes_policy_and_baseline() {
    testkit::needs_root!();
    let ns = NamedNetns::add("tcptab-audit");
    ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
    ip(&[
        "-n", &ns.name, "link", "add", "va", "type", "veth", "peer", "name", "vb",
    ]);
    ip(&["-n", &ns.name, "addr", "add", "10.1.2.3/24", "dev", "va"]);
    ip(&["-n", &ns.name, "addr", "add", "203.0.113.5/24", "dev", "vb"]);
    ip(&["-n", &ns.name, "link", "set", "va", "up"]);
    ip(&["-n", &ns.name, "link", "set", "vb", "up"]);
    // The oracle for the bound addresses: the namespace's own.
    let addrs = testkit::tool("ip")
        .args(["-j", "-n", &ns.name, "addr"])
        .output()
        .unwrap();
    let addrs: serde_json::Value = serde_json::from_slice(&addrs.stdout).unwrap();
    let local: Vec<&str> = common::items(&addrs)
        .flat_map(|i| i["addr_info"].as_array().unwrap().iter())
        .filter_map(|a| a["local"].as_str())
        .collect();
    for a in ["127.0.0.1", "10.1.2.3", "203.0.113.5"] {
        assert!(local.contains(&a), "{a} in {local:?}");
    }
    let mut first = listeners(&ns, &[("127.0.0.1", 81, false)]);
    let mut rest = listeners(
        &ns,
        &[
            ("10.1.2.3", 82, false),
            ("203.0.113.5", 83, false),
            ("0.0.0.0", 84, false),
            ("::", 85, false),
            ("::", 86, true),
        ],
    );

    every_listener_has_its_scope(&ns);
    each_is_reachable_where_ip_says(&ns);
    each_uid_is_its_holders_and_only_roots_are_exposed(&ns);
    let dir = testkit::Scratch::new("audit");
    listening_since_as_a_recording_says(&ns, &dir);
    connected_peers_as_ss_counts_them(&ns);
    a_policy_judges_in_every_format(&ns, &dir);
    let mut added = a_baseline_says_what_changed(&ns, &dir, &mut first);
    a_malformed_policy_is_one_line(&ns, &dir);
    for child in [&mut rest, &mut added] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Every listener with its scope; the IPv6 wildcard without v6only takes
/// IPv4 too.
fn every_listener_has_its_scope(ns: &NamedNetns) {
    // Every listener with its scope; the IPv6 wildcard without v6only
    // takes IPv4 too.
    let (code, doc, stderr) = audit(ns, &["--fail-on", "never"]);
    assert_eq!(code, Some(0), "{stderr}");
    let scopes: Vec<(u64, String, bool)> = common::items(&doc["listeners"])
        .map(|l| {
            (
                l["socket"]["local_port"].as_u64().unwrap(),
                l["scope"].as_str().unwrap().to_string(),
                l["dual_stack"].as_bool().unwrap(),
            )
        })
        .collect();
    let mut scopes = scopes;
    scopes.sort();
    let expected: Vec<(u64, String, bool)> = [
        (81, "loopback", false),
        (82, "private", false),
        (83, "global", false),
        (84, "any", false),
        (85, "any", true),
        (86, "any", false),
    ]
    .iter()
    .map(|(p, s, d)| (*p, s.to_string(), *d))
    .collect();
    assert_eq!(scopes, expected);
    assert!(doc["host"]["boot_id"].is_string());
}

/// What each listener is reachable on, against `ip -j addr` of its
/// namespace.
fn each_is_reachable_where_ip_says(ns: &NamedNetns) {
    // What each is reachable on, against `ip -j addr` of the namespace
    // read now: a wildcard every address of its family (the dual-stack one
    // IPv4's too), the one bound to `va` only va's, a bound address itself.
    let mut bound = bound_to_device(ns, "va", 88);
    let (code, doc, stderr) = audit(ns, &["--fail-on", "never"]);
    assert_eq!(code, Some(0), "{stderr}");
    common::conforms(&common::schema("audit"), &doc, "audit --format json");
    let oracle = interface_addresses(ns);
    let family = |a: &str, v4: bool| a.contains('.') == v4;
    for l in doc["listeners"].as_array().unwrap() {
        let port = l["socket"]["local_port"].as_u64().unwrap();
        let mut got: Vec<(String, String)> = l["reachable"]
            .as_array()
            .unwrap_or_else(|| panic!("{port}: no reachable addresses: {l}"))
            .iter()
            .map(|a| {
                (
                    a["interface"].as_str().unwrap().to_string(),
                    a["address"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        got.sort();
        let want: Vec<(String, String)> = oracle
            .iter()
            .filter(|(i, a)| match port {
                81 => a == "127.0.0.1",
                82 => a == "10.1.2.3",
                83 => a == "203.0.113.5",
                84 => family(a, true),
                85 => true,
                86 => family(a, false),
                88 => i == "va" && family(a, true),
                other => panic!("listener {other}"),
            })
            .cloned()
            .collect();
        assert!(!want.is_empty(), "{port}");
        assert_eq!(got, want, "{port}");
    }
    let _ = bound.kill();
    let _ = bound.wait();
}

/// Two users: each listener's uid is its holder's, and only root's
/// wildcards are `exposed`.
fn each_uid_is_its_holders_and_only_roots_are_exposed(ns: &NamedNetns) {
    // Two users (nobody's on an unprivileged port): each listener's uid is
    // its holder's, and a wildcard held by nobody is never the built-in
    // `exposed` finding (only root's are).
    let mut nobody = {
        let code = "import socket, time\ns = socket.socket()\ns.bind(('0.0.0.0', 8089)); s.listen()\nprint('ready', flush=True); time.sleep(600)\n";
        let mut command = ns.command("setpriv");
        command.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            // Debian's: a user's interpreter under /root is closed to nobody.
            "/usr/bin/python3",
            "-c",
            code,
        ]);
        let (child, line) = testkit::spawn_until_line(&mut command);
        assert_eq!(line, "ready");
        child
    };
    let (code, doc, stderr) = audit(ns, &["--fail-on", "never"]);
    assert_eq!(code, Some(0), "{stderr}");
    let uid_of = |port: u64| {
        common::items(&doc["listeners"])
            .find(|l| l["socket"]["local_port"].as_u64() == Some(port))
            .and_then(|l| l["socket"]["uid"].as_u64())
    };
    assert_eq!(uid_of(8089), Some(65534), "{doc}");
    assert_eq!(uid_of(84), Some(0), "{doc}");
    let dual: Vec<&serde_json::Value> = common::items(&doc["findings"])
        .filter(|f| f["kind"] == "dual-stack")
        .collect();
    assert_eq!(dual.len(), 1, "the one IPv6 wildcard without v6only: {doc}");
    for f in doc["findings"].as_array().unwrap() {
        if f["kind"] == "dual-stack" {
            assert!(f["listener"].as_str().unwrap().contains("[::]:85"), "{f}");
            continue;
        }
        assert_eq!(f["kind"], "exposed", "{f}");
        let port: u64 = f["listener"]
            .as_str()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            uid_of(port),
            Some(0),
            "only root's listeners are exposed: {f}"
        );
        assert!([83, 84, 85, 86].contains(&port), "{f}");
    }
    let _ = nobody.kill();
    let _ = nobody.wait();
}

/// `--history`: when each listener was first seen listening, as the
/// recording's rows say.
fn listening_since_as_a_recording_says(ns: &NamedNetns, dir: &std::path::Path) {
    // With a recording of the namespace: when each was first seen
    // listening, as the recording's own rows say (sqlite3).
    let db = dir.join("h.db");
    let out = tcptab(&[
        "record",
        "--db",
        db.to_str().unwrap(),
        "-N",
        &ns.name,
        "--count",
        "2",
        "--interval",
        "0.3",
    ]);
    testkit::assert_success!(out);
    let (code, doc, stderr) = audit(
        ns,
        &["--fail-on", "never", "--history", db.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{stderr}");
    for l in doc["listeners"].as_array().unwrap() {
        let port = l["socket"]["local_port"].as_u64().unwrap();
        let address = l["socket"]["local_address"].as_str().unwrap();
        let first = common::recorder::sql(
            &db,
            &format!("SELECT first_seen FROM connections WHERE state = 'LISTEN' AND closed_at IS NULL AND local_port = {port} AND local_address = '{address}'"),
        );
        let want = tcptab::time::format_rfc3339(first.parse().unwrap());
        assert_eq!(l["listening_since"].as_str(), Some(want.as_str()), "{port}");
    }
}

/// `--connected`: the remote addresses by scope, as ss counts them.
fn connected_peers_as_ss_counts_them(ns: &NamedNetns) {
    // --connected: the established connections' remote addresses by
    // scope, counted as ss counts them in the namespace.
    let mut clients = {
        let code = "import socket, time\nheld = [socket.create_connection(a) for a in [('127.0.0.1', 81), ('10.1.2.3', 82), ('203.0.113.5', 83), ('203.0.113.5', 83)]]\nprint('ready', flush=True); time.sleep(600)\n";
        let (child, line) = testkit::spawn_until_line(ns.command("python3").args(["-c", code]));
        assert_eq!(line, "ready");
        child
    };
    let (code, doc, stderr) = audit(ns, &["--fail-on", "never", "--connected"]);
    assert_eq!(code, Some(0), "{stderr}");
    let ss = ns.command("ss").arg("-tanH").output().unwrap();
    let mut want: std::collections::BTreeMap<String, u64> = Default::default();
    for line in String::from_utf8(ss.stdout).unwrap().lines() {
        let row = testkit::SsRow::parse(line);
        if row.state == "ESTAB" {
            let (address, _) = row.peer.rsplit_once(':').unwrap();
            let address = address.trim_start_matches('[').trim_end_matches(']');
            *want.entry(address.to_string()).or_default() += 1;
        }
    }
    let peers = doc["peers"].as_array().unwrap();
    let got: std::collections::BTreeMap<String, u64> = peers
        .iter()
        .map(|p| {
            (
                p["address"].as_str().unwrap().to_string(),
                p["connections"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        want.get("203.0.113.5"),
        Some(&4),
        "two connections, both ends"
    );
    assert_eq!(peers[0]["scope"], "global", "global first: {doc}");
    assert_eq!(peers[0]["processes"], serde_json::json!(["python3"]));
    let _ = clients.kill();
    let _ = clients.wait();
}

/// A policy's verdicts, the same in JSON, JSON Lines and CSV.
fn a_policy_judges_in_every_format(ns: &NamedNetns, dir: &std::path::Path) {
    // A policy: loopback allowed, global denied, the rest unlisted.
    let policy = written(
        dir,
        "policy.toml",
        "[[allow]]\nscope = \"loopback\"\nreason = \"local only\"\n\n[[allow]]\nport = \"84-84\"\nprocess = \"python*\"\n\n[[deny]]\nscope = \"global\"\nreason = \"no public listeners\"\n",
    );
    let policy_arg = policy.as_str();
    let (code, doc, _) = audit(ns, &["--policy", policy_arg]);
    assert_eq!(code, Some(1), "findings fail at --fail-on warning");
    let mut found: Vec<(String, String)> = common::items(&doc["findings"])
        .map(|f| {
            let port = f["listener"].as_str().unwrap().split(' ').nth(1).unwrap();
            let port = port.rsplit(':').next().unwrap().to_string();
            (port, f["kind"].as_str().unwrap().to_string())
        })
        .collect();
    found.sort();
    let want: Vec<(String, String)> = [
        ("82", "unlisted"),
        ("83", "denied"),
        ("85", "unlisted"),
        ("86", "unlisted"),
    ]
    .iter()
    .map(|(p, k)| (p.to_string(), k.to_string()))
    .collect();
    assert_eq!(found, want, "{doc}");
    // JSON Lines and CSV say what the document says.
    let lines = tcptab(&[
        "audit", "-N", &ns.name, "--policy", policy_arg, "--format", "jsonl",
    ]);
    assert_eq!(lines.status.code(), Some(1));
    let (mut listener_lines, mut found_lines) = (Vec::new(), Vec::new());
    for line in String::from_utf8(lines.stdout).unwrap().lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        let o = v.as_object_mut().unwrap();
        assert_eq!(o.remove("schema_version"), Some(1.into()));
        match o.remove("type").unwrap().as_str().unwrap() {
            "listener" => listener_lines.push(v),
            "finding" => found_lines.push(v),
            other => panic!("type {other}"),
        }
    }
    assert_eq!(&listener_lines, doc["listeners"].as_array().unwrap());
    assert_eq!(&found_lines, doc["findings"].as_array().unwrap());
    let csv = tcptab(&[
        "audit", "-N", &ns.name, "--policy", policy_arg, "--format", "csv",
    ]);
    let csv = String::from_utf8(csv.stdout).unwrap();
    let mut rows = csv.lines();
    assert!(rows
        .next()
        .unwrap()
        .starts_with("scope,dual_stack,verdict,rule,identity,"));
    let mut csv_found: Vec<(String, String)> = rows
        .filter(|r| !r.ends_with(','))
        .map(|r| {
            let port = r.split(',').nth(7).unwrap().to_string();
            (port, r.rsplit(',').next().unwrap().to_string())
        })
        .collect();
    csv_found.sort();
    assert_eq!(csv_found, found, "{csv}");
    let (code, ..) = audit(ns, &["--policy", policy_arg, "--fail-on", "critical"]);
    assert_eq!(code, Some(1), "the denied one is critical");
}

/// A baseline: one listener added (returned), one gone (`first`), exactly
/// those.
fn a_baseline_says_what_changed(
    ns: &NamedNetns,
    dir: &std::path::Path,
    first: &mut Child,
) -> Child {
    // A baseline: one listener added, one gone, exactly those.
    let baseline = dir.join("baseline");
    let (code, ..) = audit(
        ns,
        &[
            "--save-baseline",
            baseline.to_str().unwrap(),
            "--fail-on",
            "never",
        ],
    );
    assert_eq!(code, Some(0));
    let added = listeners(ns, &[("127.0.0.1", 87, false)]);
    let _ = first.kill();
    let _ = first.wait();
    let (code, doc, _) = audit(ns, &["--baseline", baseline.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    let mut changes: Vec<(String, String)> = common::items(&doc["findings"])
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["listener"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        [
            ("gone".to_string(), "host 127.0.0.1:81 python3".to_string()),
            ("new".to_string(), "host 127.0.0.1:87 python3".to_string()),
        ]
        .map(|(k, l)| (k, l.replace("host", &ns.name))),
        "{doc}"
    );
    added
}

/// A malformed policy: one line naming the file, the line and the key.
fn a_malformed_policy_is_one_line(ns: &NamedNetns, dir: &std::path::Path) {
    // A malformed policy: one line naming the file, the line and the key;
    // exit 2.
    let bad = written(
        dir,
        "bad.toml",
        "[[allow]]\nport = 22\n\n[[deny]]\nscope = \"public\"\n",
    );
    let out = tcptab(&["audit", "-N", &ns.name, "--policy", &bad]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("{bad}:5: scope:")), "{err}");
}

/// `text` written to `dir/name`: the file's path.
fn written(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// In the host's namespace, a process that binds one listener to every
/// address and another to loopback: the wildcard one is a likely mistake
/// (`any-beside-loopback`); a process with a wildcard listener alone is
/// not.
#[test]
fn a_wildcard_beside_loopback_listeners_is_a_finding_in_the_host_namespace() {
    testkit::needs_root!();
    let code = "import socket, time\n\
                held = []\n\
                for addr in ADDRS:\n\
                \x20   s = socket.socket(); s.bind((addr, 0)); s.listen(); held.append(s)\n\
                print(' '.join(str(s.getsockname()[1]) for s in held), flush=True)\n\
                time.sleep(300)\n";
    let spawn = |addrs: &str| {
        let code = code.replace("ADDRS", addrs);
        testkit::spawn_until_line(testkit::tool("python3").args(["-c", &code]))
    };
    let (mut local, ports) = spawn("['127.0.0.1', '0.0.0.0']");
    let (mut alone, port) = spawn("['0.0.0.0']");
    let ports: Vec<&str> = ports.split(' ').chain([port.as_str()]).collect();
    let filter = ports
        .iter()
        .map(|p| format!("sport = :{p}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let out = tcptab_line(&format!("audit --format json --fail-on never {filter}"));
    for child in [&mut local, &mut alone] {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: Vec<String> = common::items(&doc["findings"])
        .filter(|f| f["kind"] == "any-beside-loopback")
        .map(|f| f["listener"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains(&format!("0.0.0.0:{}", ports[1])),
        "{found:?}"
    );
}
