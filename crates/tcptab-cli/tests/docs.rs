//! The documents say what the program does: every option that README.md
//! and docs/*.md name is one the program has, and one that the command it
//! is written after takes (its `--help` lists it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::COMMANDS;

fn help(command: Option<&str>) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args(command)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{command:?} --help");
    String::from_utf8(out.stdout).unwrap()
}

/// The long options a help text lists.
fn long_options(help: &str) -> BTreeSet<String> {
    let mut options = BTreeSet::new();
    for (at, _) in help.match_indices("--") {
        let name: String = help[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if !name.is_empty() {
            options.insert(format!("--{name}"));
        }
    }
    options
}

fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// `--name` words of a line (not inside another word).
fn options_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("--") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-') {
            continue;
        }
        let name: String = text[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
            found.push(format!("--{name}"));
        }
    }
    found
}

#[test]
fn every_option_the_documents_name_is_the_programs() {
    let mut helps = vec![(None, help(None))];
    helps.extend(COMMANDS.iter().map(|c| (Some(*c), help(Some(c)))));
    let any: BTreeSet<String> = helps.iter().flat_map(|(_, h)| long_options(h)).collect();
    let of =
        |command: Option<&str>| long_options(&helps.iter().find(|(c, _)| *c == command).unwrap().1);
    let mut checked = 0;
    let mut wrong = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for (n, line) in text.lines().enumerate() {
            // Other programs' options (cargo's) are theirs.
            if line.contains("cargo ") {
                continue;
            }
            for option in options_in(line) {
                checked += 1;
                if !any.contains(&option) {
                    wrong.push(format!("{name}:{}: {option} is no option of tcptab", n + 1));
                }
            }
            // `tcptab COMMAND ... --option`: one that COMMAND takes (up to a
            // comment or the end of the code).
            for (at, _) in line.match_indices("tcptab ") {
                let rest = &line[at + "tcptab ".len()..];
                let end = rest.find(['#', '`', '|', ';', ')']).unwrap_or(rest.len());
                let words: Vec<&str> = rest[..end].split_whitespace().collect();
                let command = words.first().copied().filter(|w| COMMANDS.contains(w));
                let takes = of(command);
                for option in options_in(&rest[..end]) {
                    if !takes.contains(&option) {
                        wrong.push(format!(
                            "{name}:{}: tcptab {} does not take {option}",
                            n + 1,
                            command.unwrap_or("(list)")
                        ));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        checked > 50,
        "only {checked} options found in the documents"
    );
}

#[test]
fn the_check_catches_an_option_that_is_not_there() {
    let list = long_options(&help(Some("list")));
    assert!(list.contains("--sport") && list.contains("--format"));
    assert!(!list.contains("--per-remote-port"));
    assert_eq!(
        options_in("`tcptab serve --per-remote-port` and x--y --Z"),
        ["--per-remote-port"]
    );
}

/// The tests that walk every command (this one, the manual pages) cover
/// what `tcptab --help` lists, no more and no fewer.
#[test]
fn the_commands_walked_are_the_programs() {
    let top = help(None);
    let listed: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert_eq!(listed, COMMANDS, "{top}");
}
