//! `run JOB` and `jobs`: the jobs of the JSON config (`--config`, `RESPALDO_CONFIG`, else
//! `~/.config/respaldo/config.json`), run now or listed with their next run.
//!
//! `run` exits like `backup`: 0, 3 when the snapshot was saved but some sources could not be
//! read, 1 (or 10, 11, 12 as every command) when a step failed. The job's hooks and backup
//! log are those of the config; `--log-db` (or `RESPALDO_LOG_DB`) only replaces the default
//! log database of jobs whose config names none, and `--no-log` turns the log off.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use clap::Args as ClapArgs;
use respaldo::{Config, FnSink, JobOptions, JobOutcome, JobStatus, JobStep, LogTarget};
use serde_json::{Value, json};

use crate::args::Global;
use crate::output::{self, Table, Ui};
use crate::progress::TermProgress;

/// `run`.
#[derive(Debug, ClapArgs)]
pub struct RunArgs {
    /// The job to run, as named in the config.
    #[arg(value_name = "JOB")]
    pub job: String,
}

/// The config file: `--config`, `RESPALDO_CONFIG`, else the user's config folder.
pub fn config_path(global: &Global) -> Result<PathBuf> {
    match global
        .config
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
    {
        Some(path) => super::absolute(path),
        None => respaldo::default_config_path().ok_or_else(|| {
            anyhow!(
                "cannot tell where the config file is: pass --config FILE, or set \
                 RESPALDO_CONFIG, XDG_CONFIG_HOME or HOME"
            )
        }),
    }
}

/// Reads and checks the config file.
pub fn load_config(global: &Global) -> Result<Config> {
    let path = config_path(global)?;
    Ok(Config::load(&path)?)
}

/// How jobs run from the command line: events as JSON lines with `--json`, warnings on
/// standard error, progress bars on a terminal, the backup log and lock wait of the global
/// flags.
pub fn job_options(global: &Global, ui: &Ui) -> JobOptions {
    let mut options = JobOptions::default();
    if ui.json {
        options
            .sinks
            .push(Arc::new(FnSink::new(super::events::print_json)));
    }
    options.on_warning = Some(Arc::new(|message: &str| {
        eprintln!("respaldo: warning: {message}");
    }));
    options.log = if global.no_log {
        LogTarget::Disabled
    } else {
        match global
            .log_db
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            Some(path) => LogTarget::Path(std::path::absolute(path).unwrap_or(path.to_path_buf())),
            None => LogTarget::Default,
        }
    };
    options.lock_wait = global.retry_lock.unwrap_or_default();
    if ui.progress {
        let ui = *ui;
        options.progress = Some(Arc::new(move |step: JobStep| {
            let verb = match step {
                JobStep::Prune => "repack",
                _ => "backup",
            };
            Box::new(TermProgress::new(&ui, verb)) as Box<dyn respaldo::Progress>
        }));
    }
    options
}

/// Runs `run JOB`.
pub fn run(global: &Global, ui: &Ui, args: &RunArgs) -> Result<ExitCode> {
    let config = load_config(global)?;
    let outcome = respaldo::run_job(&config, &args.job, &job_options(global, ui))?;
    let mut out = output::stdout();
    if ui.json {
        output::write_json_pretty(&mut out, &outcome_json(&outcome))?;
    } else {
        output::print_warnings(ui, outcome.warnings())?;
        if !ui.quiet {
            for line in describe(&outcome) {
                writeln!(out, "{line}")?;
            }
        }
    }
    out.flush()?;
    let status = outcome.status();
    if let Some(error) = outcome.error {
        return Err(error.into());
    }
    Ok(match status {
        JobStatus::Partial => ExitCode::from(super::EXIT_PARTIAL),
        _ => ExitCode::SUCCESS,
    })
}

/// What a job did, one line per step that ran (the failure is reported as the error).
pub fn describe(outcome: &JobOutcome) -> Vec<String> {
    let mut lines = Vec::new();
    let job = &outcome.job;
    if let Some(backup) = &outcome.backup {
        let s = &backup.snapshot.summary;
        lines.push(format!(
            "job {job}: snapshot {} saved: {} new, {} changed, {} unchanged file(s), {} added{}",
            output::short_id(&backup.snapshot_id),
            s.files_new,
            s.files_changed,
            s.files_unchanged,
            output::bytes(s.bytes_added),
            match backup.warnings.len() {
                0 => String::new(),
                n => format!("; {n} source(s) could not be read"),
            }
        ));
    }
    if let Some(forget) = &outcome.forget {
        let kept: usize = forget.groups.iter().map(|g| g.kept().count()).sum();
        lines.push(format!(
            "job {job}: forget removed {} snapshot(s), kept {kept}",
            forget.removed.len()
        ));
    }
    if let Some(prune) = &outcome.prune {
        lines.push(format!(
            "job {job}: prune freed {}",
            output::bytes(prune.bytes_freed())
        ));
    }
    for step in &outcome.skipped {
        lines.push(format!("job {job}: {step} skipped: a stop was asked for"));
    }
    lines
}

/// A job's outcome as one JSON document.
fn outcome_json(outcome: &JobOutcome) -> Value {
    let backup = outcome.backup.as_ref();
    json!({
        "job": outcome.job,
        "repository": outcome.repository,
        "status": outcome.status().as_str(),
        "snapshot_id": backup.map(|b| b.snapshot_id.to_string()),
        "summary": backup.map(|b| Value::Object(output::summary_json(&b.snapshot.summary))),
        "warnings": outcome.warnings().iter().map(output::warning_json).collect::<Vec<_>>(),
        "forget": outcome.forget.as_ref().map(|f| json!({
            "removed": f.removed.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })),
        "prune": outcome.prune.as_ref().map(super::prune::outcome_json),
        "skipped": outcome.skipped.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "failed_step": outcome.error.as_ref().map(|e| e.step.as_str()),
        "error": outcome.error.as_ref().map(|e| respaldo::error_message(e)),
        "duration_seconds": outcome.duration.as_secs_f64(),
    })
}

/// Runs `jobs`.
pub fn list(global: &Global, ui: &Ui) -> Result<ExitCode> {
    let config = load_config(global)?;
    let now = jiff::Timestamp::now();
    let mut out = output::stdout();
    if ui.json {
        let jobs: Vec<Value> = config
            .jobs
            .values()
            .map(|job| {
                let next = respaldo::next_run(job, now);
                json!({
                    "name": job.name,
                    "repository": job.repository.to_string(),
                    "schedule": job.schedule.as_ref().map(|s| s.expression()),
                    "timezone": job.time_zone_name(),
                    "next_run": next.map(|t| format!("{t:.0}")),
                    "next_run_local": next.map(|t| output::local_time(nanos(t))),
                    "sources": job.sources.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                    "sqlite": job.sqlite.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                    "retention": job.retention.is_some(),
                    "prune": job.prune,
                })
            })
            .collect();
        output::write_json_pretty(&mut out, &Value::Array(jobs))?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    if config.jobs.is_empty() {
        if !ui.quiet {
            eprintln!("no jobs in {}", config.path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["Job", "Repository", "Schedule", "Time zone", "Next run"]);
    for job in config.jobs.values() {
        let next = match (&job.schedule, respaldo::next_run(job, now)) {
            (None, _) => "(only with `run`)".to_string(),
            (Some(_), None) => "never".to_string(),
            (Some(_), Some(t)) => output::local_time(nanos(t)),
        };
        table.row(vec![
            job.name.clone(),
            job.repository.to_string(),
            job.schedule
                .as_ref()
                .map(|s| s.expression().to_string())
                .unwrap_or_default(),
            job.time_zone_name(),
            next,
        ]);
    }
    table.write(&mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Nanoseconds since the epoch, as the output helpers take them.
pub fn nanos(t: jiff::Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX)
}
