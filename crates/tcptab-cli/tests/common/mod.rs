//! What the CLI tests share: running the built `tcptab`.

#![allow(dead_code)] // each test file uses its own part

pub mod clickhouse;
pub mod proxy;
pub mod recorder;
pub mod server;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};

/// `tcptab` started with `args`, its JSON Lines read as they come (each
/// strict JSON, and checked against the published schema `schema` when
/// one is named) and sent on the channel, which ends with its output. Its
/// output is read to the end even when the test stops receiving: a reader
/// that stops reading would block it on a full pipe.
pub fn jsonl(args: &[&str], schema: Option<&str>) -> (Child, Receiver<serde_json::Value>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running tcptab");
    let stdout = child.stdout.take().unwrap();
    let schema = schema.map(|name| (name.to_string(), self::schema(name)));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let value = strict_json(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if let Some((name, validator)) = &schema {
                conforms(validator, &value, name);
            }
            let _ = tx.send(value);
        }
    });
    (child, rx)
}

/// [`jsonl`] with the words of `line` (split at spaces).
pub fn jsonl_line(line: &str, schema: Option<&str>) -> (Child, Receiver<serde_json::Value>) {
    jsonl(&line.split_whitespace().collect::<Vec<_>>(), schema)
}

/// Send `signal` (`-TERM`, `-KILL`, `-INT`) to `child`.
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {}", child.id());
}

/// Run `tcptab` with `args` (stdin empty).
pub fn tcptab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running tcptab")
}

/// The items of a JSON array (a test failure, naming it, if it is not one).
pub fn items(value: &serde_json::Value) -> std::slice::Iter<'_, serde_json::Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a JSON array: {value}"))
        .iter()
}

/// Run `tcptab` with the words of `line` (split at spaces, as a shell
/// splits a line without quotes).
pub fn tcptab_line(line: &str) -> Output {
    tcptab(&line.split_whitespace().collect::<Vec<_>>())
}

/// [`tcptab_line`], which must succeed (its stderr in the message if not).
pub fn ok_line(line: &str) -> Output {
    let out = tcptab_line(line);
    testkit::assert_success!(out, "tcptab {line}");
    out
}

/// [`json`] with the words of `line`.
pub fn json_line(line: &str) -> serde_json::Value {
    json(&line.split_whitespace().collect::<Vec<_>>())
}

/// Run `tcptab`, require success, and parse its stdout as JSON.
pub fn json(args: &[&str]) -> serde_json::Value {
    let out = tcptab(args);
    testkit::assert_success!(out, "tcptab {args:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// JSON parsed with serde_json, but a key repeated in one object is an
/// error (serde_json keeps the last one silently).
pub fn strict_json(text: &str) -> Result<serde_json::Value, String> {
    use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    struct Strict(Value);
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Strict;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
            Ok(Strict(Value::Bool(v)))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
            Ok(Strict(v.into()))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
            Ok(Strict(v.into()))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
            Ok(Strict(v.into()))
        }
        fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
            Ok(Strict(Value::String(v.to_string())))
        }
        fn visit_unit<E>(self) -> Result<Strict, E> {
            Ok(Strict(Value::Null))
        }
        fn visit_none<E>(self) -> Result<Strict, E> {
            Ok(Strict(Value::Null))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
            let mut items = Vec::new();
            while let Some(Strict(item)) = seq.next_element()? {
                items.push(item);
            }
            Ok(Strict(Value::Array(items)))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let Strict(value) = map.next_value()?;
                if out.insert(key.clone(), value).is_some() {
                    return Err(A::Error::custom(format!("key {key:?} repeated")));
                }
            }
            Ok(Strict(Value::Object(out)))
        }
    }
    impl<'de> Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
            d.deserialize_any(V)
        }
    }
    serde_json::from_str::<Strict>(text)
        .map(|s| s.0)
        .map_err(|e| e.to_string())
}

/// A validator for `docs/schemas/NAME.json`, after checking that the file
/// is what `tcptab schema NAME` generates.
pub fn schema(name: &str) -> jsonschema::Validator {
    let path = testkit::repo_root().join(format!("docs/schemas/{name}.json"));
    let committed = std::fs::read_to_string(&path).unwrap();
    let out = tcptab(&["schema", name]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        committed,
        "{} is stale: run `tcptab schema {name} > docs/schemas/{name}.json`",
        path.display()
    );
    let schema: serde_json::Value = serde_json::from_str(&committed).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Require `value` to follow `validator`, listing every violation.
pub fn conforms(validator: &jsonschema::Validator, value: &serde_json::Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{value}");
}

/// Run tmux with `args`; its stdout.
pub fn tmux(args: &[&str]) -> String {
    let out = testkit::tool("tmux")
        .args(args)
        .output()
        .expect("running tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
