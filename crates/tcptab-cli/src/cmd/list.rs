//! `tcptab list`: every socket of both tables, in the chosen format.

use std::io;

use anyhow::{Context, Result};
use tcptab::{Family, ProcRoot, ReadOptions};

use crate::cli::ListArgs;
use crate::output::{self, OutputOptions};

pub fn run(args: &ListArgs) -> Result<()> {
    let options = ReadOptions {
        byte_order: args.source.byte_order.into(),
        lenient: args.source.lenient,
    };
    let root = ProcRoot::new(&args.source.root);
    let stdout = io::stdout().lock();
    let mut sink = output::sink(
        Box::new(stdout),
        OutputOptions {
            format: args.format(),
            byte_order: options.byte_order,
        },
    );
    for family in [Family::Ipv4, Family::Ipv6] {
        // Open (and fail) before writing anything of this table.
        let Some(mut reader) = root.open(family, options)? else {
            continue;
        };
        sink.table(family)?;
        for socket in reader.by_ref() {
            sink.socket(&socket?)?;
        }
        if reader.skipped() > 0 {
            if let Some(first) = reader.first_error() {
                eprintln!(
                    "tcptab: skipped {} malformed line(s) in {} (first: {first})",
                    reader.skipped(),
                    reader.path().display()
                );
            }
        }
    }
    sink.finish().context("writing output")?;
    Ok(())
}
