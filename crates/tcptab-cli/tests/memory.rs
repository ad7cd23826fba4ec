//! Constant memory: every streamed command and format lists a table twice
//! the size of another in the same peak memory (within a small constant),
//! measured from the kernel's accounting of the child (getrusage's
//! ru_maxrss, through python3). A change that gathers the table again
//! grows with it and fails here.

use std::path::Path;

/// A captured root with `rows` generated sockets (both families, every row
/// shape), with 100 peers and 50 listeners, as on a real host: summary
/// counts per remote host and lists every listener, and diagnose groups
/// TIME_WAIT per peer; what they keep grows with those, not with the
/// sockets.
fn capture(rows: usize) -> testkit::Scratch {
    use tcptab::procnet::{render_table, ByteOrder, TableReader};
    let dir = testkit::Scratch::new(&format!("memory-{rows}"));
    std::fs::create_dir_all(dir.join("net")).unwrap();
    let (v4, v6) = testkit::generate::tables(rows);
    for (name, text, family) in [
        ("tcp", v4, tcptab::Family::Ipv4),
        ("tcp6", v6, tcptab::Family::Ipv6),
    ] {
        let sockets: Vec<tcptab::Socket> = TableReader::new(&text[..], name, Default::default())
            .enumerate()
            .map(|(i, s)| {
                let mut s = s.unwrap();
                if s.state == tcptab::State::Listen && i >= 50 {
                    s.state = tcptab::State::Established;
                    if let Some(c) = s.congestion.as_mut() {
                        c.ssthresh = tcptab::Ssthresh::Segments(10);
                    }
                }
                let host = (i % 100) as u8;
                let ip: std::net::IpAddr = match family {
                    tcptab::Family::Ipv4 => std::net::Ipv4Addr::new(10, 0, 0, host).into(),
                    tcptab::Family::Ipv6 => {
                        std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, host.into()).into()
                    }
                };
                s.remote = std::net::SocketAddr::new(ip, s.remote.port());
                s
            })
            .collect();
        let out = render_table(family, &sockets, ByteOrder::native());
        std::fs::write(dir.join("net").join(name), out).unwrap();
    }
    dir
}

/// Peak RSS in KiB of `tcptab ARGS` (stdout discarded).
fn peak_kib(args: &[&str]) -> u64 {
    let script = "import resource, subprocess, sys\n\
                  r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n\
                  assert r.returncode == 0, r.returncode\n\
                  print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)";
    let out = testkit::tool("python3")
        .args(["-c", script, env!("CARGO_BIN_EXE_tcptab")])
        .args(args)
        .output()
        .expect("python3");
    testkit::assert_success!(out, "{args:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn streamed_outputs_do_not_grow_with_the_table() {
    let small = capture(50_000);
    let large = capture(100_000);
    let commands: [&[&str]; 8] = [
        &["list"],
        &["list", "--format", "json"],
        &["list", "--format", "jsonl"],
        &["list", "--format", "csv"],
        &["list", "--format", "proc"],
        &["list", "state established"],
        &["summary"],
        &["explain", "--diagnose", "--fail-on", "never"],
    ];
    let mut report = Vec::new();
    for command in commands {
        let at = |root: &Path| {
            let root = root.to_str().unwrap();
            let mut args = command.to_vec();
            args.extend(["--root", root]);
            peak_kib(&args)
        };
        let (a, b) = (at(&small), at(&large));
        report.push(format!(
            "{command:?}: {a} KiB at 50,000 rows, {b} KiB at 100,000"
        ));
        // 50,000 more rows held would be 8 MiB or more (a Socket is 176
        // bytes); what may grow is allocator noise.
        assert!(
            b < a + 3 * 1024,
            "{command:?} grows with the table: {a} KiB -> {b} KiB\n{}",
            report.join("\n")
        );
    }
    // The control: --sort holds the table, and the test sees it.
    let sorted =
        |root: &Path| peak_kib(&["list", "--sort", "state", "--root", root.to_str().unwrap()]);
    let (a, b) = (sorted(&small), sorted(&large));
    assert!(
        b > a + 6 * 1024,
        "--sort must hold the table: {a} KiB -> {b} KiB"
    );
    eprintln!("{}", report.join("\n"));
    let _ = std::fs::remove_dir_all(small);
    let _ = std::fs::remove_dir_all(large);
}
