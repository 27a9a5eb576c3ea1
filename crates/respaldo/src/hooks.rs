//! Hook commands: an [`EventSink`] that runs commands named per event.
//!
//! Each command gets the event as one line of JSON on standard input and its name in the
//! environment variable `RESPALDO_EVENT`; its standard output is discarded, its standard error
//! kept for the warning if it fails. Commands run one after the other on the operation's
//! thread, so a hook on a started event runs before the operation goes on (it can, for
//! example, dump a database first). Each runs in its own process group and is killed with
//! everything it started when it outlives the timeout.
//!
//! A hook never fails the operation: one that cannot start, exits with a failure or hangs is
//! reported to the warning callback ([`HookSink::on_warning`]) as a [`HookWarning`].

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::events::{Event, EventKind, EventSink};

/// How long a hook may run before it is killed, unless told otherwise.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment variable holding the event's name.
pub const HOOK_EVENT_VAR: &str = "RESPALDO_EVENT";

/// Most bytes of a failed hook's standard error quoted in its warning.
const STDERR_QUOTED: usize = 2000;

/// One hook command. In JSON, a string is run through `sh -c`; an array is the program and
/// its arguments, run directly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HookCommand {
    /// A shell command line, run as `sh -c LINE`.
    Shell(String),
    /// A program and its arguments (`argv[0]` is looked up in `PATH` if it has no `/`).
    Argv(Vec<String>),
}

impl HookCommand {
    /// A shell command line.
    pub fn shell(line: impl Into<String>) -> Self {
        HookCommand::Shell(line.into())
    }

    /// A program and its arguments.
    pub fn argv<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        HookCommand::Argv(argv.into_iter().map(Into::into).collect())
    }

    fn command(&self) -> Result<Command, String> {
        match self {
            HookCommand::Shell(line) => {
                let mut command = Command::new("/bin/sh");
                command.arg("-c").arg(line);
                Ok(command)
            }
            HookCommand::Argv(argv) => match argv.split_first() {
                Some((program, args)) if !program.is_empty() => {
                    let mut command = Command::new(program);
                    command.args(args);
                    Ok(command)
                }
                _ => Err("is empty: name a program to run".to_string()),
            },
        }
    }
}

impl fmt::Display for HookCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookCommand::Shell(line) => write!(f, "`{line}`"),
            HookCommand::Argv(argv) => write!(f, "`{}`", argv.join(" ")),
        }
    }
}

/// A hook that failed, hung or could not start. Displayed as
/// `hook `CMD` for EVT_...: WHAT HAPPENED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookWarning {
    /// The event the hook ran for.
    pub event: EventKind,
    /// The command, as configured.
    pub command: HookCommand,
    /// What happened (exit status and the end of its standard error, a timeout, why it could
    /// not start).
    pub message: String,
}

impl fmt::Display for HookWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hook {} for {}: {}",
            self.command, self.event, self.message
        )
    }
}

type WarningFn = Box<dyn Fn(&HookWarning) + Send + Sync>;

/// Runs the commands configured for each event; see the module documentation.
pub struct HookSink {
    hooks: BTreeMap<EventKind, Vec<HookCommand>>,
    timeout: Duration,
    on_warning: Option<WarningFn>,
    /// Variables hooks never see: the passwords this process holds.
    hidden_env: Vec<String>,
}

/// Variables that may hold a password, removed from every hook's environment.
pub const PASSWORD_VARIABLES: [&str; 3] = [
    "RESPALDO_PASSWORD",
    "RESPALDO_NEW_PASSWORD",
    "RESPALDO_PASSWORD_FILE",
];

impl fmt::Debug for HookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookSink")
            .field("hooks", &self.hooks)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HookSink {
    /// Runs `hooks[event]` for each event, each command killed after `timeout`
    /// ([`DEFAULT_HOOK_TIMEOUT`] is the usual choice). Warnings are dropped until a callback
    /// is set with [`HookSink::on_warning`].
    pub fn new(hooks: BTreeMap<EventKind, Vec<HookCommand>>, timeout: Duration) -> Self {
        Self {
            hooks,
            timeout,
            on_warning: None,
            hidden_env: PASSWORD_VARIABLES.iter().map(|v| v.to_string()).collect(),
        }
    }

    /// Hides environment variable `name` (one that holds a password) from every hook, on top
    /// of [`PASSWORD_VARIABLES`].
    pub fn hiding_env(mut self, name: &str) -> Self {
        self.hidden_env.push(name.to_string());
        self
    }

    /// Calls `f` for every hook that fails, hangs or cannot start.
    pub fn on_warning(mut self, f: impl Fn(&HookWarning) + Send + Sync + 'static) -> Self {
        self.on_warning = Some(Box::new(f));
        self
    }

    /// The commands configured for `event`.
    pub fn commands(&self, event: EventKind) -> &[HookCommand] {
        self.hooks.get(&event).map_or(&[], Vec::as_slice)
    }

    /// Runs one command for `event`: `Err` says why it failed.
    pub fn run(&self, command: &HookCommand, event: &Event) -> Result<(), String> {
        let mut process = command.command()?;
        // A hook is someone else's program: it gets the event, not the repository's password.
        for name in &self.hidden_env {
            process.env_remove(name);
        }
        process
            .env(HOOK_EVENT_VAR, event.event.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = process
            .spawn()
            .map_err(|e| format!("cannot start it: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            let mut json = event.to_json();
            json.push('\n');
            // A thread, so that a hook that does not read its input cannot block us; one
            // that exits without reading it is fine (the broken pipe is ignored).
            std::thread::spawn(move || {
                let _ = stdin.write_all(json.as_bytes());
            });
        }
        let stderr = child.stderr.take().map(|mut pipe| {
            let (tx, rx) = crossbeam_channel::bounded(1);
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    kept.extend_from_slice(&buf[..n]);
                    if kept.len() > 2 * STDERR_QUOTED {
                        kept.drain(..kept.len() - STDERR_QUOTED);
                    }
                }
                let _ = tx.send(kept);
            });
            rx
        });
        let status = wait(&mut child, self.timeout)?;
        if status.success() {
            return Ok(());
        }
        // The output ends when the hook and what it started are gone: wait briefly.
        let said = stderr
            .and_then(|rx| rx.recv_timeout(Duration::from_secs(1)).ok())
            .map(|bytes| quote_tail(&bytes))
            .unwrap_or_default();
        Err(if said.is_empty() {
            format!("failed ({status})")
        } else {
            format!("failed ({status}): {said}")
        })
    }
}

/// Waits for `child` up to `timeout`; past it, kills its process group.
fn wait(child: &mut Child, timeout: Duration) -> Result<ExitStatus, String> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "did not finish within {}; it was killed",
                    describe_duration(timeout)
                ));
            }
            Ok(None) => {
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => {
                let _ = child.kill();
                return Err(format!("cannot wait for it: {e}"));
            }
        }
    }
}

fn describe_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// The end of a hook's standard error, trimmed, on one line.
fn quote_tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let start = text.len().saturating_sub(STDERR_QUOTED);
    let start = (start..=text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl EventSink for HookSink {
    fn emit(&self, event: &Event) {
        for command in self.commands(event.event) {
            if let Err(message) = self.run(command, event)
                && let Some(warn) = &self.on_warning
            {
                warn(&HookWarning {
                    event: event.event,
                    command: command.clone(),
                    message,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_from_json() {
        let parsed: BTreeMap<EventKind, Vec<HookCommand>> = serde_json::from_str(
            r#"{"EVT_BACKUP_FAILED": ["/usr/local/bin/alert-ops", ["notify", "--urgent"]]}"#,
        )
        .unwrap_or_default();
        assert_eq!(
            parsed.get(&EventKind::BackupFailed),
            Some(&vec![
                HookCommand::shell("/usr/local/bin/alert-ops"),
                HookCommand::argv(["notify", "--urgent"]),
            ])
        );
        let bad: Result<BTreeMap<EventKind, Vec<HookCommand>>, _> =
            serde_json::from_str(r#"{"EVT_NOPE": []}"#);
        assert!(bad.is_err_and(|e| e.to_string().contains("unknown event")));
    }

    #[test]
    fn empty_argv_is_refused() {
        let sink = HookSink::new(BTreeMap::new(), DEFAULT_HOOK_TIMEOUT);
        let event = Event::new(EventKind::BackupStarted, "/r");
        let result = sink.run(&HookCommand::Argv(Vec::new()), &event);
        assert!(result.is_err_and(|e| e.contains("empty")));
    }
}
