use super::*;
use std::collections::HashSet;

#[test]
fn no_name_twice_at_one_level() {
    let all = Fields {
        netns: true,
        owners: true,
        workload: true,
        history: true,
    };
    let defs = field_defs(all);
    let mut seen = HashSet::new();
    for (group, def) in &defs {
        assert!(
            seen.insert((group.map(|g| g.name), def.name)),
            "{} twice",
            def.name
        );
    }
    // Groups' names do not collide with top-level names either.
    for g in GROUPS {
        assert!(!seen.contains(&(None, g.name)), "{}", g.name);
    }
    assert_eq!(
        defs.len(),
        TOP_LEVEL.len() - GROUPS.len()
            + TCP_INFO_FIELDS.len()
            + MEMORY_FIELDS.len()
            + WORKLOAD_FIELDS.len()
    );
}

#[test]
fn docs_schema_md_describes_every_field() {
    let doc = include_str!("../../../../docs/schema.md");
    let all = field_defs(Fields {
        netns: true,
        owners: true,
        workload: true,
        history: true,
    });
    for (group, def) in all {
        let name = match group {
            Some(g) => format!("`{}.{}`", g.name, def.name),
            None => format!("`{}`", def.name),
        };
        assert!(
            doc.contains(&format!("| {name} |")),
            "{name} is not in docs/schema.md"
        );
    }
}

#[test]
fn the_schema_is_json_with_every_field() {
    let text = history_schema() + &schema();
    for g in GROUPS {
        assert!(text.contains(&format!("{:?}: {{", g.name)), "{}", g.name);
    }
    for def in TOP_LEVEL {
        assert!(
            text.contains(&format!("{:?}: {{", def.name)),
            "{}",
            def.name
        );
    }
}

#[test]
fn fields_follow_the_options_not_the_row() {
    let plain = field_defs(Fields::default());
    let owners = field_defs(Fields {
        owners: true,
        ..Fields::default()
    });
    assert_eq!(owners.len(), plain.len() + 2);
    assert_eq!(owners.last().unwrap().1.name, "owners");
}
