//! The record's JSON Schemas, made from its field definitions.

use super::{field_defs, FieldDef, Fields, Ty, SCHEMA_VERSION};

/// The JSON Schema (draft 2020-12) of the record, as JSON text: every field
/// with its type and whether it may be null; the fields of [`Fields`]
/// (namespace, owners) are optional, every other field is required.
pub fn schema() -> String {
    schema_of(
        "tcptab socket record",
        Fields {
            netns: true,
            owners: true,
            workload: true,
            history: false,
        },
        Fields::default(),
    )
}

/// The JSON Schema of a history record (`tcptab history`): the socket
/// record with the namespace, owner and history fields, all required.
pub fn history_schema() -> String {
    let all = Fields {
        netns: true,
        owners: true,
        workload: true,
        history: true,
    };
    schema_of("tcptab history record", all, all)
}

/// The schema of records with up to `all` fields, `always` of them required.
fn schema_of(title: &str, all: Fields, always: Fields) -> String {
    let ty = |def: &FieldDef| -> String {
        let base = match def.ty {
            Ty::Integer => r#""type": "integer""#,
            Ty::Boolean => r#""type": "boolean""#,
            Ty::String | Ty::Address => r#""type": "string""#,
            // Groups are written with their members below, not through here.
            Ty::Object => r#""type": "object""#,
            Ty::Owners => {
                r#""type": "array", "items": {"type": "object", "required": ["pid", "command", "fd"], "additionalProperties": false, "properties": {"pid": {"type": "integer"}, "command": {"type": "string"}, "fd": {"type": "integer"}}}"#
            }
        };
        let described = format!("\"description\": {:?}", def.doc);
        if def.null_means.is_empty() {
            format!("{{{base}, {described}}}")
        } else {
            format!("{{{described}, \"anyOf\": [{{{base}}}, {{\"type\": \"null\", \"description\": {:?}}}]}}", def.null_means)
        }
    };
    let object = |members: &[&FieldDef]| -> String {
        let props: Vec<String> = members
            .iter()
            .map(|d| format!("{:?}: {}", d.name, ty(d)))
            .collect();
        let names: Vec<String> = members.iter().map(|d| format!("{:?}", d.name)).collect();
        format!(
            "{{\"type\": \"object\", \"additionalProperties\": false, \"required\": [{}], \"properties\": {{{}}}}}",
            names.join(", "),
            props.join(", ")
        )
    };
    let all = field_defs(all);
    let always: Vec<&str> = field_defs(always)
        .iter()
        .map(|(g, d)| g.map_or(d.name, |g| g.name))
        .collect();
    let mut top: Vec<String> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let (name, text) = match all[i].0 {
            None => {
                i += 1;
                (all[i - 1].1.name, ty(all[i - 1].1))
            }
            Some(group) => {
                let members: Vec<&FieldDef> = all[i..]
                    .iter()
                    .take_while(|(g, _)| *g == Some(group))
                    .map(|(_, d)| *d)
                    .collect();
                i += members.len();
                (
                    group.name,
                    format!(
                        "{{\"description\": {:?}, \"anyOf\": [{}, {{\"type\": \"null\", \"description\": {:?}}}]}}",
                        group.doc,
                        object(&members),
                        group.null_means
                    ),
                )
            }
        };
        top.push(format!("{name:?}: {text}"));
        if always.contains(&name) {
            names.push(format!("{name:?}"));
        }
    }
    format!(
        "{{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\", \"title\": \"{title}, schema version {SCHEMA_VERSION}\", \"type\": \"object\", \"additionalProperties\": false, \"required\": [{}], \"properties\": {{{}}}}}",
        names.join(", "),
        top.join(", ")
    )
}
