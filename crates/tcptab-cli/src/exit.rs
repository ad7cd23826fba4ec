//! Exit codes, in one place: 0 success, 2 error (as clap's usage errors).
//! A closed pipe (`tcptab | head`) is success, silently.

use std::io;
use std::process::ExitCode;

pub const ERROR: u8 = 2;

/// Print the error once, as `error: ...` on one line, and pick the code.
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            note!("error: {e:#}");
            ExitCode::from(ERROR)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
