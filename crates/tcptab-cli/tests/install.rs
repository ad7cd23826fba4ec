//! What is installed beside the binary: the completion scripts, driven
//! through bash's own completion machinery (`complete -p` names the
//! function, called as bash calls it), and the manual pages, one per
//! command, each rendered by groff without a warning.

use std::path::Path;
use std::process::Command;

fn tcptab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args(args)
        .output()
        .unwrap()
}

/// What bash offers for the command line `line` (the word under the cursor
/// is its last, after the last space), in directory `dir`: the
/// completion function that `complete -p tcptab` names, called with
/// COMP_WORDS and COMP_CWORD as bash sets them; its COMPREPLY, one per line.
fn offered(line: &str, dir: &Path) -> Vec<String> {
    let script = format!(
        r#"
source <({bin} completions bash) || exit 9
spec=$(complete -p tcptab) || exit 8
function=$(sed -n 's/.* -F \([^ ]*\) .*/\1/p' <<<"$spec")
line='{line}'
read -ra COMP_WORDS <<<"$line"
[[ "$line" == *' ' ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="$line"; COMP_POINT=${{#line}}
prev=""; (( COMP_CWORD > 0 )) && prev=${{COMP_WORDS[COMP_CWORD-1]}}
"$function" tcptab "${{COMP_WORDS[COMP_CWORD]}}" "$prev" 2>/dev/null
printf '%s\n' "${{COMPREPLY[@]}}"
echo "SPEC=$spec"
"#,
        bin = env!("CARGO_BIN_EXE_tcptab")
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{line}: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (replies, spec) = text.split_once("SPEC=").unwrap();
    // Where nothing is offered, bash is not told to fall back to files.
    assert!(!spec.contains("-o default"), "{spec}");
    replies
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn completions_offer_words_not_files() {
    let dir = tempfile_dir();
    std::fs::write(dir.join("history.db"), b"").unwrap();
    std::fs::write(dir.join("notes.txt"), b"").unwrap();
    let words = |line: &str| offered(line, &dir);
    assert_eq!(words("tcptab --state est"), ["established"]);
    assert!(words("tcptab kill --state ").contains(&"close-wait".to_string()));
    assert_eq!(words("tcptab --state nosuch"), Vec::<String>::new());
    assert_eq!(
        words("tcptab --format "),
        ["table", "json", "jsonl", "csv", "proc"]
    );
    assert!(words("tcptab list --sort ").contains(&"rx-queue".to_string()));
    assert_eq!(words("tcptab --source n"), ["netlink"]);
    assert_eq!(words("tcptab top --format "), ["screen", "jsonl"]);
    // A port, an address, an interval: no file names.
    for line in [
        "tcptab --sport ",
        "tcptab --dst ",
        "tcptab watch --interval ",
        "tcptab --netns-pid ",
    ] {
        let offered = words(line);
        assert!(
            !offered
                .iter()
                .any(|w| w.contains("history") || w.contains("notes")),
            "{line}: {offered:?}"
        );
    }
    // A file where a file goes.
    assert!(words("tcptab record --db h").contains(&"history.db".to_string()));
    assert!(words("tcptab -N nosuchnamespace").is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn completions_offer_the_namespaces_by_name() {
    testkit::needs_root!();
    let netns = testkit::NamedNetns::add("tcptab-compl");
    let name = netns.name.clone();
    let dir = tempfile_dir();
    let prefix = format!("tcptab -N tcptab-compl-{}", std::process::id());
    let after_n = offered(&prefix, &dir);
    let after_netns = offered(&format!("tcptab list --netns {name}"), &dir);
    let after_kill = offered(&format!("tcptab kill -N {name}"), &dir);
    drop(netns);
    std::fs::remove_dir_all(&dir).unwrap();
    for offered in [after_n, after_netns, after_kill] {
        assert_eq!(offered, std::slice::from_ref(&name));
    }
}

#[test]
fn the_other_shells_get_the_same_words() {
    let zsh = String::from_utf8(tcptab(&["completions", "zsh"]).stdout).unwrap();
    assert!(zsh.contains(":NETNS:_files -W /run/netns"), "zsh: -N");
    assert!(zsh.contains("established"), "zsh: states");
    assert!(
        !zsh.contains(":PORT[-PORT]:_default"),
        "zsh: ports are not files"
    );
    let fish = String::from_utf8(tcptab(&["completions", "fish"]).stdout).unwrap();
    assert!(
        fish.lines()
            .any(|l| l.contains("-l netns ") && l.contains("(ls /run/netns")),
        "fish: -N"
    );
    for shell in ["elvish", "powershell"] {
        let out = tcptab(&["completions", shell]);
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
}

/// Render a page with groff, which must not warn.
fn groff(roff: &[u8], page: &str) {
    let mut groff = testkit::tool("groff")
        .args(["-man", "-Tutf8", "-ww"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("groff: Debian's package groff-base (.ci/run installs it)");
    std::io::Write::write_all(groff.stdin.as_mut().unwrap(), roff).unwrap();
    let rendered = groff.wait_with_output().unwrap();
    assert!(rendered.status.success(), "{page}");
    testkit::assert_quiet(&rendered, page);
}

#[test]
fn a_page_for_every_command_and_every_page_it_names() {
    let dir = tempfile_dir();
    let out = tcptab(&["man", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for command in testkit::COMMANDS {
        assert!(
            pages.contains(&format!("tcptab-{command}.1")),
            "{command}: {pages:?}"
        );
    }
    for page in &pages {
        let roff = std::fs::read(dir.join(page)).unwrap();
        groff(&roff, page);
        // Every page it refers to is there.
        let text = String::from_utf8_lossy(&roff);
        for (at, _) in text.match_indices("tcptab\\-") {
            let name: String = text[at..]
                .replace("\\-", "-")
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            assert!(
                pages.contains(&format!("{name}.1")),
                "{page} names {name}(1)"
            );
        }
    }
    // One page on stdout; an unknown command is a one-line error.
    let list = tcptab(&["man", "list"]);
    assert!(list.status.success());
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(
        list.contains(".TH tcptab-list 1") && list.contains("\\-\\-sport"),
        "{list}"
    );
    let top = String::from_utf8(tcptab(&["man"]).stdout).unwrap();
    assert!(top.contains(".TH tcptab 1"));
    let bad = tcptab(&["man", "lsit"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8(bad.stderr).unwrap();
    assert!(
        err.starts_with("error: man: no command 'lsit'") && err.lines().count() == 1,
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A fresh directory of this test's own.
fn tempfile_dir() -> testkit::Scratch {
    testkit::Scratch::new("install")
}
