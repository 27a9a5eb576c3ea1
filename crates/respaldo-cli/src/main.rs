//! The `respaldo` command line: parse the arguments, run the command, turn the outcome into an
//! exit code.
//!
//! Exit codes follow restic: 0 success, 1 error, 2 invalid arguments (clap), 3 a backup saved
//! its snapshot but could not read some sources, 10 no repository at the location, 11 the
//! repository is locked, 12 a wrong or missing password. A broken pipe on output is success:
//! the reader has what it wanted.

mod args;
mod commands;
mod output;
mod password;
mod progress;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// No repository at the location.
const EXIT_NO_REPOSITORY: u8 = 10;
/// Another process holds a conflicting lock.
const EXIT_LOCKED: u8 = 11;
/// Wrong or missing password.
const EXIT_WRONG_PASSWORD: u8 = 12;

fn main() -> ExitCode {
    let args = args::Args::parse();
    match commands::run(&args) {
        Ok(code) => code,
        Err(err) => report(&err),
    }
}

/// Prints `err` (unless it is a broken pipe) and returns its exit code.
fn report(err: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    let engine = err
        .chain()
        .find_map(|e| e.downcast_ref::<respaldo::Error>());
    let missing_password = err
        .chain()
        .any(|e| e.is::<password::MissingPassword>() || e.is::<commands::copy::SourcePassword>());
    let (code, hint) = match engine {
        // Its own message says which password was wrong and where it comes from.
        _ if missing_password => (EXIT_WRONG_PASSWORD, None),
        Some(e) if e.is_no_repository() => (EXIT_NO_REPOSITORY, None),
        Some(e) if e.is_locked() => (EXIT_LOCKED, None),
        Some(e) if e.is_wrong_password() => (
            EXIT_WRONG_PASSWORD,
            Some(
                "check RESPALDO_PASSWORD or the password file (--password-file, RESPALDO_PASSWORD_FILE)",
            ),
        ),
        _ => (1, None),
    };
    let mut stderr = std::io::stderr().lock();
    // Nothing can be done if standard error is gone too.
    let _ = writeln!(stderr, "respaldo: error: {}", message(err));
    if let Some(hint) = hint {
        let _ = writeln!(stderr, "respaldo: hint: {hint}");
    }
    ExitCode::from(code)
}

/// The error and its causes, each once: several error types already include their cause in
/// their own message, and printing it again would say everything twice.
fn message(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// Whether the error comes from writing to a pipe whose reader has gone.
///
/// A broken pipe inside the repository's storage is a real failure, not this.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    let from_storage = err.chain().any(|e| {
        e.downcast_ref::<respaldo::Error>()
            .is_some_and(|e| matches!(e, respaldo::Error::Store(_)))
    });
    !from_storage
        && err.chain().any(|e| {
            e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        })
}
