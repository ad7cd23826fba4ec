//! Exit codes, in one place: 0 success, 1 partly refused, 2 error (as
//! clap's usage errors), 128 + N stopped by signal N.
//! A closed pipe (`tcptab | head`) is success, silently.

use std::io;
use std::process::ExitCode;

pub const ERROR: u8 = 2;
/// Some of the work was refused (`kill`: the kernel refused some sockets).
pub const PARTIAL: u8 = 1;

/// An outcome that is not an error but exits with [`PARTIAL`]: its text is
/// printed as a note.
#[derive(Debug)]
pub struct Partial(pub String);

impl std::fmt::Display for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Partial {}

/// Print the error once, as `error: ...` on one line, and pick the code.
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Signalled>().is_some() => {
            let signal = e.downcast_ref::<Signalled>().map_or(0, |s| s.0);
            ExitCode::from(128u8.wrapping_add(signal as u8))
        }
        Err(e) if e.downcast_ref::<Partial>().is_some() => {
            note!("tcptab: {e}");
            ExitCode::from(PARTIAL)
        }
        Err(e) => {
            note!("error: {e:#}");
            ExitCode::from(ERROR)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        let io = cause.downcast_ref::<io::Error>().map(io::Error::kind);
        // serde_json's writer errors carry the io error's kind.
        let json = cause
            .downcast_ref::<serde_json::Error>()
            .and_then(serde_json::Error::io_error_kind);
        io.or(json) == Some(io::ErrorKind::BrokenPipe)
    })
}

/// Stopped by a signal (`top`, once the terminal is restored): the exit
/// status is the shell's convention, 128 + the signal's number, without a
/// message.
#[derive(Debug)]
pub struct Signalled(pub i32);

impl std::fmt::Display for Signalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped by signal {}", self.0)
    }
}

impl std::error::Error for Signalled {}

/// `Partial` (exit 1) when a finding of `severities` reaches `fail_on`:
/// what `explain --diagnose` and `audit` end with.
pub fn fail_on(
    fail_on: crate::cli::FailOn,
    severities: impl Iterator<Item = tcptab::diagnose::Severity>,
) -> anyhow::Result<()> {
    use crate::cli::FailOn;
    use tcptab::diagnose::Severity;
    let bar = match fail_on {
        FailOn::Warning => Severity::Warning,
        FailOn::Critical => Severity::Critical,
        FailOn::Never => return Ok(()),
    };
    let failing = severities.filter(|s| *s >= bar).count();
    if failing > 0 {
        return Err(Partial(format!(
            "{} of severity {bar} or worse (--fail-on)",
            tcptab::counted(failing as u64, "finding")
        ))
        .into());
    }
    Ok(())
}
