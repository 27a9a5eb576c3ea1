//! The service: run every scheduled job of a config when it is due, until asked to stop.
//!
//! [`run_service`] computes each job's next run from its schedule (in the job's time zone),
//! sleeps until the earliest, runs the jobs that are due one at a time (the one due first
//! first), and starts over. A job that fails is reported and scheduled again like any other;
//! a job is never started while it runs. When a run ends after later runs of the same job were
//! due (it took longer than its period, or the machine slept), those runs are skipped, not
//! made up for, and a [`ServiceNotice::Missed`] says how many.
//!
//! Stopping: [`ServiceControl::stop`] (from a signal handler's thread, or any other) wakes the
//! service at once when it sleeps; when a job is running, the job finishes its backup, skips
//! forget and prune, and the service returns. A backup that is killed instead is harmless
//! (the snapshot manifest is written last; the next prune removes what it had written).
//!
//! Reloading: [`ServiceControl::reload`] makes the service read its config file again
//! ([`Config::path`], checked by [`load_service_config`]) at once when it sleeps, or when the
//! job in flight has ended (a job is never interrupted by a reload). Requests made before the
//! service gets to one coalesce into a single reload. A valid new config replaces the one in
//! use ([`ServiceNotice::Reloaded`]): new jobs are scheduled, removed jobs are no longer run,
//! and a job whose schedule or time zone changed gets its next run from the new ones (a job
//! whose schedule and time zone did not change keeps its next run, even one already due). A
//! config that cannot be read, is invalid or has no scheduled job is reported
//! ([`ServiceNotice::ReloadFailed`]) and the service goes on with the config it had: a reload
//! never stops the service.

use std::borrow::Cow;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::config::{Config, Job, next_run};
use crate::error::{Error, Result};
use crate::jobs::{JobOptions, JobOutcome, run_job};

/// The longest the service sleeps at once before it looks at the clock again (so that a
/// clock set forward, or a machine waking from sleep, delays a job by at most this).
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Most missed runs counted after a late run (a schedule every second and a job of hours).
const MAX_MISSED_COUNTED: u64 = 100_000;

/// Requests to a running service, shared between the service and whoever controls it: clone
/// it, hand one clone to [`run_service`], and call [`ServiceControl::stop`] or
/// [`ServiceControl::reload`] on another, from any thread.
///
/// A stop is final: once given, [`ServiceControl::is_stopped`] stays `true`. A reload request
/// stays pending until the service takes it up; several requests before that are one reload.
#[derive(Clone, Default)]
pub struct ServiceControl {
    inner: Arc<(Mutex<Requests>, Condvar)>,
}

/// What was asked of the service.
#[derive(Debug, Default, Clone, Copy)]
struct Requests {
    stopped: bool,
    reload: bool,
}

impl std::fmt::Debug for ServiceControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let requests = *self.lock();
        f.debug_struct("ServiceControl")
            .field("stopped", &requests.stopped)
            .field("reload_pending", &requests.reload)
            .finish()
    }
}

impl ServiceControl {
    /// A control with nothing asked yet: no stop, no reload.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks everything holding a clone of this control to stop. Returns at once; wakes every
    /// thread waiting in [`ServiceControl::wait`] and a service that sleeps.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.inner.1.notify_all();
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    /// Waits until a stop is asked for or `timeout` passes; returns whether to stop. A reload
    /// request does not end the wait.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut requests = self.lock();
        while !requests.stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            requests = self.wait_timeout(requests, left);
        }
        true
    }

    /// Asks the service to read its config file again. Returns at once: a sleeping service
    /// reloads at once, a service running a job reloads when the job has ended. Requests made
    /// before the service takes one up are a single reload; a request after a stop is never
    /// taken up (the service stops instead).
    pub fn reload(&self) {
        self.lock().reload = true;
        self.inner.1.notify_all();
    }

    /// Whether a reload was asked for that the service has not yet taken up.
    pub fn is_reload_pending(&self) -> bool {
        self.lock().reload
    }

    /// Takes up the pending reload request, if any: returns whether there was one.
    fn take_reload(&self) -> bool {
        std::mem::take(&mut self.lock().reload)
    }

    /// Sleeps until a stop or a reload is asked for, or `timeout` passes.
    fn sleep(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut requests = self.lock();
        while !requests.stopped && !requests.reload {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            requests = self.wait_timeout(requests, left);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Requests> {
        self.inner
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wait_timeout<'a>(
        &self,
        guard: MutexGuard<'a, Requests>,
        timeout: Duration,
    ) -> MutexGuard<'a, Requests> {
        self.inner
            .1
            .wait_timeout(guard, timeout)
            .map(|(guard, _)| guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner().0)
    }
}

/// What the service reports as it goes.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServiceNotice<'a> {
    /// A job's next run, computed when the service starts, after each run, and for every job
    /// after a reload.
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
    /// The config file was read again ([`ServiceControl::reload`]) and now replaces the one in
    /// use. A [`ServiceNotice::Scheduled`] or [`ServiceNotice::Unscheduled`] for every job of
    /// the new config follows.
    Reloaded {
        /// The config file.
        file: &'a Path,
        /// How many jobs the new config has.
        jobs: usize,
        /// Of those, how many the service runs (they have a schedule); at least one.
        scheduled: usize,
        /// Jobs that are new, by name.
        added: &'a [String],
        /// Jobs that are gone (the service no longer runs them), by name.
        removed: &'a [String],
        /// Jobs whose settings changed (any field, or the backup log they use), by name.
        changed: &'a [String],
    },
    /// The config file could not be read again, is invalid, or has no scheduled job: the
    /// service goes on with the config it had, unchanged.
    ReloadFailed {
        /// The config file.
        file: &'a Path,
        /// Why (an [`Error::Config`] naming the file and the field, where it can).
        error: &'a Error,
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
    /// Reloads that replaced the config.
    pub reloads: u64,
    /// Reloads that failed (the service went on with the config it had).
    pub failed_reloads: u64,
}

/// Reads and checks the config file at `path` as the service needs it: [`Config::load`],
/// and at least one job with a schedule. This is what [`run_service`] does on a reload; call
/// it to check an edited config before asking for one.
///
/// Errors: those of [`Config::load`], and an [`Error::Config`] (field `jobs`) when no job has
/// a schedule.
pub fn load_service_config(path: &Path) -> Result<Config> {
    let config = Config::load(path)?;
    if scheduled_jobs(&config, Timestamp::now()) == 0 {
        return Err(no_schedule(&config));
    }
    Ok(config)
}

/// How many jobs of `config` have a run after `now`.
fn scheduled_jobs(config: &Config, now: Timestamp) -> usize {
    config
        .jobs
        .values()
        .filter(|job| next_run(job, now).is_some())
        .count()
}

fn no_schedule(config: &Config) -> Error {
    Error::Config {
        file: config.path.clone(),
        field: "jobs".to_string(),
        message: "no job has a schedule, so the service has nothing to run: give a job a \
                  \"schedule\" (cron syntax, such as \"0 1 * * *\"), or run jobs with \
                  `respaldo run JOB`"
            .to_string(),
        position: None,
    }
}

/// Each job the service knows and its next run (`None`: it runs no more).
type Plan = Vec<(String, Option<Timestamp>)>;

/// Runs the scheduled jobs of `config` when due, until a stop is asked of `stop`, reading the
/// config file ([`Config::path`]) again when a reload is asked (see the module
/// documentation). Returns what it did.
///
/// Errors: no job of `config` has a schedule ([`Error::Config`]). Neither a job that fails
/// nor a reload that fails ever stops the service.
pub fn run_service(
    config: &Config,
    options: &ServiceOptions,
    stop: &ServiceControl,
) -> Result<ServiceSummary> {
    let control = stop;
    let notify = |notice: ServiceNotice<'_>| {
        if let Some(f) = &options.on_notice {
            f(&notice);
        }
    };
    let mut job_options = options.job.clone();
    job_options.stop = Some(control.clone());

    // Each scheduled job and its next run.
    let mut next = plan(config, None, Timestamp::now(), &notify);
    if next.is_empty() {
        return Err(no_schedule(config));
    }
    let mut config = Cow::Borrowed(config);

    let mut summary = ServiceSummary::default();
    loop {
        if control.is_stopped() {
            notify(ServiceNotice::Stopping);
            return Ok(summary);
        }
        // Between jobs: the job in flight, if any, has ended.
        if control.take_reload() {
            match load_service_config(&config.path) {
                Ok(new) => {
                    let (added, removed, changed) = differences(&config, &new);
                    notify(ServiceNotice::Reloaded {
                        file: &new.path,
                        jobs: new.jobs.len(),
                        scheduled: scheduled_jobs(&new, Timestamp::now()),
                        added: &added,
                        removed: &removed,
                        changed: &changed,
                    });
                    next = plan(&new, Some((&config, &next)), Timestamp::now(), &notify);
                    config = Cow::Owned(new);
                    summary.reloads += 1;
                }
                Err(error) => {
                    summary.failed_reloads += 1;
                    notify(ServiceNotice::ReloadFailed {
                        file: &config.path,
                        error: &error,
                    });
                }
            }
            continue;
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
            control.sleep(sleep + Duration::from_millis(1));
            continue;
        };
        let name = next[index].0.clone();
        notify(ServiceNotice::JobStarted {
            job: &name,
            due: due_at,
        });
        let outcome = run_caught(&config, &name, &job_options);
        summary.runs += 1;
        if outcome.error.is_some() {
            summary.failures += 1;
        }
        notify(ServiceNotice::JobFinished {
            job: &name,
            outcome: &outcome,
        });

        let ended = Timestamp::now();
        let Some(job) = config.jobs.get(&name) else {
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
            notify(ServiceNotice::Missed { job: &name, missed });
        }
        next[index].1 = next_run(job, ended);
        match next[index].1 {
            Some(at) => notify(ServiceNotice::Scheduled {
                job: &name,
                next: at,
            }),
            None => notify(ServiceNotice::Unscheduled { job: &name }),
        }
    }
}

/// The next run of every scheduled job of `config` after `now`, each one notified. With the
/// config in use and its plan (a reload), a job whose schedule and time zone did not change
/// keeps its next run, so that a run already due stays due.
fn plan(
    config: &Config,
    previous: Option<(&Config, &Plan)>,
    now: Timestamp,
    notify: &dyn Fn(ServiceNotice<'_>),
) -> Plan {
    let mut next = Plan::new();
    for (name, job) in &config.jobs {
        let kept = previous.and_then(|(old, plan)| {
            let old_job = old.jobs.get(name)?;
            if old_job.schedule != job.schedule || old_job.time_zone != job.time_zone {
                return None;
            }
            plan.iter().find(|(n, _)| n == name).map(|(_, at)| *at)
        });
        match kept.unwrap_or_else(|| next_run(job, now)) {
            Some(at) => {
                notify(ServiceNotice::Scheduled {
                    job: name,
                    next: at,
                });
                next.push((name.clone(), Some(at)));
            }
            None => notify(ServiceNotice::Unscheduled { job: name }),
        }
    }
    next
}

/// The jobs added, removed and changed from `old` to `new`, by name.
fn differences(old: &Config, new: &Config) -> (Vec<String>, Vec<String>, Vec<String>) {
    let added = new
        .jobs
        .keys()
        .filter(|name| !old.jobs.contains_key(*name))
        .cloned()
        .collect();
    let removed = old
        .jobs
        .keys()
        .filter(|name| !new.jobs.contains_key(*name))
        .cloned()
        .collect();
    let changed = new
        .jobs
        .iter()
        .filter(|(name, job)| {
            old.jobs
                .get(*name)
                .is_some_and(|old_job| !same_job(old, old_job, new, job))
        })
        .map(|(name, _)| name.clone())
        .collect();
    (added, removed, changed)
}

/// Whether job `a` of config `old` and job `b` of config `new` are the same in every field
/// and use the same backup log.
fn same_job(old: &Config, a: &Job, new: &Config, b: &Job) -> bool {
    // Every field is named, so that a field added to `Job` cannot be forgotten here.
    let Job {
        name,
        repository,
        password,
        sources,
        sqlite,
        exclude,
        exclude_if_present,
        one_file_system,
        tags,
        host,
        schedule,
        timezone,
        time_zone,
        retention,
        prune,
        max_unused,
        hooks,
        hook_timeout,
        log_db: _,
        cache_dir,
    } = a;
    *name == b.name
        && *repository == b.repository
        && *password == b.password
        && *sources == b.sources
        && *sqlite == b.sqlite
        && *exclude == b.exclude
        && *exclude_if_present == b.exclude_if_present
        && *one_file_system == b.one_file_system
        && *tags == b.tags
        && *host == b.host
        && *schedule == b.schedule
        && *timezone == b.timezone
        && *time_zone == b.time_zone
        && *retention == b.retention
        && *prune == b.prune
        && *max_unused == b.max_unused
        && *hooks == b.hooks
        && *hook_timeout == b.hook_timeout
        && *cache_dir == b.cache_dir
        && old.log_db_for(a) == new.log_db_for(b)
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
