//! Reloading the service's config ([`ServiceControl::reload`]): a new job starts running and a
//! removed one stops; an invalid config (bad JSON, a bad field, no scheduled job) is reported
//! and the old one keeps running; a reload asked while a job runs waits for the job to end,
//! and several requests are one reload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use respaldo::{
    Config, Result, ServiceControl, ServiceNotice, ServiceOptions, ServiceSummary,
    load_service_config, run_service,
};

/// How long anything may take on a loaded machine before a test gives up.
const DEADLINE: Duration = Duration::from_secs(60);

/// A notice, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Started(String),
    Finished(String),
    Reloaded {
        scheduled: usize,
        added: Vec<String>,
        removed: Vec<String>,
        changed: Vec<String>,
    },
    ReloadFailed(String),
    Other,
}

struct Setup {
    dir: tempfile::TempDir,
    src: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        common::repository(dir.path());
        std::fs::write(dir.path().join("password"), "test password\n").unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a.txt"), b"some data").unwrap();
        Self {
            dir,
            src,
            seen: Arc::default(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn file(&self) -> PathBuf {
        self.path("config.json")
    }

    /// A job backing up the source into the repository, with `extra` fields.
    fn job(&self, extra: &str) -> String {
        format!(
            r#"{{"repository": "repo", "password_file": "password", "cache_dir": "cache",
                 "sources": [{:?}]{extra}}}"#,
            self.src.display().to_string()
        )
    }

    /// Writes `config.json` with these jobs (`name: job text`) and the log in `log.db`.
    fn write(&self, jobs: &[(&str, String)]) {
        let jobs: Vec<String> = jobs
            .iter()
            .map(|(name, job)| format!("{name:?}: {job}"))
            .collect();
        let text = format!(
            r#"{{"log_db": "log.db", "jobs": {{{}}}}}"#,
            jobs.join(",\n")
        );
        // Write then rename, so that a reload never reads a half-written file.
        let partial = self.path("config.json.partial");
        std::fs::write(&partial, text).unwrap();
        std::fs::rename(&partial, self.file()).unwrap();
    }

    fn write_text(&self, text: &str) {
        let partial = self.path("config.json.partial");
        std::fs::write(&partial, text).unwrap();
        std::fs::rename(&partial, self.file()).unwrap();
    }

    /// Starts the service on `config.json` in a thread, recording its notices.
    fn start(&self) -> (ServiceControl, JoinHandle<Result<ServiceSummary>>) {
        let config = Config::load(&self.file()).unwrap();
        let seen = self.seen.clone();
        let options = ServiceOptions {
            on_notice: Some(Arc::new(move |notice: &ServiceNotice<'_>| {
                let owned = match notice {
                    ServiceNotice::JobStarted { job, .. } => Seen::Started(job.to_string()),
                    ServiceNotice::JobFinished { job, .. } => Seen::Finished(job.to_string()),
                    ServiceNotice::Reloaded {
                        scheduled,
                        added,
                        removed,
                        changed,
                        ..
                    } => Seen::Reloaded {
                        scheduled: *scheduled,
                        added: added.to_vec(),
                        removed: removed.to_vec(),
                        changed: changed.to_vec(),
                    },
                    ServiceNotice::ReloadFailed { error, .. } => {
                        Seen::ReloadFailed(error.to_string())
                    }
                    _ => Seen::Other,
                };
                seen.lock().unwrap().push(owned);
            })),
            ..ServiceOptions::default()
        };
        let control = ServiceControl::new();
        let service = {
            let control = control.clone();
            std::thread::spawn(move || run_service(&config, &options, &control))
        };
        (control, service)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the notices so far; returns them then.
    fn wait_for(&self, what: &str, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let started = Instant::now();
        loop {
            let seen = self.seen();
            if done(&seen) {
                return seen;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "no {what} within {DEADLINE:?}: {seen:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Where the first notice matching `what` is, after position `from`.
fn position(seen: &[Seen], from: usize, what: impl Fn(&Seen) -> bool) -> Option<usize> {
    seen.iter().skip(from).position(what).map(|i| i + from)
}

fn finished(job: &str) -> impl Fn(&Seen) -> bool {
    move |s| *s == Seen::Finished(job.to_string())
}

fn reloaded(s: &Seen) -> bool {
    matches!(s, Seen::Reloaded { .. })
}

fn failed_reload(s: &Seen) -> bool {
    matches!(s, Seen::ReloadFailed(_))
}

fn stop(control: &ServiceControl, service: JoinHandle<Result<ServiceSummary>>) -> ServiceSummary {
    control.stop();
    service.join().unwrap().unwrap()
}

const EVERY_SECOND: &str = r#", "schedule": "* * * * * *""#;

#[test]
fn a_reload_schedules_new_jobs_and_stops_removed_ones() {
    let setup = Setup::new();
    setup.write(&[
        ("first", setup.job(EVERY_SECOND)),
        ("kept", setup.job(r#", "schedule": "0 1 29 2 *""#)),
    ]);
    let (control, service) = setup.start();
    setup.wait_for("run of the first job", |seen| {
        position(seen, 0, finished("first")).is_some()
    });

    // "first" goes, "second" comes, "kept" gets another schedule (both only come due on
    // February 29th, never while the test runs).
    setup.write(&[
        ("second", setup.job(EVERY_SECOND)),
        ("kept", setup.job(r#", "schedule": "0 2 29 2 *""#)),
    ]);
    control.reload();
    let seen = setup.wait_for("run of the second job after the reload", |seen| {
        position(seen, 0, reloaded)
            .is_some_and(|at| position(seen, at, finished("second")).is_some())
    });
    let at = position(&seen, 0, reloaded).unwrap();
    assert_eq!(
        seen[at],
        Seen::Reloaded {
            scheduled: 2,
            added: vec!["second".to_string()],
            removed: vec!["first".to_string()],
            changed: vec!["kept".to_string()],
        }
    );
    // Let the new job run once more: the removed one never starts again.
    let runs_of_second = |seen: &[Seen]| {
        seen[at..]
            .iter()
            .filter(|s| **s == Seen::Finished("second".to_string()))
            .count()
    };
    setup.wait_for("second run of the second job", |seen| {
        runs_of_second(seen) >= 2
    });
    let summary = stop(&control, service);
    let seen = setup.seen();
    assert!(
        !seen[at..].contains(&Seen::Started("first".to_string())),
        "{seen:#?}"
    );
    assert!(!seen.contains(&Seen::Started("kept".to_string())));
    assert_eq!(summary.reloads, 1);
    assert_eq!(summary.failed_reloads, 0);
    assert_eq!(summary.failures, 0, "{seen:#?}");

    // Both jobs left their snapshots.
    let repo = respaldo::Repository::open(
        &setup.path("repo"),
        Some("test password"),
        &setup.path("cache"),
    )
    .unwrap();
    assert!(repo.catalog().unwrap().entries().len() >= 3);
}

#[test]
fn an_invalid_config_is_reported_and_the_old_one_keeps_running() {
    let setup = Setup::new();
    setup.write(&[("first", setup.job(EVERY_SECOND))]);
    let (control, service) = setup.start();
    setup.wait_for("run of the first job", |seen| {
        position(seen, 0, finished("first")).is_some()
    });
    let file = setup.file().display().to_string();

    let bad_configs = [
        // Not JSON.
        ("{\"jobs\": {", vec![file.as_str()]),
        // A bad field.
        (
            r#"{"jobs": {"first": {"repository": "repo", "sources": ["src"],
                "schedule": "0 25 * * *"}}}"#,
            vec![file.as_str(), "jobs.first.schedule"],
        ),
        // No scheduled job.
        (
            r#"{"jobs": {"first": {"repository": "repo", "sources": ["src"]}}}"#,
            vec![file.as_str(), "no job has a schedule"],
        ),
    ];
    let mut from = 0;
    for (text, expected) in &bad_configs {
        setup.write_text(text);
        control.reload();
        // The failure is reported, then the old job runs again.
        let seen = setup.wait_for("failed reload, then a run", |seen| {
            position(seen, from, failed_reload)
                .is_some_and(|at| position(seen, at, finished("first")).is_some())
        });
        let at = position(&seen, from, failed_reload).unwrap();
        let Seen::ReloadFailed(error) = &seen[at] else {
            unreachable!()
        };
        for word in expected {
            assert!(error.contains(word), "{word:?} missing from: {error}");
        }
        assert!(load_service_config(&setup.file()).is_err());
        from = at + 1;
    }
    // A missing file too.
    std::fs::remove_file(setup.file()).unwrap();
    control.reload();
    let seen = setup.wait_for("failed reload of a missing file", |seen| {
        position(seen, from, failed_reload).is_some()
    });
    let at = position(&seen, from, failed_reload).unwrap();
    assert!(matches!(&seen[at], Seen::ReloadFailed(e) if e.contains(&file)));

    // A good config after bad ones is taken.
    setup.write(&[("first", setup.job(EVERY_SECOND))]);
    control.reload();
    let seen = setup.wait_for("reload", |seen| position(seen, at, reloaded).is_some());
    let at = position(&seen, at, reloaded).unwrap();
    assert_eq!(
        seen[at],
        Seen::Reloaded {
            scheduled: 1,
            added: vec![],
            removed: vec![],
            changed: vec![],
        }
    );
    let summary = stop(&control, service);
    assert_eq!(summary.failed_reloads, 4);
    assert_eq!(summary.reloads, 1);
    assert!(
        !seen
            .iter()
            .any(|s| matches!(s, Seen::Started(j) if j != "first"))
    );
}

#[test]
fn a_reload_waits_for_the_job_in_flight_and_several_requests_are_one() {
    let setup = Setup::new();
    // The job's hook marks that it runs, then holds the job for 5 s.
    let marker = setup.path("running");
    let slow = format!(
        r#"{EVERY_SECOND}, "hooks": {{"EVT_BACKUP_STARTED": [{}]}}"#,
        serde_json::to_string(&format!("touch '{}' && sleep 5", marker.display())).unwrap()
    );
    setup.write(&[("slow", setup.job(&slow))]);
    let (control, service) = setup.start();
    let started = Instant::now();
    while !marker.exists() {
        assert!(started.elapsed() < DEADLINE, "{:#?}", setup.seen());
        std::thread::sleep(Duration::from_millis(20));
    }
    // The job is in flight (in its hook): change the config and ask three times.
    setup.write(&[("slow", setup.job(EVERY_SECOND))]);
    let before = setup.seen();
    let in_flight = before
        .iter()
        .filter(|s| **s == Seen::Started("slow".to_string()))
        .count();
    for _ in 0..3 {
        control.reload();
    }
    assert!(control.is_reload_pending());

    let seen = setup.wait_for("reload, then a run", |seen| {
        position(seen, 0, reloaded).is_some_and(|at| position(seen, at, finished("slow")).is_some())
    });
    let at = position(&seen, 0, reloaded).unwrap();
    // The run in flight ended before the reload, and was not stopped by it.
    let ended = seen[..at]
        .iter()
        .filter(|s| **s == Seen::Finished("slow".to_string()))
        .count();
    assert_eq!(ended, in_flight, "{seen:#?}");
    assert_eq!(
        seen[at],
        Seen::Reloaded {
            scheduled: 1,
            added: vec![],
            removed: vec![],
            changed: vec!["slow".to_string()],
        }
    );
    assert!(!control.is_reload_pending());
    let summary = stop(&control, service);
    assert_eq!(summary.reloads, 1, "{:#?}", setup.seen());
    assert_eq!(summary.failures, 0, "{:#?}", setup.seen());
    assert_eq!(setup.seen().iter().filter(|s| reloaded(s)).count(), 1);
}

#[test]
fn a_reload_request_does_not_end_a_wait_and_a_stop_does() {
    let control = ServiceControl::new();
    control.reload();
    assert!(!control.wait(Duration::from_millis(20)));
    assert!(control.is_reload_pending() && !control.is_stopped());
    let other = control.clone();
    other.stop();
    assert!(control.wait(Duration::from_secs(5)));
    assert!(control.is_stopped());
}
