//! Running a job of the config: open its repository, back up its sources and databases, apply
//! its retention (forget), then prune if asked — with its hooks and its backup log.
//!
//! Every step emits its events through the repository's sinks: the caller's
//! ([`JobOptions::sinks`]), the backup log, then the job's hook commands. A job never fails
//! silently: when it fails before the engine can emit anything (the password cannot be read,
//! there is no repository, the password is wrong, the log database the config names cannot
//! be opened), [`run_job`] emits `EVT_BACKUP_FAILED` itself, with the error, to the same
//! sinks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use snapshot_index::SnapshotFilter;

use crate::backup_log::{BackupLog, default_log_path};
use crate::commands::backup::{BackupOptions, BackupOutcome, clean_paths};
use crate::commands::forget::{ForgetOptions, ForgetOutcome};
use crate::commands::prune::{PruneOptions, PruneOutcome};
use crate::config::{Config, Job, PasswordSource};
use crate::error::{Error, Result};
use crate::events::{Event, EventKind, EventSink, emit_to, error_message};
use crate::hooks::HookSink;
use crate::job_lock::JobLock;
use crate::progress::{NoProgress, Progress, Warning};
use crate::repository::{Repository, default_cache_dir, hostname};
use crate::service::ServiceControl;

/// Receives warnings that do not fail a job: a hook that failed or hung, a log row that
/// could not be written, a default log database that cannot be opened.
pub type WarningFn = Arc<dyn Fn(&str) + Send + Sync>;

/// Makes the progress reporter of a step that reports progress (the backup, and prune's
/// repacking); it is dropped when the step ends.
pub type ProgressFn = Arc<dyn Fn(JobStep) -> Box<dyn Progress> + Send + Sync>;

/// Where the backup log goes when the config names no database for the job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LogTarget {
    /// [`default_log_path`]; a database that cannot be opened there is a warning, and the
    /// job runs unlogged.
    #[default]
    Default,
    /// This database; one that cannot be opened fails the job (as one the config names).
    Path(PathBuf),
    /// No backup log at all, not even the one the config names.
    Disabled,
}

/// How [`run_job`] runs a job.
#[derive(Clone, Default)]
pub struct JobOptions {
    /// More event sinks (a callback, a channel, JSON output), called before the backup log
    /// and the hooks.
    pub sinks: Vec<Arc<dyn EventSink>>,
    /// Warnings that do not fail the job; dropped when `None`.
    pub on_warning: Option<WarningFn>,
    /// The backup log when the config names none for the job.
    pub log: LogTarget,
    /// How long to wait for another run of the same job to end, then (again) for a conflicting
    /// repository lock (default: not at all).
    pub lock_wait: Duration,
    /// When set, the steps after the backup (forget, prune) are skipped once a stop is asked
    /// for; the backup itself always runs to its end.
    pub stop: Option<ServiceControl>,
    /// Progress of the backup and of prune; none when `None`.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for JobOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobOptions")
            .field("sinks", &self.sinks.len())
            .field("on_warning", &self.on_warning.is_some())
            .field("log", &self.log)
            .field("lock_wait", &self.lock_wait)
            .field("stop", &self.stop)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// A step of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStep {
    /// Reading the password, opening the backup log and the repository.
    Open,
    /// The backup.
    Backup,
    /// Forget, by the job's retention.
    Forget,
    /// Prune.
    Prune,
}

impl JobStep {
    /// `open`, `backup`, `forget` or `prune`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStep::Open => "open",
            JobStep::Backup => "backup",
            JobStep::Forget => "forget",
            JobStep::Prune => "prune",
        }
    }
}

impl std::fmt::Display for JobStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The step that failed a job, and why.
#[derive(Debug, thiserror::Error)]
#[error("job {job}: {step} failed: {error}")]
pub struct JobError {
    /// The job.
    pub job: String,
    /// The step that failed (the later steps did not run).
    pub step: JobStep,
    /// The error.
    #[source]
    pub error: Error,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Every step succeeded.
    Success,
    /// Every step succeeded, but the backup could not read some sources (its warnings say
    /// which); the snapshot holds the rest.
    Partial,
    /// A step failed; [`JobOutcome::error`] says which and why.
    Failed,
}

impl JobStatus {
    /// `success`, `partial` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Success => "success",
            JobStatus::Partial => "partial",
            JobStatus::Failed => "failed",
        }
    }
}

/// What a job did.
#[derive(Debug)]
#[non_exhaustive]
pub struct JobOutcome {
    /// The job.
    pub job: String,
    /// Its repository.
    pub repository: String,
    /// The backup, if it saved a snapshot.
    pub backup: Option<BackupOutcome>,
    /// Forget, if it ran and succeeded.
    pub forget: Option<ForgetOutcome>,
    /// Prune, if it ran and succeeded.
    pub prune: Option<PruneOutcome>,
    /// The step that failed, if one did.
    pub error: Option<JobError>,
    /// Steps skipped because a stop was asked for.
    pub skipped: Vec<JobStep>,
    /// How long the job ran.
    pub duration: Duration,
}

impl JobOutcome {
    fn new(job: &Job) -> Self {
        Self {
            job: job.name.clone(),
            repository: job.repository.to_string(),
            backup: None,
            forget: None,
            prune: None,
            error: None,
            skipped: Vec::new(),
            duration: Duration::ZERO,
        }
    }

    /// Success, partial (sources that could not be read) or failed.
    pub fn status(&self) -> JobStatus {
        if self.error.is_some() {
            JobStatus::Failed
        } else if self.warnings().is_empty() {
            JobStatus::Success
        } else {
            JobStatus::Partial
        }
    }

    /// The sources the backup could not read.
    pub fn warnings(&self) -> &[Warning] {
        self.backup.as_ref().map_or(&[], |b| b.warnings.as_slice())
    }

    /// The outcome of a job that failed before it could start (or panicked).
    pub(crate) fn failed(config: &Config, name: &str, error: Error) -> Self {
        let mut outcome = Self {
            job: name.to_string(),
            repository: config
                .jobs
                .get(name)
                .map(|job| job.repository.to_string())
                .unwrap_or_default(),
            backup: None,
            forget: None,
            prune: None,
            error: None,
            skipped: Vec::new(),
            duration: Duration::ZERO,
        };
        outcome.fail(JobStep::Backup, error);
        outcome
    }

    fn fail(&mut self, step: JobStep, error: Error) {
        self.error = Some(JobError {
            job: self.job.clone(),
            step,
            error,
        });
    }
}

/// Runs the job `name` of `config` now: backup, then forget with its retention (if any),
/// then prune (if set); see the module documentation.
///
/// Only one run of a job at a time takes place per cache folder: while another holds the
/// job's lock (after [`JobOptions::lock_wait`]), the run fails at its open step with
/// [`Error::JobRunning`] (see `job_lock.rs`).
///
/// Errors: only when `config` has no job `name` ([`Error::Config`]). Whatever fails while
/// the job runs is in [`JobOutcome::error`] (with its `EVT_*_FAILED` event emitted).
pub fn run_job(config: &Config, name: &str, options: &JobOptions) -> Result<JobOutcome> {
    let job = config.job(name)?;
    Ok(run(config, job, options))
}

fn run(config: &Config, job: &Job, options: &JobOptions) -> JobOutcome {
    let started = Instant::now();
    let mut outcome = JobOutcome::new(job);
    let warn = options.on_warning.clone();
    let warn_now = |message: &str| {
        if let Some(warn) = &warn {
            warn(message);
        }
    };

    let mut sinks = options.sinks.clone();
    let mut setup_error = None;
    match open_log(config, job, options, &warn_now) {
        Ok(Some(log)) => {
            let warn = warn.clone();
            let log = log.on_warning(move |message| {
                if let Some(warn) = &warn {
                    warn(message);
                }
            });
            sinks.push(Arc::new(log));
        }
        Ok(None) => {}
        Err(e) => setup_error = Some(e),
    }
    if !job.hooks.is_empty() {
        let warn = warn.clone();
        let mut hooks = HookSink::new(job.hooks.clone(), job.hook_timeout);
        if let PasswordSource::Env(var) = &job.password {
            hooks = hooks.hiding_env(var);
        }
        let hooks = hooks.on_warning(move |w| {
            if let Some(warn) = &warn {
                warn(&w.to_string());
            }
        });
        sinks.push(Arc::new(hooks));
    }

    // Held until the job ends: no second run of this job on this machine meanwhile.
    let mut _job_lock = None;
    let opened = setup_error.map_or_else(
        || {
            let cache = cache_dir(job)?;
            _job_lock = Some(JobLock::acquire(&cache, job, options.lock_wait)?);
            open_repository(config, job, &cache, &warn_now)
        },
        Err,
    );
    let mut repo = match opened {
        Ok(repo) => repo,
        Err(error) => {
            // Nothing in the engine could tell: say it here, to the same sinks.
            let mut event = Event::new(EventKind::BackupFailed, outcome.repository.clone());
            event.job = Some(job.name.clone());
            event.duration_seconds = Some(started.elapsed().as_secs_f64());
            event.error = Some(error_message(&error));
            emit_to(&sinks, &event);
            outcome.fail(JobStep::Open, error);
            outcome.duration = started.elapsed();
            return outcome;
        }
    };
    repo.set_job(Some(job.name.clone()));
    repo.set_lock_wait(options.lock_wait);
    for sink in sinks {
        repo.add_event_sink(sink);
    }

    let progress = |step: JobStep| -> Box<dyn Progress> {
        match &options.progress {
            Some(make) => make(step),
            None => Box::new(NoProgress),
        }
    };
    match repo.backup(&backup_options(job), progress(JobStep::Backup).as_ref()) {
        Ok(backup) => outcome.backup = Some(backup),
        Err(e) => {
            outcome.fail(JobStep::Backup, e);
            outcome.duration = started.elapsed();
            return outcome;
        }
    }

    let stopping = || {
        options
            .stop
            .as_ref()
            .is_some_and(ServiceControl::is_stopped)
    };
    if let Some(retention) = &job.retention {
        if stopping() {
            outcome.skipped.push(JobStep::Forget);
        } else {
            let forget = ForgetOptions {
                policy: retention.policy.clone(),
                group_by: retention.group_by,
                filter: job_filter(job),
                snapshots: Vec::new(),
                dry_run: false,
                time_zone: job.time_zone.clone(),
            };
            match repo.forget(&forget) {
                Ok(forgot) => outcome.forget = Some(forgot),
                Err(e) => {
                    outcome.fail(JobStep::Forget, e);
                    outcome.duration = started.elapsed();
                    return outcome;
                }
            }
        }
    }
    if job.prune {
        if stopping() {
            outcome.skipped.push(JobStep::Prune);
        } else {
            let prune = PruneOptions {
                max_unused: job.max_unused,
                dry_run: false,
            };
            match repo.prune(&prune, progress(JobStep::Prune).as_ref()) {
                Ok(pruned) => outcome.prune = Some(pruned),
                Err(e) => outcome.fail(JobStep::Prune, e),
            }
        }
    }
    outcome.duration = started.elapsed();
    outcome
}

/// The backup log of the job: `Ok(None)` when disabled, or when the default one cannot be
/// opened (a warning); `Err` when a database named by the config or the caller cannot be.
fn open_log(
    config: &Config,
    job: &Job,
    options: &JobOptions,
    warn: &dyn Fn(&str),
) -> Result<Option<BackupLog>> {
    let named = match (&options.log, config.log_db_for(job)) {
        (LogTarget::Disabled, _) => return Ok(None),
        (_, Some(path)) => Some(path.to_path_buf()),
        (LogTarget::Path(path), None) => Some(path.clone()),
        (LogTarget::Default, None) => None,
    };
    if let Some(path) = named {
        return BackupLog::open(&path).map(Some);
    }
    let Some(path) = default_log_path() else {
        warn(
            "cannot tell where to keep the backup log (set XDG_STATE_HOME or HOME, or name a \
             log_db in the config): this job is not logged",
        );
        return Ok(None);
    };
    match BackupLog::open(&path) {
        Ok(log) => Ok(Some(log)),
        Err(e) => {
            warn(&format!(
                "{e}; this job is not logged (name a log_db in the config)"
            ));
            Ok(None)
        }
    }
}

/// The job's password, per its source.
fn password(config: &Config, job: &Job) -> Result<Option<String>> {
    let field = |name: &str| format!("jobs.{}.{name}", job.name);
    match &job.password {
        PasswordSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
                file: config.path.clone(),
                field: field("password_file"),
                message: format!("cannot read the password file {}: {e}", path.display()),
                position: None,
            })?;
            Ok(Some(text.lines().next().unwrap_or("").to_string()))
        }
        PasswordSource::Env(var) => match std::env::var(var) {
            Ok(password) => Ok(Some(password)),
            Err(e) => Err(Error::Config {
                file: config.path.clone(),
                field: field("password_env"),
                message: format!("the environment variable {var}: {e}"),
                position: None,
            }),
        },
        PasswordSource::Default => Ok(std::env::var("RESPALDO_PASSWORD").ok()),
    }
}

/// The job's cache folder: its own, else the default one.
fn cache_dir(job: &Job) -> Result<PathBuf> {
    match &job.cache_dir {
        Some(dir) => Ok(dir.clone()),
        None => default_cache_dir().ok_or_else(|| {
            Error::invalid(
                "cannot tell where to keep the local cache: set RESPALDO_CACHE_DIR (or HOME), \
                 or give the job a cache_dir",
            )
        }),
    }
}

fn open_repository(
    config: &Config,
    job: &Job,
    cache: &Path,
    warn: &dyn Fn(&str),
) -> Result<Repository> {
    let password = password(config, job)?;
    let repo = Repository::open_at(&job.repository, password.as_deref(), cache)?;
    for (name, reason) in repo.store().unreadable_index_files() {
        warn(&format!(
            "{}: skipped index/{name} ({reason}); the blobs it lists are unknown until \
             `respaldo repair index` lists them again",
            job.repository
        ));
    }
    Ok(repo)
}

fn backup_options(job: &Job) -> BackupOptions {
    BackupOptions {
        paths: job.sources.clone(),
        tags: job.tags.clone(),
        host: job.host.clone(),
        excludes: job.exclude.clone(),
        exclude_if_present: job.exclude_if_present.clone(),
        one_file_system: job.one_file_system,
        sqlite: job.sqlite.clone(),
        ..BackupOptions::default()
    }
}

/// The job's own snapshots (its host, its paths, its tags): its retention never touches the
/// snapshots of another job in the same repository.
fn job_filter(job: &Job) -> SnapshotFilter {
    let paths = clean_paths(&job.paths())
        .unwrap_or_else(|_| job.paths())
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    SnapshotFilter {
        // Exactly this job's paths and tags: a job whose paths include another job's must
        // not apply its retention to that job's snapshots.
        exact: true,
        hosts: vec![job.host.clone().unwrap_or_else(hostname)],
        tags: job.tags.clone(),
        paths,
    }
}
