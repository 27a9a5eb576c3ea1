//! `service`: run the scheduled jobs of the config in the foreground, until SIGTERM or SIGINT.
//!
//! One line per job start and end on standard error (`--quiet` keeps only failures and
//! warnings); with `--json`, the jobs' events as JSON lines on standard output. The first
//! SIGTERM or SIGINT lets the job in flight finish its backup (skipping its forget and prune),
//! then the service exits 0; a second one exits at once (an interrupted backup is harmless:
//! its snapshot is not written, and prune removes what it had stored).
//!
//! SIGHUP reloads the config file (`systemctl reload`): at once when no job runs, else when
//! the job in flight has ended. A config that cannot be used is a warning on standard error
//! (even with `--quiet`), naming the file and the field, and the service goes on with the
//! config it had. The reload's lines go to standard error, with or without `--json`: standard
//! output carries only the jobs' events.

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use respaldo::{JobStatus, ServiceControl, ServiceNotice, ServiceOptions};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::args::Global;
use crate::output::{self, Ui};

/// Runs `service`.
pub fn run(global: &Global, ui: &Ui) -> Result<ExitCode> {
    let config = super::jobs::load_config(global)?;
    let control = ServiceControl::new();
    watch_signals(&control)?;
    let quiet = ui.quiet;
    let verbose = ui.verbose > 0;
    // The next run of each job is said once, when the service starts and after a reload
    // (with -v, after each run too).
    let announced: Mutex<HashSet<String>> = Mutex::default();
    let options = ServiceOptions {
        job: super::jobs::job_options(global, ui),
        on_notice: Some(Arc::new(move |notice: &ServiceNotice<'_>| {
            let seen = || {
                announced
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            };
            match notice {
                // Said already: only with -v.
                ServiceNotice::Scheduled { job, .. }
                    if !seen().insert(job.to_string()) && !verbose =>
                {
                    return;
                }
                ServiceNotice::Reloaded { .. } => seen().clear(),
                _ => {}
            }
            report(notice, quiet);
        })),
    };
    if !quiet {
        log(&format!(
            "service started with {} job(s) from {}",
            config.jobs.len(),
            config.path.display()
        ));
    }
    let summary = respaldo::run_service(&config, &options, &control)?;
    if !quiet {
        let reloads = match (summary.reloads, summary.failed_reloads) {
            (0, 0) => String::new(),
            (done, 0) => format!("; config reloaded {done} time(s)"),
            (done, failed) => {
                format!("; config reloaded {done} time(s), {failed} reload(s) failed")
            }
        };
        log(&format!(
            "service stopped after {} run(s): {} failed, {} missed{reloads}",
            summary.runs, summary.failures, summary.missed
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// A thread that turns the first SIGTERM or SIGINT into a stop request, and the second into
/// an immediate exit, and each SIGHUP into a reload request (several before the service
/// takes one up are one reload).
fn watch_signals(control: &ServiceControl) -> Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])
        .context("cannot install the SIGTERM, SIGINT and SIGHUP handlers")?;
    let stop = control.clone();
    std::thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    if stop.is_stopped() {
                        log("SIGHUP: not reloading the config, the service is stopping");
                    } else {
                        log(
                            "SIGHUP: reloading the config (once the job in flight, if any, has \
                             ended)",
                        );
                        stop.reload();
                    }
                    continue;
                }
                let name = if signal == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                if stop.is_stopped() {
                    log(&format!("{name} again: exiting now"));
                    std::process::exit(128 + signal);
                }
                log(&format!(
                    "{name}: stopping once the job in flight (if any) has finished its backup; \
                     send it again to exit at once"
                ));
                stop.stop();
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// One line on standard error, with the local time.
fn log(message: &str) {
    let now = output::local_time(super::jobs::nanos(jiff::Timestamp::now()));
    // A closed standard error must not kill the service (eprintln! would panic).
    let _ = writeln!(std::io::stderr(), "respaldo: {now} {message}");
}

fn report(notice: &ServiceNotice<'_>, quiet: bool) {
    match notice {
        ServiceNotice::Scheduled { job, next } if !quiet => {
            log(&format!(
                "job {job}: next run at {}",
                output::local_time(super::jobs::nanos(*next))
            ));
        }
        ServiceNotice::Unscheduled { job } if !quiet => {
            log(&format!("job {job}: no schedule, not run by the service"));
        }
        ServiceNotice::JobStarted { job, .. } if !quiet => log(&format!("job {job}: started")),
        ServiceNotice::JobFinished { job, outcome } => {
            let took = format!("{:.1}s", outcome.duration.as_secs_f64());
            match (&outcome.error, outcome.status()) {
                (Some(error), _) => {
                    log(&format!(
                        "job {job}: {} FAILED after {took}: {}",
                        error.step,
                        respaldo::error_message(&error.error)
                    ));
                }
                (None, status) if !quiet => {
                    let word = if status == JobStatus::Partial {
                        "finished with warnings"
                    } else {
                        "finished"
                    };
                    let detail = super::jobs::describe(outcome)
                        .into_iter()
                        .map(|line| {
                            line.strip_prefix(&format!("job {job}: "))
                                .map(str::to_string)
                                .unwrap_or(line)
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                    log(&format!("job {job}: {word} in {took}: {detail}"));
                }
                _ => {}
            }
            // Warnings show even with --quiet, as for every command.
            for warning in outcome.warnings() {
                log(&format!(
                    "job {job}: warning: {}: {}",
                    warning.path.display(),
                    warning.message
                ));
            }
        }
        ServiceNotice::Missed { job, missed } => log(&format!(
            "job {job}: skipped {missed} run(s) that came due while it was running"
        )),
        ServiceNotice::Reloaded {
            file,
            jobs,
            scheduled,
            added,
            removed,
            changed,
        } if !quiet => {
            let mut what = Vec::new();
            for (word, names) in [("added", added), ("removed", removed), ("changed", changed)] {
                if !names.is_empty() {
                    what.push(format!("{word} {}", names.join(", ")));
                }
            }
            if what.is_empty() {
                what.push("no job changed".to_string());
            }
            log(&format!(
                "config reloaded from {}: {scheduled} scheduled job(s) of {jobs}; {}",
                file.display(),
                what.join("; ")
            ));
        }
        // A warning: shown even with --quiet.
        ServiceNotice::ReloadFailed { error, .. } => log(&format!(
            "warning: config not reloaded, the service goes on with the one it had: {}",
            respaldo::error_message(*error)
        )),
        ServiceNotice::Stopping if !quiet => log("stopping"),
        _ => {}
    }
}
