//! Events, hooks and the backup log: every operation emits its started and completed (or
//! failed) events to every sink; hook commands get the event and never break the operation;
//! the backup log records one row per operation, in a database of its own or an
//! application's, and refuses a database it cannot write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use respaldo::{
    BackupLog, BackupOptions, CheckOptions, Event, EventKind, FnSink, ForgetOptions, HookCommand,
    HookSink, LogStatus, NoProgress, Operation, PruneOptions, Repository, RestoreOptions,
    RetentionPolicy, SnapshotFilter, SnapshotSpec,
};

/// A repository in `dir`, and a source folder with two files.
fn setup(dir: &Path) -> (Repository, PathBuf) {
    let repo = common::repository(dir);
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"hello events").unwrap();
    std::fs::write(src.join("sub/b.bin"), common::pseudo_random(200_000, 7)).unwrap();
    (repo, src)
}

fn backup_options(paths: &[&Path]) -> BackupOptions {
    BackupOptions {
        paths: paths.iter().map(|p| p.to_path_buf()).collect(),
        ..BackupOptions::default()
    }
}

/// A channel sink added to `repo`; the receiver gets every event.
fn channel(repo: &mut Repository) -> crossbeam_channel::Receiver<Event> {
    let (tx, rx) = crossbeam_channel::unbounded();
    repo.add_event_sink(Arc::new(tx));
    rx
}

fn drain(rx: &crossbeam_channel::Receiver<Event>) -> Vec<Event> {
    rx.try_iter().collect()
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|e| e.event).collect()
}

#[test]
fn a_backup_emits_started_then_completed_with_the_snapshot_and_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (mut repo, src) = setup(dir.path());
    repo.set_job(Some("nightly".to_string()));
    let rx = channel(&mut repo);

    let outcome = repo.backup(&backup_options(&[&src]), &NoProgress).unwrap();
    let events = drain(&rx);
    assert_eq!(
        kinds(&events),
        [EventKind::BackupStarted, EventKind::BackupCompleted]
    );
    let (started, done) = (&events[0], &events[1]);
    assert_eq!(started.operation_id, done.operation_id);
    assert_eq!(started.operation, Operation::Backup);
    assert_eq!(started.snapshot_id, None);
    assert_eq!(started.duration_seconds, None);
    assert!(started.time <= done.time);
    for event in &events {
        assert_eq!(event.job.as_deref(), Some("nightly"));
        assert_eq!(event.repository, repo.location());
        assert_eq!(event.error, None);
    }
    assert_eq!(
        done.snapshot_id.as_deref(),
        Some(outcome.snapshot_id.to_string().as_str())
    );
    assert_eq!(done.files, Some(2));
    let summary = &outcome.snapshot.summary;
    assert_eq!(done.bytes_read, Some(summary.bytes_read));
    assert!(summary.bytes_read >= 200_000);
    assert_eq!(done.bytes_added, Some(summary.bytes_added));
    assert!(done.duration_seconds.is_some());
    assert_eq!(done.warnings, Some(0));

    // The JSON: the name under `event`, every field present.
    let json: serde_json::Value = serde_json::from_str(&done.to_json()).unwrap();
    assert_eq!(json["event"], "EVT_BACKUP_COMPLETED");
    assert_eq!(json["operation"], "backup");
    assert_eq!(json["job"], "nightly");
    assert_eq!(json["snapshot_id"], outcome.snapshot_id.to_string());
    assert_eq!(json["files"], 2);
    assert!(json["error"].is_null());

    // A second run is another operation.
    repo.backup(&backup_options(&[&src]), &NoProgress).unwrap();
    let again = drain(&rx);
    assert_eq!(again.len(), 2);
    assert_ne!(again[0].operation_id, started.operation_id);
    assert_eq!(again[1].bytes_read, Some(0), "unchanged files are not read");
}

#[test]
fn a_backup_of_a_missing_path_emits_failed_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut repo, _) = setup(dir.path());
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    repo.add_event_sink(Arc::new(FnSink::new(move |e: &Event| {
        seen.lock().unwrap().push(e.clone());
    })));
    let missing = dir.path().join("no-such-folder");

    let err = repo
        .backup(&backup_options(&[&missing]), &NoProgress)
        .unwrap_err();
    let events = events.lock().unwrap();
    assert_eq!(
        kinds(&events),
        [EventKind::BackupStarted, EventKind::BackupFailed]
    );
    let failed = &events[1];
    assert_eq!(failed.operation_id, events[0].operation_id);
    assert_eq!(failed.snapshot_id, None);
    let message = failed.error.as_deref().unwrap();
    assert_eq!(message, err.to_string());
    assert!(message.contains("no-such-folder"), "{message}");
}

#[test]
fn backup_stdin_emits_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let (mut repo, _) = setup(dir.path());
    let rx = channel(&mut repo);
    let outcome = repo
        .backup_stdin(
            &BackupOptions::default(),
            "dump.sql",
            &mut &b"select 1;"[..],
            &NoProgress,
        )
        .unwrap();
    let events = drain(&rx);
    assert_eq!(
        kinds(&events),
        [EventKind::BackupStarted, EventKind::BackupCompleted]
    );
    assert_eq!(events[1].snapshot_id, Some(outcome.snapshot_id.to_string()));
}

#[test]
fn restore_forget_prune_and_check_emit_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let (mut repo, src) = setup(dir.path());
    repo.backup(&backup_options(&[&src]), &NoProgress).unwrap();
    std::fs::write(src.join("a.txt"), b"changed").unwrap();
    repo.backup(&backup_options(&[&src]), &NoProgress).unwrap();
    let rx = channel(&mut repo);

    // Restore: started and completed carry the snapshot restored.
    let latest = repo
        .resolve_snapshot(&SnapshotSpec::Latest, &SnapshotFilter::default())
        .unwrap();
    let target = dir.path().join("restored");
    let restore = RestoreOptions {
        target: target.clone(),
        ..RestoreOptions::default()
    };
    let outcome = repo.restore(&latest, &restore, &NoProgress).unwrap();
    let events = drain(&rx);
    assert_eq!(
        kinds(&events),
        [EventKind::RestoreStarted, EventKind::RestoreCompleted]
    );
    assert_eq!(events[0].event.as_str(), "AGT_RESTORE_STARTED");
    for event in &events {
        assert_eq!(event.snapshot_id, Some(latest.id.to_string()));
    }
    assert_eq!(events[1].files, Some(outcome.files));
    assert_eq!(events[1].bytes_written, Some(outcome.bytes));

    // A restore that fails (an empty target) emits its failed event.
    let err = repo
        .restore(&latest, &RestoreOptions::default(), &NoProgress)
        .unwrap_err();
    let events = drain(&rx);
    assert_eq!(
        kinds(&events),
        [EventKind::RestoreStarted, EventKind::RestoreFailed]
    );
    assert_eq!(events[1].error, Some(err.to_string()));

    // Forget has no started event.
    let forget = ForgetOptions {
        policy: RetentionPolicy {
            keep_last: 1,
            ..RetentionPolicy::default()
        },
        ..ForgetOptions::default()
    };
    repo.forget(&forget).unwrap();
    let events = drain(&rx);
    assert_eq!(kinds(&events), [EventKind::ForgetCompleted]);
    assert_eq!(events[0].snapshots_removed, Some(1));
    assert!(events[0].duration_seconds.is_some());

    // A forget without a policy fails.
    assert!(repo.forget(&ForgetOptions::default()).is_err());
    let events = drain(&rx);
    assert_eq!(kinds(&events), [EventKind::ForgetFailed]);
    assert!(events[0].error.as_deref().unwrap().contains("no policy"));

    repo.prune(&PruneOptions::default(), &NoProgress).unwrap();
    let events = drain(&rx);
    assert_eq!(
        kinds(&events),
        [EventKind::PruneStarted, EventKind::PruneCompleted]
    );
    assert!(events[1].bytes_freed.is_some());

    let bad_prune = PruneOptions {
        max_unused: Some(2.0),
        ..PruneOptions::default()
    };
    assert!(repo.prune(&bad_prune, &NoProgress).is_err());
    assert_eq!(
        kinds(&drain(&rx)),
        [EventKind::PruneStarted, EventKind::PruneFailed]
    );

    repo.check(&CheckOptions::default(), &NoProgress).unwrap();
    let events = drain(&rx);
    assert_eq!(kinds(&events), [EventKind::CheckCompleted]);
    assert_eq!(events[0].problems, Some(0));
}

#[test]
fn a_check_that_finds_damage_emits_check_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut repo, src) = setup(dir.path());
    repo.backup(&backup_options(&[&src]), &NoProgress).unwrap();
    let rx = channel(&mut repo);
    // Remove every pack: the snapshot cannot be restored.
    std::fs::remove_dir_all(dir.path().join("repo/packs")).unwrap();
    std::fs::create_dir(dir.path().join("repo/packs")).unwrap();

    let outcome = repo.check(&CheckOptions::default(), &NoProgress).unwrap();
    assert!(!outcome.is_ok());
    let events = drain(&rx);
    assert_eq!(kinds(&events), [EventKind::CheckFailed]);
    assert_eq!(events[0].problems, Some(outcome.errors.len() as u64));
    let error = events[0].error.as_deref().unwrap();
    assert!(error.starts_with("check found"), "{error}");
    assert!(error.contains(&outcome.errors[0].object), "{error}");
}

/// Writes an executable shell script.
fn script(path: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_path_buf()
}

fn hooks(entries: &[(EventKind, HookCommand)]) -> BTreeMap<EventKind, Vec<HookCommand>> {
    let mut map: BTreeMap<EventKind, Vec<HookCommand>> = BTreeMap::new();
    for (kind, command) in entries {
        map.entry(*kind).or_default().push(command.clone());
    }
    map
}

#[test]
fn a_hook_gets_the_event_json_on_stdin_and_its_name_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut repo, src) = setup(dir.path());
    let out = dir.path().join("hook-out");
    std::fs::create_dir(&out).unwrap();
    let hook = script(
        &dir.path().join("hook.sh"),
        &format!(
            "echo \"$RESPALDO_EVENT\" >> '{out}/names'\ncat > \"{out}/$RESPALDO_EVENT.json\"",
            out = out.display()
        ),
    );
    let argv = HookCommand::argv([hook.to_string_lossy()]);
    let shell = HookCommand::shell(format!(
        "echo \"shell $RESPALDO_EVENT\" >> '{}/names'",
        out.display()
    ));
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let seen = warnings.clone();
    let sink = HookSink::new(
        hooks(&[
            (EventKind::BackupStarted, argv.clone()),
            (EventKind::BackupCompleted, argv),
            (EventKind::BackupCompleted, shell),
        ]),
        Duration::from_secs(10),
    )
    .on_warning(move |w| seen.lock().unwrap().push(w.to_string()));
    repo.add_event_sink(Arc::new(sink));

    let outcome = repo.backup(&backup_options(&[&src]), &NoProgress).unwrap();
    assert!(
        warnings.lock().unwrap().is_empty(),
        "{:?}",
        warnings.lock().unwrap()
    );
    let names = std::fs::read_to_string(out.join("names")).unwrap();
    assert_eq!(
        names,
        "EVT_BACKUP_STARTED\nEVT_BACKUP_COMPLETED\nshell EVT_BACKUP_COMPLETED\n"
    );
    let completed = std::fs::read_to_string(out.join("EVT_BACKUP_COMPLETED.json")).unwrap();
    assert_eq!(completed.lines().count(), 1, "one JSON line: {completed}");
    let json: serde_json::Value = serde_json::from_str(&completed).unwrap();
    assert_eq!(json["event"], "EVT_BACKUP_COMPLETED");
    assert_eq!(json["snapshot_id"], outcome.snapshot_id.to_string());
    assert_eq!(json["files"], 2);
    let started = std::fs::read_to_string(out.join("EVT_BACKUP_STARTED.json")).unwrap();
    let started: serde_json::Value = serde_json::from_str(&started).unwrap();
    assert_eq!(started["operation_id"], json["operation_id"]);
}

#[test]
fn failing_hanging_and_missing_hooks_are_warnings_and_the_backup_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (mut repo, src) = setup(dir.path());
    let failing = script(
        &dir.path().join("fail.sh"),
        "cat > /dev/null\necho 'alert service unreachable' >&2\nexit 3",
    );
    // The hook starts a child that would outlive it: the whole group is killed.
    let hanging = HookCommand::shell("sleep 30 & sleep 30");
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let seen = warnings.clone();
    let sink = HookSink::new(
        hooks(&[
            (
                EventKind::BackupStarted,
                HookCommand::argv([failing.to_string_lossy()]),
            ),
            (EventKind::BackupStarted, hanging),
            (
                EventKind::BackupCompleted,
                HookCommand::argv(["/no/such/program"]),
            ),
        ]),
        Duration::from_secs(1),
    )
    .on_warning(move |w| seen.lock().unwrap().push(w.clone()));
    repo.add_event_sink(Arc::new(sink));
    let rx = channel(&mut repo);

    let started = Instant::now();
    let outcome = repo.backup(&backup_options(&[&src]), &NoProgress);
    let elapsed = started.elapsed();
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(
        elapsed < Duration::from_secs(10),
        "the hanging hook was not stopped: {elapsed:?}"
    );
    assert_eq!(
        kinds(&drain(&rx)),
        [EventKind::BackupStarted, EventKind::BackupCompleted]
    );

    let warnings = warnings.lock().unwrap();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings[0].event, EventKind::BackupStarted);
    assert!(text[0].starts_with("hook `"), "{}", text[0]);
    assert!(text[0].contains("EVT_BACKUP_STARTED"), "{}", text[0]);
    assert!(text[0].contains("exit status: 3"), "{}", text[0]);
    assert!(text[0].contains("alert service unreachable"), "{}", text[0]);
    assert!(text[1].contains("did not finish within 1s"), "{}", text[1]);
    assert_eq!(warnings[2].event, EventKind::BackupCompleted);
    assert!(text[2].contains("cannot start"), "{}", text[2]);
}

/// An application's database: a table of its own with rows, WAL mode, its own user_version.
fn application_db(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "wal").unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, qty INTEGER);
         INSERT INTO orders (item, qty) VALUES ('apples', 3), ('pears', 5);
         PRAGMA user_version = 7;",
    )
    .unwrap();
    conn
}

#[test]
fn the_backup_log_records_every_operation_next_to_an_application_table() {
    let dir = tempfile::tempdir().unwrap();
    let (mut repo, src) = setup(dir.path());
    let db = dir.path().join("app.db");
    let app = application_db(&db);

    let log = BackupLog::open(&db).unwrap();
    assert_eq!(log.entries(10).unwrap(), []);
    let warnings = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = warnings.clone();
    repo.add_event_sink(Arc::new(
        log.on_warning(move |w| seen.lock().unwrap().push(w.to_string())),
    ));
    repo.set_job(Some("nightly".to_string()));

    let first = repo.backup(&backup_options(&[&src]), &NoProgress).unwrap();
    let missing = dir.path().join("gone");
    let failure = repo
        .backup(&backup_options(&[&missing]), &NoProgress)
        .unwrap_err();
    repo.set_job(None);
    let forget = ForgetOptions {
        snapshots: vec![first.snapshot_id.to_string()],
        ..ForgetOptions::default()
    };
    repo.forget(&forget).unwrap();
    repo.check(&CheckOptions::default(), &NoProgress).unwrap();
    assert!(warnings.lock().unwrap().is_empty(), "{warnings:?}");

    // Read back through another connection, as the application would.
    let reader = BackupLog::open_read_only(&db).unwrap();
    let mut rows = reader.entries(100).unwrap();
    rows.reverse();
    let ops: Vec<(&str, LogStatus)> = rows
        .iter()
        .map(|r| (r.operation.as_str(), r.status))
        .collect();
    assert_eq!(
        ops,
        [
            ("backup", LogStatus::Success),
            ("backup", LogStatus::Failed),
            ("forget", LogStatus::Success),
            ("check", LogStatus::Success),
        ]
    );
    let ok = &rows[0];
    let summary = &first.snapshot.summary;
    assert_eq!(ok.job.as_deref(), Some("nightly"));
    assert_eq!(ok.repository, repo.location());
    assert_eq!(ok.snapshot_id, Some(first.snapshot_id.to_string()));
    assert_eq!(ok.files, Some(2));
    assert_eq!(ok.bytes_read, Some(summary.bytes_read as i64));
    assert_eq!(ok.bytes_added, Some(summary.bytes_added as i64));
    assert!(ok.finished_at.as_deref().unwrap() >= ok.started_at.as_str());
    assert!(ok.duration_ms.is_some());
    assert_eq!(ok.error, None);
    let failed = &rows[1];
    assert_eq!(failed.error, Some(failure.to_string()));
    assert_eq!(failed.snapshot_id, None);
    assert!(failed.finished_at.is_some());
    assert_eq!(rows[2].job, None);
    assert!(rows[2].started_at <= rows[2].finished_at.clone().unwrap());
    assert_eq!(reader.entries(1).unwrap()[0].operation, "check");

    // The application's table and settings are untouched; plain SQL reads the log.
    let orders: Vec<(String, i64)> = app
        .prepare("SELECT item, qty FROM orders ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        orders,
        [("apples".to_string(), 3), ("pears".to_string(), 5)]
    );
    let user_version: i64 = app
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(user_version, 7);
    let mode: String = app
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let tables: Vec<String> = app
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["BackupLog", "orders"]);
    let last_ok: String = app
        .query_row(
            "SELECT snapshot_id FROM BackupLog WHERE operation = 'backup' AND status = 'success'
             AND job = 'nightly' ORDER BY finished_at DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(last_ok, first.snapshot_id.to_string());
}

#[test]
fn a_started_operation_is_a_running_row_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let log = BackupLog::open(&db).unwrap();
    let mut started = Event::new(EventKind::PruneStarted, "/r");
    started.job = Some("weekly".to_string());
    log.record(&started).unwrap();
    let rows = log.entries(10).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, LogStatus::Running);
    assert_eq!(rows[0].finished_at, None);

    let mut done = started.clone();
    done.event = EventKind::PruneCompleted;
    done.duration_seconds = Some(1.5);
    log.record(&done).unwrap();
    let rows = log.entries(10).unwrap();
    assert_eq!(rows.len(), 1, "the running row is updated");
    assert_eq!(rows[0].status, LogStatus::Success);
    assert_eq!(rows[0].duration_ms, Some(1500));
    assert_eq!(rows[0].job.as_deref(), Some("weekly"));
}

#[test]
fn a_row_that_cannot_be_written_is_a_warning_and_the_backup_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (mut repo, src) = setup(dir.path());
    let db = dir.path().join("log.db");
    let warnings = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = warnings.clone();
    let log = BackupLog::open(&db)
        .unwrap()
        .on_warning(move |w| seen.lock().unwrap().push(w.to_string()));
    repo.add_event_sink(Arc::new(log));
    // Someone replaces the database behind the log's back with a file that is not one.
    std::fs::write(&db, vec![b'x'; 4096]).unwrap();

    repo.backup(&backup_options(&[&src]), &NoProgress).unwrap();
    let warnings = warnings.lock().unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("log.db"), "{}", warnings[0]);
}

#[test]
fn a_log_database_that_cannot_be_written_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // A folder that is a regular file: fails for root too.
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, b"x").unwrap();
    let path = file.join("log.db");
    let err = BackupLog::open(&path).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.starts_with("backup log "), "{err}");

    // Not a database.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'j'; 4096]).unwrap();
    let err = BackupLog::open(&junk).unwrap_err().to_string();
    assert!(err.contains("junk.db"), "{err}");

    // An application's own BackupLog table of another shape.
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE BackupLog (when_ TEXT, what TEXT)")
        .unwrap();
    let err = BackupLog::open(&other).unwrap_err().to_string();
    assert!(err.contains("other.db") && err.contains("columns"), "{err}");

    // A read-only folder: root ignores permissions, so the case means nothing as root.
    if nix::unistd::geteuid().is_root() {
        eprintln!("skipping the read-only folder case: running as root, which ignores permissions");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let path = locked.join("log.db");
    let result = BackupLog::open(&path);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = result.unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");

    // A read-only database file in a writable folder.
    let ro = dir.path().join("ro.db");
    BackupLog::open(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    let err = BackupLog::open(&ro).unwrap_err().to_string();
    assert!(err.contains("ro.db"), "{err}");
}
