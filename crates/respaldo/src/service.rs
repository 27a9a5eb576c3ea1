//! The service: run every scheduled job of a config when it is due, until asked to stop.
//!
//! [`run_service`] computes each job's next run from its schedule (in the job's time zone),
//! sleeps until the earliest, runs the jobs that are due one at a time (the one due first
//! first), and starts over. A job that fails is reported and scheduled again like any other;
//! a job is never started while it runs. When a run ends after later runs of the same job were
//! due (it took longer than its period, or the machine slept), those runs are skipped, not
//! made up for, and a [`ServiceNotice::Missed`] says how many.
//!
//! Stopping: [`StopSignal::stop`] (from a signal handler's thread, or any other) wakes the
//! service at once when it sleeps; when a job is running, the job finishes its backup, skips
//! forget and prune, and the service returns. A backup that is killed instead is harmless
//! (the snapshot manifest is written last; the next prune removes what it had written).

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::config::{Config, next_run};
use crate::error::{Error, Result};
use crate::jobs::{JobOptions, JobOutcome, run_job};

/// The longest the service sleeps at once before it looks at the clock again (so that a
/// clock set forward, or a machine waking from sleep, delays a job by at most this).
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Most missed runs counted after a late run (a schedule every second and a job of hours).
const MAX_MISSED_COUNTED: u64 = 100_000;

/// A stop request shared between the service and whoever stops it: clone it, hand one to
/// [`run_service`], call [`StopSignal::stop`] on another.
#[derive(Clone, Default)]
pub struct StopSignal {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl std::fmt::Debug for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopSignal")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl StopSignal {
    /// A signal not yet given.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks everything holding a clone of this signal to stop. Returns at once.
    pub fn stop(&self) {
        let (flag, wake) = &*self.inner;
        *flag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        wake.notify_all();
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        *self
            .inner
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until a stop is asked for or `timeout` passes; returns whether to stop.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (flag, wake) = &*self.inner;
        let deadline = Instant::now() + timeout;
        let mut stopped = flag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while !*stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            stopped = wake
                .wait_timeout(stopped, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
        true
    }
}

/// What the service reports as it goes.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServiceNotice<'a> {
    /// A job's next run, computed when the service starts and after each run.
    Scheduled {
        /// The job.
        job: &'a str,
        /// When it runs next.
        next: Timestamp,
    },
    /// A job has no schedule (or its schedule comes no more): the service never runs it.
    Unscheduled {
        /// The job.
        job: &'a str,
    },
    /// A job starts.
    JobStarted {
        /// The job.
        job: &'a str,
        /// The time it was due.
        due: Timestamp,
    },
    /// A job ended (successfully or not: see [`JobOutcome::status`]).
    JobFinished {
        /// The job.
        job: &'a str,
        /// What it did.
        outcome: &'a JobOutcome,
    },
    /// Runs of a job came due while it ran (or while the service could not run it): they
    /// are skipped.
    Missed {
        /// The job.
        job: &'a str,
        /// How many runs were skipped.
        missed: u64,
    },
    /// A stop was asked for; the service returns.
    Stopping,
}

/// Receives the service's notices.
pub type NoticeFn = Arc<dyn Fn(&ServiceNotice<'_>) + Send + Sync>;

/// How [`run_service`] runs jobs.
#[derive(Clone, Default)]
pub struct ServiceOptions {
    /// How each job runs (sinks, warnings, backup log). Its `stop` is replaced by the
    /// service's.
    pub job: JobOptions,
    /// Called with every [`ServiceNotice`]; `None` drops them.
    pub on_notice: Option<NoticeFn>,
}

impl std::fmt::Debug for ServiceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceOptions")
            .field("job", &self.job)
            .field("on_notice", &self.on_notice.is_some())
            .finish()
    }
}

/// What the service did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceSummary {
    /// Jobs run.
    pub runs: u64,
    /// Of those, the ones that failed.
    pub failures: u64,
    /// Runs skipped because the job was still running (or late) when they came due.
    pub missed: u64,
}

/// Runs the scheduled jobs of `config` when due, until `stop` is given (see the module
/// documentation). Returns what it did.
///
/// Errors: no job of `config` has a schedule ([`Error::Config`]). A job that fails never
/// stops the service.
pub fn run_service(
    config: &Config,
    options: &ServiceOptions,
    stop: &StopSignal,
) -> Result<ServiceSummary> {
    let notify = |notice: ServiceNotice<'_>| {
        if let Some(f) = &options.on_notice {
            f(&notice);
        }
    };
    let mut job_options = options.job.clone();
    job_options.stop = Some(stop.clone());

    // Each scheduled job and its next run.
    let now = Timestamp::now();
    let mut next: Vec<(&str, Option<Timestamp>)> = Vec::new();
    for (name, job) in &config.jobs {
        match next_run(job, now) {
            Some(at) => {
                notify(ServiceNotice::Scheduled {
                    job: name,
                    next: at,
                });
                next.push((name, Some(at)));
            }
            None => notify(ServiceNotice::Unscheduled { job: name }),
        }
    }
    if next.is_empty() {
        return Err(Error::Config {
            file: config.path.clone(),
            field: "jobs".to_string(),
            message: "no job has a schedule, so the service has nothing to run: give a job a \
                      \"schedule\" (cron syntax, such as \"0 1 * * *\"), or run jobs with \
                      `respaldo run JOB`"
                .to_string(),
            position: None,
        });
    }

    let mut summary = ServiceSummary::default();
    loop {
        if stop.is_stopped() {
            notify(ServiceNotice::Stopping);
            return Ok(summary);
        }
        let now = Timestamp::now();
        // The job due first (ties: by name, the order of `next`).
        let due = next
            .iter()
            .enumerate()
            .filter_map(|(i, (_, at))| at.filter(|at| *at <= now).map(|at| (at, i)))
            .min();
        let Some((due_at, index)) = due else {
            let earliest = next.iter().filter_map(|(_, at)| *at).min();
            let sleep = earliest
                .map(|at| Duration::try_from(now.duration_until(at)).unwrap_or(Duration::ZERO))
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            // Wake a moment after the boundary rather than a moment before it.
            stop.wait(sleep + Duration::from_millis(1));
            continue;
        };
        let name = next[index].0;
        notify(ServiceNotice::JobStarted {
            job: name,
            due: due_at,
        });
        let outcome = run_caught(config, name, &job_options);
        summary.runs += 1;
        if outcome.error.is_some() {
            summary.failures += 1;
        }
        notify(ServiceNotice::JobFinished {
            job: name,
            outcome: &outcome,
        });

        let ended = Timestamp::now();
        let Some(job) = config.jobs.get(name) else {
            next[index].1 = None;
            continue;
        };
        let mut missed = 0;
        let mut at = due_at;
        while missed < MAX_MISSED_COUNTED {
            match next_run(job, at) {
                Some(later) if later <= ended => {
                    missed += 1;
                    at = later;
                }
                _ => break,
            }
        }
        if missed > 0 {
            summary.missed += missed;
            notify(ServiceNotice::Missed { job: name, missed });
        }
        next[index].1 = next_run(job, ended);
        match next[index].1 {
            Some(at) => notify(ServiceNotice::Scheduled {
                job: name,
                next: at,
            }),
            None => notify(ServiceNotice::Unscheduled { job: name }),
        }
    }
}

/// Runs a job; a panic (a bug) becomes a failed outcome, so that the service goes on.
fn run_caught(config: &Config, name: &str, options: &JobOptions) -> JobOutcome {
    let run = std::panic::AssertUnwindSafe(|| run_job(config, name, options));
    match std::panic::catch_unwind(run) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => JobOutcome::failed(config, name, error),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            JobOutcome::failed(
                config,
                name,
                Error::invalid(format!("the job stopped on an internal error: {what}")),
            )
        }
    }
}
