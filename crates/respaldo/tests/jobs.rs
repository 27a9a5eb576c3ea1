//! Jobs, schedules and the service: the JSON config (the issue's example, and every kind of
//! invalid config named by file and field), next runs in a time zone, `run_job` (backup,
//! forget, prune, hooks and the backup log; failures before the engine can speak), and the
//! service (repeated runs, retention, a failing job that does not stop it, a prompt stop).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use respaldo::{
    BackupLog, Config, Error, Event, EventKind, HookCommand, JobOptions, JobStatus, JobStep,
    Location, LogStatus, PasswordSource, Repository, ServiceControl, ServiceOptions, next_run,
    run_job, run_service,
};

/// The example of the issue, with its paths under `root`.
fn issue_example(root: &Path) -> String {
    r#"{
  "log_db": "/srv/app/app.db",
  "jobs": {
    "nightly": {
      "repository": "/backups/app",
      "password_file": "/etc/respaldo/app.pass",
      "sources": ["/srv/app/data"],
      "sqlite": ["/srv/app/app.db"],
      "exclude": ["*.tmp"],
      "tags": ["app"],
      "schedule": "0 1 * * *",
      "timezone": "Europe/Madrid",
      "retention": {"keep_daily": 7},
      "prune": true,
      "hooks": {"EVT_BACKUP_FAILED": ["/usr/local/bin/alert-ops"]}
    }
  }
}"#
    .replace("/srv", &root.join("srv").display().to_string())
    .replace("/backups", &root.join("backups").display().to_string())
    .replace("/etc", &root.join("etc").display().to_string())
}

#[test]
fn the_issue_example_parses() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let file = root.join("config.json");
    std::fs::write(&file, issue_example(root)).unwrap();
    let config = Config::load(&file).unwrap();
    assert_eq!(config.path, file);
    assert_eq!(config.log_db, Some(root.join("srv/app/app.db")));
    let job = config.job("nightly").unwrap();
    assert_eq!(job.name, "nightly");
    assert_eq!(job.repository, Location::Local(root.join("backups/app")));
    assert_eq!(
        job.password,
        PasswordSource::File(root.join("etc/respaldo/app.pass"))
    );
    assert_eq!(job.sources, [root.join("srv/app/data")]);
    assert_eq!(job.sqlite, [root.join("srv/app/app.db")]);
    assert_eq!(job.exclude, ["*.tmp"]);
    assert_eq!(job.tags, ["app"]);
    assert_eq!(job.schedule.as_ref().unwrap().expression(), "0 1 * * *");
    assert_eq!(job.time_zone_name(), "Europe/Madrid");
    let retention = job.retention.as_ref().unwrap();
    assert_eq!(retention.policy.keep_daily, 7);
    assert_eq!(retention.policy.keep_last, 0);
    assert!(job.prune);
    assert_eq!(job.max_unused, Some(0.10));
    assert_eq!(
        job.hooks.get(&EventKind::BackupFailed),
        Some(&vec![HookCommand::shell("/usr/local/bin/alert-ops")])
    );
    assert_eq!(job.hook_timeout, Duration::from_secs(30));
    assert_eq!(
        config.log_db_for(job),
        Some(root.join("srv/app/app.db").as_path())
    );

    // Unknown jobs are named with the known ones.
    let err = config.job("weekly").unwrap_err().to_string();
    assert!(err.contains("weekly") && err.contains("nightly"), "{err}");
}

#[test]
fn every_field_parses_and_relative_paths_follow_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etc/config.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let text = r#"{
      "jobs": {
        "all": {
          "repository": "repo",
          "password_env": "APP_BACKUP_PASSWORD",
          "sources": ["data", "/abs/data"],
          "exclude_if_present": [".nobackup"],
          "one_file_system": true,
          "host": "app-1",
          "schedule": "*/30 * * * * *",
          "timezone": "UTC",
          "retention": {"keep_last": 3, "keep_hourly": "unlimited", "keep_weekly": 4,
                        "keep_monthly": 6, "keep_yearly": 2, "keep_within": "7d",
                        "keep_tags": ["keep"], "group_by": "host"},
          "max_unused": "unlimited",
          "hooks": {"EVT_BACKUP_STARTED": [["pg_dump", "-f", "/tmp/x.sql", "app"]]},
          "hook_timeout": "5m",
          "log_db": "log.db",
          "cache_dir": "cache"
        },
        "manual": {"repository": "/r", "sqlite": ["app.db"]}
      }
    }"#;
    let config = Config::parse(text, &file).unwrap();
    let etc = dir.path().join("etc");
    let job = config.job("all").unwrap();
    assert_eq!(job.repository, Location::Local(etc.join("repo")));

    // An S3 location is taken as written, not as a path relative to the config's folder;
    // a malformed one is an error that names the field.
    let remote = text.replace(
        r#""repository": "/r""#,
        r#""repository": "s3:http://127.0.0.1:3900/b/host-1""#,
    );
    let config = Config::parse(&remote, &file).unwrap();
    assert_eq!(
        config.job("manual").unwrap().repository.to_string(),
        "s3:http://127.0.0.1:3900/b/host-1"
    );
    let bad = text.replace(r#""repository": "/r""#, r#""repository": "s3:ftp://h/b""#);
    let err = Config::parse(&bad, &file).unwrap_err().to_string();
    assert!(
        err.contains("jobs.manual.repository") && err.contains("ftp"),
        "{err}"
    );
    assert_eq!(
        job.password,
        PasswordSource::Env("APP_BACKUP_PASSWORD".to_string())
    );
    assert_eq!(job.sources, [etc.join("data"), PathBuf::from("/abs/data")]);
    assert!(job.one_file_system);
    assert_eq!(job.host.as_deref(), Some("app-1"));
    let retention = job.retention.as_ref().unwrap();
    assert_eq!(retention.policy.keep_hourly, u32::MAX);
    assert_eq!(
        retention.policy.keep_within,
        Some(Duration::from_secs(7 * 86400))
    );
    assert!(retention.group_by.host && !retention.group_by.paths);
    assert_eq!(job.max_unused, None);
    assert_eq!(
        job.hooks.get(&EventKind::BackupStarted),
        Some(&vec![HookCommand::argv([
            "pg_dump",
            "-f",
            "/tmp/x.sql",
            "app"
        ])])
    );
    assert_eq!(job.hook_timeout, Duration::from_secs(300));
    assert_eq!(job.log_db, Some(etc.join("log.db")));
    assert_eq!(job.cache_dir, Some(etc.join("cache")));
    let manual = config.job("manual").unwrap();
    assert!(manual.schedule.is_none());
    assert_eq!(next_run(manual, Timestamp::now()), None);
    assert_eq!(manual.password, PasswordSource::Default);
    assert!(!manual.prune && manual.retention.is_none());
}

/// The config error of `text`: its field, and its whole message.
fn config_error(text: &str) -> (String, Option<(usize, usize)>, String) {
    let file = Path::new("/etc/respaldo/config.json");
    match Config::parse(text, file) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e @ Error::Config { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("/etc/respaldo/config.json"),
                "the file is not named: {message}"
            );
            let Error::Config {
                field, position, ..
            } = e
            else {
                unreachable!()
            };
            (field, position, message)
        }
        Err(e) => panic!("not a config error: {e}"),
    }
}

/// A config of one job `nightly` with `fields` added to a valid job.
fn with_job(fields: &str) -> String {
    format!(
        r#"{{
  "jobs": {{
    "nightly": {{
      "repository": "/backups/app",
      {fields}
    }}
  }}
}}"#
    )
}

#[test]
fn invalid_configs_name_the_file_the_field_and_what_is_expected() {
    // (config, field, words the message must hold)
    let cases: Vec<(String, &str, Vec<&str>)> = vec![
        (
            with_job(r#""sourcs": ["/srv"], "sources": ["/srv"]"#),
            "jobs.nightly",
            vec!["unknown field \"sourcs\"", "expected one of", "\"sources\""],
        ),
        (
            with_job(r#""sources": ["/srv"], "schedule": "0 25 * * *""#),
            "jobs.nightly.schedule",
            vec![
                "invalid cron expression \"0 25 * * *\"",
                "expected 5 fields",
            ],
        ),
        (
            with_job(r#""sources": ["/srv"], "schedule": "every day""#),
            "jobs.nightly.schedule",
            vec!["invalid cron expression", "every day"],
        ),
        (
            with_job(r#""sources": ["/srv"], "timezone": "Europe/Madird""#),
            "jobs.nightly.timezone",
            vec!["unknown time zone \"Europe/Madird\"", "IANA"],
        ),
        (
            with_job(r#""sources": ["/srv"], "hooks": {"EVT_BACKUP_DONE": ["true"]}"#),
            "jobs.nightly.hooks.EVT_BACKUP_DONE",
            vec!["unknown event \"EVT_BACKUP_DONE\"", "EVT_BACKUP_COMPLETED"],
        ),
        (
            with_job(r#""sources": ["/srv"], "hooks": {"EVT_BACKUP_FAILED": [42]}"#),
            "jobs.nightly.hooks.EVT_BACKUP_FAILED[0]",
            vec!["expected a command"],
        ),
        (
            with_job(r#""sources": []"#),
            "jobs.nightly",
            vec!["nothing to back up", "sources", "sqlite"],
        ),
        (
            with_job(r#""sources": ["/srv"], "retention": {"keep_daily": -1}"#),
            "jobs.nightly.retention.keep_daily",
            vec!["negative", "expected a count"],
        ),
        (
            with_job(r#""sources": ["/srv"], "retention": {"keep_within": "7w"}"#),
            "jobs.nightly.retention.keep_within",
            vec!["\"7w\"", "expected for example 7d"],
        ),
        (
            with_job(r#""sources": ["/srv"], "retention": {"keep_dayly": 7}"#),
            "jobs.nightly.retention",
            vec!["unknown field \"keep_dayly\"", "keep_daily"],
        ),
        (
            with_job(r#""sources": ["/srv"], "retention": {}"#),
            "jobs.nightly.retention",
            vec!["no keep_* rule"],
        ),
        (
            with_job(r#""sources": ["/srv"], "max_unused": "10""#),
            "jobs.nightly.max_unused",
            vec!["expected a percentage"],
        ),
        (
            with_job(r#""sources": ["/srv"], "hooks": {"EVT_CHECK_FAILED": ["true"]}"#),
            "jobs.nightly.hooks.EVT_CHECK_FAILED",
            vec!["never emits", "backup, forget or prune"],
        ),
        (
            with_job(r#""sources": ["/srv"], "hook_timeout": "0s""#),
            "jobs.nightly.hook_timeout",
            vec!["out of range", "1s to 24h"],
        ),
        (
            with_job(r#""sources": ["/srv"], "hook_timeout": "soon""#),
            "jobs.nightly.hook_timeout",
            vec!["\"soon\"", "30s"],
        ),
        (
            with_job(r#""sources": "/srv""#),
            "jobs.nightly.sources",
            vec!["invalid type", "sequence"],
        ),
        (
            with_job(r#""sources": ["/srv"], "password_file": "/p", "password_env": "P""#),
            "jobs.nightly",
            vec!["password_file", "password_env", "at most one"],
        ),
        (
            r#"{"jobs": {}, "log": "/x"}"#.to_string(),
            "",
            vec!["unknown field \"log\"", "log_db"],
        ),
        (
            r#"{"log_db": "/x"}"#.to_string(),
            "",
            vec!["missing field \"jobs\""],
        ),
    ];
    for (text, field, words) in &cases {
        let (got_field, _, message) = config_error(text);
        assert_eq!(&got_field, field, "{message}");
        if !field.is_empty() {
            assert!(message.contains(&format!("{field}: ")), "{message}");
        }
        for word in words {
            assert!(message.contains(word), "{word:?} missing in: {message}");
        }
    }

    // Errors the JSON parser finds carry the line and column.
    let (_, position, message) = config_error(&with_job(
        r#""sources": ["/srv"], "schedule": "0 25 * * *""#,
    ));
    assert_eq!(position.map(|p| p.0), Some(5), "{message}");
    assert!(message.contains("(line 5, column"), "{message}");
    let (_, position, _) = config_error(&with_job(r#""sourcs": ["/srv"]"#));
    assert_eq!(position.map(|p| p.0), Some(5));

    // Invalid JSON: the line and column of the mistake.
    let broken = "{\n  \"jobs\": {\n    \"nightly\": {\n      \"repository\": \"/r\"\n      \"sources\": [\"/srv\"]\n    }\n  }\n}";
    let (field, position, message) = config_error(broken);
    assert_eq!(field, "jobs.nightly", "{message}");
    assert_eq!(position, Some((5, 7)), "{message}");
    assert!(message.contains("invalid JSON"), "{message}");
    let (_, position, message) = config_error("{\"jobs\": {}} trailing");
    assert!(
        position.is_some() && message.contains("invalid JSON"),
        "{message}"
    );

    // A file that cannot be read is named too.
    let err = Config::load(Path::new("/nonexistent/respaldo.json")).unwrap_err();
    assert!(err.is_config(), "{err}");
    assert!(
        err.to_string().contains("/nonexistent/respaldo.json"),
        "{err}"
    );
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn next_run_follows_the_time_zone_of_the_job() {
    let text =
        with_job(r#""sources": ["/srv"], "schedule": "0 1 * * *", "timezone": "Europe/Madrid""#);
    let config = Config::parse(&text, Path::new("/c.json")).unwrap();
    let job = config.job("nightly").unwrap();
    // Winter (CET, UTC+1): 01:00 in Madrid is 00:00 UTC. At 01:30 Madrid, the next is
    // tomorrow's.
    assert_eq!(
        next_run(job, at("2026-11-20T00:30:00Z")),
        Some(at("2026-11-21T00:00:00Z"))
    );
    assert_eq!(
        next_run(job, at("2026-11-19T23:59:59Z")),
        Some(at("2026-11-20T00:00:00Z"))
    );
    // Summer (CEST, UTC+2): 01:00 in Madrid is 23:00 UTC the day before.
    assert_eq!(
        next_run(job, at("2026-07-01T00:00:00Z")),
        Some(at("2026-07-01T23:00:00Z"))
    );
    // Across the change to summer time (2026-03-29 02:00 → 03:00): 01:00 still exists.
    assert_eq!(
        next_run(job, at("2026-03-28T01:00:00Z")),
        Some(at("2026-03-29T00:00:00Z"))
    );
    assert_eq!(
        next_run(job, at("2026-03-29T00:00:00Z")),
        Some(at("2026-03-29T23:00:00Z"))
    );

    // 02:30 does not exist on 2026-03-29 in Madrid: that day the job runs at 03:00, the first
    // time after the gap. On 2026-10-25 02:30 happens twice: the job runs once.
    let text =
        with_job(r#""sources": ["/srv"], "schedule": "30 2 * * *", "timezone": "Europe/Madrid""#);
    let config = Config::parse(&text, Path::new("/c.json")).unwrap();
    let job = config.job("nightly").unwrap();
    assert_eq!(
        next_run(job, at("2026-03-28T12:00:00Z")),
        Some(at("2026-03-29T01:00:00Z"))
    );
    let fall = next_run(job, at("2026-10-24T12:00:00Z")).unwrap();
    assert_eq!(fall, at("2026-10-25T00:30:00Z"));
    assert_eq!(next_run(job, fall), Some(at("2026-10-26T01:30:00Z")));

    // Six fields: seconds first.
    let text = with_job(r#""sources": ["/srv"], "schedule": "*/2 * * * * *""#);
    let config = Config::parse(&text, Path::new("/c.json")).unwrap();
    let job = config.job("nightly").unwrap();
    assert_eq!(
        next_run(job, at("2026-11-20T10:00:00.300Z")),
        Some(at("2026-11-20T10:00:02Z"))
    );
}

/// A test setup: an encrypted repository (its password in a file), a source folder, a hook
/// that appends `$RESPALDO_EVENT` to `events.txt`, and a config file for it.
struct Setup {
    dir: tempfile::TempDir,
    src: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        common::repository(dir.path());
        std::fs::write(dir.path().join("password"), "test password\n").unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a.txt"), b"first version").unwrap();
        std::fs::write(src.join("b.bin"), common::pseudo_random(100_000, 1)).unwrap();
        Self { dir, src }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A job backing up `sources` into the repository, with `extra` fields.
    fn job(&self, sources: &[&Path], extra: &str) -> String {
        let sources: Vec<String> = sources
            .iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect();
        let events = self.path("events.txt");
        let hook = format!("echo \"$RESPALDO_EVENT\" >> '{}'", events.display());
        let hooks: Vec<String> = [
            "EVT_BACKUP_STARTED",
            "EVT_BACKUP_COMPLETED",
            "EVT_BACKUP_FAILED",
            "EVT_FORGET_COMPLETED",
            "EVT_FORGET_FAILED",
            "EVT_PRUNE_STARTED",
            "EVT_PRUNE_COMPLETED",
            "EVT_PRUNE_FAILED",
        ]
        .iter()
        .map(|e| format!("{e:?}: [{}]", serde_json::to_string(&hook).unwrap()))
        .collect();
        format!(
            r#"{{
              "repository": "repo",
              "password_file": "password",
              "cache_dir": "cache",
              "sources": [{}],
              "hooks": {{{}}}
              {extra}
            }}"#,
            sources.join(", "),
            hooks.join(", ")
        )
    }

    /// Writes `config.json` with these jobs (`name: job text`) and the log in `log.db`.
    fn config(&self, jobs: &[(&str, String)]) -> Config {
        let jobs: Vec<String> = jobs
            .iter()
            .map(|(name, job)| format!("{name:?}: {job}"))
            .collect();
        let text = format!(
            r#"{{"log_db": "log.db", "jobs": {{{}}}}}"#,
            jobs.join(",\n")
        );
        let file = self.path("config.json");
        std::fs::write(&file, text).unwrap();
        Config::load(&file).unwrap()
    }

    /// The events the hook saw, in order.
    fn hook_events(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("events.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn log_rows(&self) -> Vec<respaldo::LogEntry> {
        let mut rows = BackupLog::open_read_only(&self.path("log.db"))
            .unwrap()
            .entries(10_000)
            .unwrap();
        rows.reverse();
        rows
    }

    fn repository(&self) -> Repository {
        Repository::open(
            &self.path("repo"),
            Some("test password"),
            &self.path("cache"),
        )
        .unwrap()
    }
}

/// Job options with a channel sink; the receiver gets every event.
fn channel_options() -> (JobOptions, crossbeam_channel::Receiver<Event>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let options = JobOptions {
        sinks: vec![Arc::new(tx)],
        ..JobOptions::default()
    };
    (options, rx)
}

fn names(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

#[test]
fn run_job_backs_up_forgets_prunes_logs_and_runs_hooks() {
    let setup = Setup::new();
    let config = setup.config(&[(
        "nightly",
        setup.job(
            &[&setup.src],
            r#", "retention": {"keep_last": 1}, "prune": true, "max_unused": "0%""#,
        ),
    )]);
    let (options, rx) = channel_options();

    let first = run_job(&config, "nightly", &options).unwrap();
    assert_eq!(first.status(), JobStatus::Success, "{:?}", first.error);
    assert!(first.backup.is_some() && first.forget.is_some() && first.prune.is_some());
    assert!(first.forget.as_ref().unwrap().removed.is_empty());

    std::fs::write(setup.src.join("a.txt"), b"second version").unwrap();
    let second = run_job(&config, "nightly", &options).unwrap();
    assert_eq!(second.status(), JobStatus::Success, "{:?}", second.error);
    let forgot = second.forget.as_ref().unwrap();
    assert_eq!(forgot.removed, [first.backup.as_ref().unwrap().snapshot_id]);
    assert!(second.prune.as_ref().unwrap().bytes_deleted > 0);

    // One snapshot is left: the second.
    let catalog = setup.repository().catalog().unwrap();
    let ids: Vec<_> = catalog.entries().iter().map(|e| e.id).collect();
    assert_eq!(ids, [second.backup.as_ref().unwrap().snapshot_id]);

    // Callers, hooks and the log saw the same events, with the job's name.
    let events: Vec<Event> = rx.try_iter().collect();
    let run = [
        "EVT_BACKUP_STARTED",
        "EVT_BACKUP_COMPLETED",
        "EVT_FORGET_COMPLETED",
        "EVT_PRUNE_STARTED",
        "EVT_PRUNE_COMPLETED",
    ];
    assert_eq!(names(&events), [run, run].concat());
    assert!(events.iter().all(|e| e.job.as_deref() == Some("nightly")));
    assert_eq!(setup.hook_events(), [run, run].concat());
    let rows = setup.log_rows();
    let ops: Vec<&str> = rows.iter().map(|r| r.operation.as_str()).collect();
    assert_eq!(
        ops,
        ["backup", "forget", "prune", "backup", "forget", "prune"]
    );
    for row in &rows {
        assert_eq!(row.status, LogStatus::Success, "{row:?}");
        assert_eq!(row.job.as_deref(), Some("nightly"));
    }
    assert_eq!(
        rows[3].snapshot_id.as_deref(),
        Some(
            second
                .backup
                .as_ref()
                .unwrap()
                .snapshot_id
                .to_string()
                .as_str()
        )
    );
}

#[test]
fn retention_touches_only_the_jobs_own_snapshots() {
    let setup = Setup::new();
    let other = setup.path("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("o.txt"), b"other job").unwrap();
    let config = setup.config(&[
        (
            "mine",
            setup.job(&[&setup.src], r#", "retention": {"keep_last": 1}"#),
        ),
        ("theirs", setup.job(&[&other], "")),
    ]);
    let options = JobOptions::default();
    for _ in 0..2 {
        {
            let r = run_job(&config, "theirs", &options).unwrap();
            assert!(r.error.is_none(), "{:?}", r.error);
        }
    }
    for _ in 0..2 {
        let r = run_job(&config, "mine", &options).unwrap();
        assert!(r.error.is_none(), "{:?}", r.error);
    }
    // Two of "theirs", one of "mine".
    assert_eq!(setup.repository().catalog().unwrap().entries().len(), 3);
}

/// Regression: a job kept its `keep_last` among the snapshots of another job whose paths
/// include its own (they passed its "includes every path" filter), deleting them.
#[test]
fn retention_leaves_a_job_whose_paths_include_ours_alone() {
    let setup = Setup::new();
    let other = setup.path("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("o.txt"), b"other job").unwrap();
    let config = setup.config(&[
        (
            "mine",
            setup.job(&[&setup.src], r#", "retention": {"keep_last": 1}"#),
        ),
        ("wider", setup.job(&[&setup.src, &other], "")),
    ]);
    let options = JobOptions::default();
    for _ in 0..3 {
        {
            let r = run_job(&config, "wider", &options).unwrap();
            assert!(r.error.is_none(), "{:?}", r.error);
        }
    }
    for _ in 0..2 {
        {
            let r = run_job(&config, "mine", &options).unwrap();
            assert!(r.error.is_none(), "{:?}", r.error);
        }
    }
    // Three of "wider", one of "mine".
    assert_eq!(setup.repository().catalog().unwrap().entries().len(), 4);
}

#[test]
fn a_job_whose_source_is_missing_fails_with_its_event_and_log_row() {
    let setup = Setup::new();
    let missing = setup.path("missing");
    let config = setup.config(&[(
        "broken",
        setup.job(
            &[&missing],
            r#", "retention": {"keep_last": 1}, "prune": true"#,
        ),
    )]);
    let (options, rx) = channel_options();
    let outcome = run_job(&config, "broken", &options).unwrap();
    assert_eq!(outcome.status(), JobStatus::Failed);
    let error = outcome.error.as_ref().unwrap();
    assert_eq!(error.step, JobStep::Backup);
    assert!(error.to_string().contains("missing"), "{error}");
    // Forget and prune did not run after the failed backup.
    assert!(outcome.forget.is_none() && outcome.prune.is_none());

    let events: Vec<Event> = rx.try_iter().collect();
    assert_eq!(names(&events), ["EVT_BACKUP_STARTED", "EVT_BACKUP_FAILED"]);
    assert!(events[1].error.as_deref().unwrap().contains("missing"));
    assert_eq!(
        setup.hook_events(),
        ["EVT_BACKUP_STARTED", "EVT_BACKUP_FAILED"]
    );
    let rows = setup.log_rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, LogStatus::Failed);
    assert_eq!(rows[0].job.as_deref(), Some("broken"));
    assert!(rows[0].error.as_deref().unwrap().contains("missing"));
}

#[test]
fn a_job_that_cannot_open_its_repository_still_emits_backup_failed() {
    let setup = Setup::new();
    // No repository at the location.
    let nowhere = setup
        .job(&[&setup.src], "")
        .replace("\"repo\"", "\"nowhere\"");
    // A wrong password.
    std::fs::write(setup.path("wrong"), "not the password\n").unwrap();
    let wrong = setup
        .job(&[&setup.src], "")
        .replace("\"password\"", "\"wrong\"");
    // A password variable that is not set.
    let unset = setup.job(&[&setup.src], "").replace(
        "\"password_file\": \"password\"",
        "\"password_env\": \"RESPALDO_TEST_UNSET_PASSWORD_VARIABLE\"",
    );
    let config = setup.config(&[("nowhere", nowhere), ("wrong", wrong), ("unset", unset)]);

    let check = |name: &str, expect: &dyn Fn(&Error) -> bool| {
        let (options, rx) = channel_options();
        let outcome = run_job(&config, name, &options).unwrap();
        assert_eq!(outcome.status(), JobStatus::Failed);
        let error = outcome.error.as_ref().unwrap();
        assert_eq!(error.step, JobStep::Open);
        assert!(expect(&error.error), "{name}: {error}");
        let events: Vec<Event> = rx.try_iter().collect();
        assert_eq!(names(&events), ["EVT_BACKUP_FAILED"], "{name}");
        assert_eq!(events[0].job.as_deref(), Some(name));
        assert!(events[0].error.is_some());
        assert!(
            events[0]
                .repository
                .ends_with(if name == "nowhere" { "nowhere" } else { "repo" })
        );
    };
    check("nowhere", &|e| e.is_no_repository());
    check("wrong", &|e| e.is_wrong_password());
    check("unset", &|e| {
        e.is_config() && e.to_string().contains("jobs.unset.password_env")
    });

    assert_eq!(setup.hook_events(), ["EVT_BACKUP_FAILED"; 3]);
    let rows = setup.log_rows();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(row.status, LogStatus::Failed);
        assert_eq!(row.operation, "backup");
        assert!(row.error.is_some());
    }
}

#[test]
fn a_log_database_the_config_names_that_cannot_be_opened_fails_the_job_loudly() {
    let setup = Setup::new();
    // A folder where the database should be.
    std::fs::create_dir_all(setup.path("log.db")).unwrap();
    let config = setup.config(&[("nightly", setup.job(&[&setup.src], ""))]);
    let (options, rx) = channel_options();
    let outcome = run_job(&config, "nightly", &options).unwrap();
    assert_eq!(outcome.status(), JobStatus::Failed);
    assert_eq!(outcome.error.as_ref().unwrap().step, JobStep::Open);
    let events: Vec<Event> = rx.try_iter().collect();
    assert_eq!(names(&events), ["EVT_BACKUP_FAILED"]);
    assert!(events[0].error.as_deref().unwrap().contains("log.db"));
    assert_eq!(setup.hook_events(), ["EVT_BACKUP_FAILED"]);
}

#[test]
fn the_service_runs_jobs_repeatedly_applies_retention_and_survives_failures() {
    let setup = Setup::new();
    let missing = setup.path("missing");
    let config = setup.config(&[
        (
            "frequent",
            setup.job(
                &[&setup.src],
                r#", "schedule": "*/2 * * * * *", "retention": {"keep_last": 2}, "prune": true"#,
            ),
        ),
        (
            "broken",
            setup
                .job(&[&missing], r#", "schedule": "*/2 * * * * *""#)
                .replace("events.txt", "broken-events.txt"),
        ),
        ("manual", setup.job(&[&setup.src], "")),
    ]);
    let notices = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = notices.clone();
    let options = ServiceOptions {
        on_notice: Some(Arc::new(move |notice: &respaldo::ServiceNotice<'_>| {
            seen.lock().unwrap().push(format!("{notice:?}"));
        })),
        ..ServiceOptions::default()
    };
    let stop = ServiceControl::new();
    let service = {
        let stop = stop.clone();
        let config = config.clone();
        std::thread::spawn(move || run_service(&config, &options, &stop))
    };
    // Change the source now and then, so that each snapshot differs, until each job has run
    // at least twice (7 s on an idle machine; a loaded one is given up to a minute).
    let started = Instant::now();
    let mut n = 0;
    let runs = |job: &str, status: LogStatus| {
        setup
            .log_rows()
            .iter()
            .filter(|r| {
                r.operation == "backup" && r.job.as_deref() == Some(job) && r.status == status
            })
            .count()
    };
    while started.elapsed() < Duration::from_secs(60)
        && (started.elapsed() < Duration::from_secs(7)
            || runs("frequent", LogStatus::Success) < 2
            || runs("broken", LogStatus::Failed) < 2)
    {
        std::thread::sleep(Duration::from_millis(500));
        n += 1;
        std::fs::write(setup.src.join("a.txt"), format!("version {n}")).unwrap();
    }
    let asked = Instant::now();
    stop.stop();
    let summary = service.join().unwrap().unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "the service took {:?} to stop",
        asked.elapsed()
    );

    let rows = setup.log_rows();
    let backups = |job: &str, status: LogStatus| {
        rows.iter()
            .filter(|r| {
                r.operation == "backup" && r.job.as_deref() == Some(job) && r.status == status
            })
            .count()
    };
    let good = backups("frequent", LogStatus::Success);
    let bad = backups("broken", LogStatus::Failed);
    assert!(good >= 2, "{good} runs: {rows:#?}");
    assert!(bad >= 2, "{bad} failed runs: {rows:#?}");
    assert_eq!(backups("manual", LogStatus::Success), 0);
    assert_eq!(summary.failures as usize, bad);
    assert_eq!(summary.runs as usize, good + bad);
    // Every run of the good job also forgot and pruned, but the last one may have skipped
    // both: the stop came while it backed up.
    let done = |op: &str| {
        rows.iter()
            .filter(|r| r.operation == op && r.status == LogStatus::Success)
            .count()
    };
    let (forgets, prunes) = (done("forget"), done("prune"));
    assert!(forgets == good || forgets + 1 == good, "{rows:#?}");
    assert_eq!(prunes, forgets, "{rows:#?}");
    // At most two snapshots are kept (three if the last run skipped its forget).
    let kept = setup.repository().catalog().unwrap().entries().len();
    assert!(
        kept >= 1 && kept <= 2 + good - forgets,
        "{kept} snapshots kept"
    );

    let hooks = setup.hook_events();
    let count = |e: &str| hooks.iter().filter(|h| *h == e).count();
    assert_eq!(count("EVT_BACKUP_COMPLETED"), good);
    assert_eq!(count("EVT_FORGET_COMPLETED"), forgets);
    assert_eq!(count("EVT_PRUNE_COMPLETED"), prunes);
    let broken_hooks = std::fs::read_to_string(setup.path("broken-events.txt")).unwrap();
    assert_eq!(
        broken_hooks
            .lines()
            .filter(|l| *l == "EVT_BACKUP_FAILED")
            .count(),
        bad
    );
    let notices = notices.lock().unwrap();
    assert!(
        notices
            .iter()
            .any(|n| n.contains("Unscheduled") && n.contains("manual"))
    );
    assert!(notices.iter().any(|n| n.contains("Stopping")));
}

#[test]
fn the_service_stops_promptly_while_it_waits_and_refuses_a_config_without_schedules() {
    let setup = Setup::new();
    let config = setup.config(&[(
        "nightly",
        setup.job(&[&setup.src], r#", "schedule": "0 1 * * *""#),
    )]);
    let stop = ServiceControl::new();
    let service = {
        let stop = stop.clone();
        std::thread::spawn(move || run_service(&config, &ServiceOptions::default(), &stop))
    };
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    stop.stop();
    let summary = service.join().unwrap().unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(summary.runs, 0);

    let config = setup.config(&[("manual", setup.job(&[&setup.src], ""))]);
    let err = run_service(&config, &ServiceOptions::default(), &ServiceControl::new()).unwrap_err();
    assert!(
        err.is_config() && err.to_string().contains("no job has a schedule"),
        "{err}"
    );
}
