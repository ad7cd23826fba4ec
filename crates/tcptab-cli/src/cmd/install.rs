//! `tcptab completions SHELL` and `tcptab man`: what a package or a user
//! installs beside the binary, generated from the command line's own
//! definition (clap_complete, clap_mangen), so they never drift from it.
//!
//! Completions offer what a word can be: states, formats, sort keys and
//! sources from their lists, the namespace names under /run/netns after
//! `-N`, file names only after an option that takes a file, nothing where a
//! number, a port or an address goes. `tcptab man` prints the page of
//! `tcptab`, or of one subcommand (`tcptab man list`); `tcptab man --dir
//! DIR` writes every page into DIR.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::{Arg, Command, CommandFactory, ValueHint};

use crate::cli::{Cli, ManArgs};

/// Where `ip netns` keeps the names of network namespaces.
const NETNS_DIR: &str = "/run/netns";

pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut command = for_completion(Cli::command());
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "tcptab", &mut script);
    let script = String::from_utf8(script).context("the completion script")?;
    let mut out = io::stdout().lock();
    out.write_all(with_namespaces(shell, &script).as_bytes())
        .and_then(|()| out.flush())
        .context("writing output")
}

/// The command line as completion sees it: an option whose value is
/// neither a file nor one of a list (a port, an address, a number, a
/// duration) completes to nothing rather than to file names.
fn for_completion(command: Command) -> Command {
    command
        .mut_args(|arg| {
            if takes_a_word(&arg) {
                arg.value_hint(ValueHint::Other)
            } else {
                arg
            }
        })
        .mut_subcommands(for_completion)
}

fn takes_a_word(arg: &Arg) -> bool {
    !arg.is_positional()
        && arg.get_action().takes_values()
        && arg.get_value_hint() == ValueHint::Unknown
        && arg.get_possible_values().is_empty()
}

/// The generated script with `-N`/`--netns` completing the names under
/// /run/netns.
fn with_namespaces(shell: clap_complete::Shell, script: &str) -> String {
    use clap_complete::Shell;
    match shell {
        Shell::Bash => {
            let list = format!(
                "COMPREPLY=($(compgen -W \"$(ls {NETNS_DIR} 2>/dev/null)\" -- \"${{cur}}\"))"
            );
            let mut out = String::with_capacity(script.len());
            let (mut in_netns, mut listed) = (false, false);
            for line in script.split_inclusive('\n') {
                let trimmed = line.trim();
                if trimmed == "--netns)" || trimmed == "-N)" {
                    in_netns = true;
                } else if in_netns && trimmed == "COMPREPLY=(\"${cur}\")" {
                    out.push_str(&line.replace("COMPREPLY=(\"${cur}\")", &list));
                    listed = true;
                    continue;
                } else if listed && trimmed != "return 0" {
                    // A name is a whole word: no `compopt -o nospace`.
                    continue;
                } else if trimmed == ";;" {
                    in_netns = false;
                }
                listed = false;
                out.push_str(line);
            }
            // Where nothing matches, nothing: not bash's file names.
            out.replace(" -o bashdefault -o default tcptab", " tcptab")
        }
        Shell::Zsh => script.replace(":NETNS:", &format!(":NETNS:_files -W {NETNS_DIR}")),
        Shell::Fish => script
            .lines()
            .map(|line| {
                if line.contains(" -l netns ") {
                    format!("{line} -a \"(ls {NETNS_DIR} 2>/dev/null)\"\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect(),
        _ => script.to_string(),
    }
}

/// `tcptab man [COMMAND]`, `tcptab man --dir DIR`.
pub fn man(args: &ManArgs) -> Result<()> {
    // `help` is --help's, with no page of its own.
    let command = Cli::command().disable_help_subcommand(true);
    if let Some(dir) = &args.dir {
        return man_pages(&command, dir);
    }
    let page = match &args.command {
        None => command,
        Some(name) => match command.find_subcommand(name) {
            Some(sub) => sub.clone().name(leak(format!("tcptab-{name}"))),
            None => bail!(
                "man: no command '{}' (one of: {})",
                tcptab::filter::excerpt(name),
                subcommands(&command).join(", ")
            ),
        },
    };
    let mut out = io::stdout().lock();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .context("writing the manual page")?;
    out.flush().context("writing output")
}

/// The subcommands that have pages (not `help`).
fn subcommands(command: &Command) -> Vec<String> {
    command
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .map(|s| s.get_name().to_string())
        .collect()
}

/// `tcptab.1` and `tcptab-COMMAND.1` for every subcommand, into `dir`.
fn man_pages(command: &Command, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut command = command.clone();
    command.build();
    let write = |page: Command, file: String| -> Result<()> {
        let path = dir.join(file);
        let mut text = Vec::new();
        clap_mangen::Man::new(page).render(&mut text)?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write(command.clone(), "tcptab.1".into())?;
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("tcptab-{}", sub.get_name());
        write(sub.clone().name(leak(name.clone())), format!("{name}.1"))?;
    }
    Ok(())
}

/// A page's name for clap (which takes `&'static str` without its
/// `string` feature); a handful per run.
fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}
