//! `tcptab schema NAME`: the JSON Schema of each document tcptab writes,
//! generated from the types that write them (the socket record from its
//! field definitions, the reports with schemars). `docs/schemas/` holds
//! the same text; a test keeps them equal and validates live output.

use std::io::{self, Write};

use anyhow::{Context, Result};
use schemars::{Schema, SchemaGenerator};

use crate::cli::{SchemaArgs, SchemaName};

pub fn run(args: &SchemaArgs) -> Result<()> {
    let mut out = io::stdout().lock();
    if args.name == SchemaName::Clickhouse {
        return clickhouse(args, &mut out);
    }
    if args.store.clickhouse.is_some() {
        anyhow::bail!("--clickhouse: only `tcptab schema clickhouse` makes tables in a store");
    }
    writeln!(out, "{}", text(args.name))?;
    out.flush().context("writing output")
}

/// The tables of a fleet's store: printed (one statement per paragraph,
/// each ending in `;`), or with --clickhouse made there.
fn clickhouse(args: &SchemaArgs, out: &mut impl Write) -> Result<()> {
    let Some(target) = args.store.target()? else {
        let schema = tcptab::fleet::Schema {
            database: args.database.clone(),
            retention: args.retention,
            ttl: args.retention.is_some(),
        };
        write!(out, "{}", statements(&schema))?;
        return out.flush().context("writing output");
    };
    let client = tcptab::fleet::Client::new(target, std::time::Duration::from_secs(30));
    let version = client.version()?;
    let schema = tcptab::fleet::Schema {
        database: client.target().database.clone(),
        retention: args.retention,
        ttl: tcptab::fleet::has_ttl(version),
    };
    for statement in schema.statements() {
        client.execute(&statement)?;
    }
    if args.retention.is_some() && !schema.ttl {
        note!(
            "tcptab: ClickHouse {}.{} has no table TTL: --retention is not applied (drop old day partitions instead: docs/fleet.md)",
            version.0,
            version.1
        );
    }
    note!(
        "tcptab: tables connections, state_changes and polls are in database {} at {}",
        schema.database,
        client.target().base
    );
    Ok(())
}

/// The schema `name`, as pretty JSON.
pub fn text(name: SchemaName) -> String {
    let schema = match name {
        SchemaName::Record => record(),
        SchemaName::Summary => schemars::schema_for!(crate::cmd::summary::Report),
        SchemaName::Diagnose => schemars::schema_for!(crate::cmd::explain::DiagnoseReport),
        SchemaName::WatchEvent => watch_event(),
        SchemaName::Kill => kill_result(),
        SchemaName::HistoryRecord => history_record(),
        SchemaName::HistorySummary => schemars::schema_for!(crate::cmd::history::Summary),
        SchemaName::Audit => schemars::schema_for!(crate::cmd::audit::Document),
        SchemaName::Clickhouse => {
            return statements(&tcptab::fleet::Schema {
                database: "tcptab".into(),
                retention: None,
                ttl: false,
            })
        }
    };
    serde_json::to_string_pretty(&schema).expect("a schema serialises")
}

/// A store's statements as text: each ends in `;` and a blank line.
fn statements(schema: &tcptab::fleet::Schema) -> String {
    schema
        .statements()
        .iter()
        .map(|s| format!("{s};\n\n"))
        .collect()
}

/// The socket record (`list --format json|jsonl|csv`).
pub fn record() -> Schema {
    let value: serde_json::Value =
        serde_json::from_str(&tcptab::record::schema()).expect("the record schema is JSON");
    Schema::try_from(value).expect("the record schema is an object")
}

/// One connection of `history --format json|jsonl|csv`.
pub fn history_record() -> Schema {
    let value: serde_json::Value = serde_json::from_str(&tcptab::record::history_schema())
        .expect("the history record schema is JSON");
    Schema::try_from(value).expect("the history record schema is an object")
}

/// `schema_with` for one socket record inside a report.
pub fn record_item(_: &mut SchemaGenerator) -> Schema {
    let mut item = record();
    item.remove("$schema");
    item
}

/// `schema_with` for a list of socket records inside a report.
pub fn records(_: &mut SchemaGenerator) -> Schema {
    let mut item = record();
    item.remove("$schema");
    schemars::json_schema!({"type": "array", "items": item})
}

/// A `watch --format jsonl` line: a socket's event (the event's own fields,
/// then the record's), or a `lost` event (notifications the kernel dropped).
fn watch_event() -> Schema {
    let mut socket_event = socket_event();
    socket_event.remove("$schema");
    schemars::json_schema!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": format!("tcptab watch event, schema version {}", tcptab::record::SCHEMA_VERSION),
        "anyOf": [
            socket_event,
            {
                "type": "object",
                "description": "the kernel dropped destroy notifications (a burst overflowed their buffer): connections that closed meanwhile may go unreported",
                "additionalProperties": false,
                "required": ["schema_version", "host", "time", "event", "lost"],
                "properties": {
                    "schema_version": {"type": "integer"},
                    "host": {"type": "object", "description": "the machine: hostname, /etc/machine-id (null: none), boot id (null: unreadable)", "additionalProperties": false, "required": ["hostname", "machine_id", "boot_id"], "properties": {"hostname": {"type": "string"}, "machine_id": {"type": ["string", "null"]}, "boot_id": {"type": ["string", "null"]}}},
                    "time": {"type": "string"},
                    "event": {"const": "lost"},
                    "lost": {"const": "destroy_notifications"}
                }
            }
        ]
    })
}

fn socket_event() -> Schema {
    extended(
        "tcptab watch event",
        serde_json::json!({
            "schema_version": {"type": "integer", "description": "the version of tcptab's documents"},
            "host": {"type": "object", "description": "the machine: hostname, /etc/machine-id (null: none), boot id (null: unreadable)", "additionalProperties": false, "required": ["hostname", "machine_id", "boot_id"], "properties": {"hostname": {"type": "string"}, "machine_id": {"type": ["string", "null"]}, "boot_id": {"type": ["string", "null"]}}},
            "time": {"type": "string", "description": "when the event was seen, RFC 3339 in UTC with milliseconds"},
            "event": {"enum": ["opened", "closed", "state_changed", "queue_growth"]},
            "old_state": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "state_changed: the state before (kernel spelling)"},
            "seen_open": {"anyOf": [{"type": "boolean"}, {"type": "null"}], "description": "closed: whether an earlier look had seen the connection open (false: it opened and closed between two looks)"}
        }),
    )
}

/// One socket of `kill --format json|jsonl`: its result, then the record.
fn kill_result() -> Schema {
    extended(
        "tcptab kill result",
        serde_json::json!({
            "result": {"enum": ["would_destroy", "destroyed", "gone", "refused", "left_out"], "description": "would_destroy in a dry run; with --yes what became of the socket; left_out: selected and left alone (a listener whose state the filter does not name)"},
            "detail": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "the result in words (why it is gone, why the kernel refused, why it was left out); null for would_destroy"}
        }),
    )
}

/// The record's schema with `own` fields first, all required.
fn extended(title: &str, own: serde_json::Value) -> Schema {
    let mut schema = record();
    let object = schema.as_object_mut().expect("an object schema");
    object.insert(
        "title".into(),
        format!("{title}, schema version {}", tcptab::record::SCHEMA_VERSION).into(),
    );
    let own = own.as_object().expect("an object").clone();
    let properties = object
        .get_mut("properties")
        .and_then(|p| p.as_object_mut())
        .expect("properties");
    let mut merged = own.clone();
    for (k, v) in properties.iter() {
        merged.insert(k.clone(), v.clone());
    }
    *properties = merged;
    let required = object
        .get_mut("required")
        .and_then(|r| r.as_array_mut())
        .expect("required");
    for (i, key) in own.keys().enumerate() {
        required.insert(i, key.clone().into());
    }
    schema
}
