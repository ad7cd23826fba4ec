//! What the CLI tests share: running the built `tcptab`.

#![allow(dead_code)] // each test file uses its own part

use std::process::{Command, Output, Stdio};

/// Run `tcptab` with `args` (stdin empty).
pub fn tcptab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running tcptab")
}

/// Run `tcptab`, require success, and parse its stdout as JSON.
pub fn json(args: &[&str]) -> serde_json::Value {
    let out = tcptab(args);
    assert!(
        out.status.success(),
        "tcptab {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
