//! Events and the backup log from the command line: `--json` streams the events of backup,
//! restore, forget, prune and check before their output; every one of them is a row of the
//! backup log (`--log-db`, `RESPALDO_LOG_DB`, `--no-log`), which `respaldo log` shows.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{Env, code, describe, json, json_lines, stderr, stdout, summary_line};

/// A source folder with two files.
fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    std::fs::write(src.join("sub/b.txt"), b"beta\n").unwrap();
    src
}

/// The event lines of a JSON stream, by name.
fn events(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l["event"].as_str().map(str::to_string))
        .collect()
}

/// `log --json`, parsed.
fn log(env: &Env, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["log", "--json"];
    args.extend_from_slice(extra);
    let out = env.ok(&args);
    json(&out)
        .as_array()
        .expect("log --json is an array")
        .clone()
}

fn column<'a>(rows: &'a [Value], key: &str) -> Vec<&'a str> {
    rows.iter().map(|r| r[key].as_str().unwrap_or("")).collect()
}

#[test]
fn backup_json_streams_its_events_and_keeps_the_summary_last() {
    let env = Env::new();
    let src = source(&env);
    let out = env.ok(["backup".as_ref(), "--json".as_ref(), src.as_os_str()]);
    let lines = json_lines(&out);
    assert_eq!(
        events(&lines),
        ["EVT_BACKUP_STARTED", "EVT_BACKUP_COMPLETED"],
        "{}",
        describe(&out)
    );
    let summary = summary_line(&out);
    let (started, completed) = (&lines[0], &lines[1]);
    assert_eq!(started["operation_id"], completed["operation_id"]);
    assert_eq!(completed["operation"], "backup");
    assert_eq!(completed["snapshot_id"], summary["snapshot_id"]);
    assert_eq!(completed["files"], 2);
    assert_eq!(completed["bytes_read"], summary["bytes_read"]);
    assert_eq!(completed["bytes_added"], summary["bytes_added"]);
    assert!(completed["error"].is_null());
    assert_eq!(
        completed["repository"].as_str(),
        Some(env.repo.to_str().unwrap())
    );

    // Without --json, standard output has no events.
    let out = env.ok(["backup".as_ref(), src.as_os_str()]);
    assert!(!stdout(&out).contains("EVT_"), "{}", describe(&out));
}

#[test]
fn a_failed_backup_streams_its_failed_event_and_is_logged_with_the_error() {
    let env = Env::new();
    let missing = env.path("missing");
    let out = env.run(["backup".as_ref(), "--json".as_ref(), missing.as_os_str()]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let lines = json_lines(&out);
    assert_eq!(
        events(&lines),
        ["EVT_BACKUP_STARTED", "EVT_BACKUP_FAILED"],
        "{}",
        describe(&out)
    );
    let error = lines[1]["error"].as_str().unwrap();
    assert!(error.contains("missing"), "{error}");
    assert!(stderr(&out).contains(error), "{}", describe(&out));

    let rows = log(&env, &[]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["operation"], "backup");
    assert_eq!(rows[0]["status"], "failed");
    assert_eq!(rows[0]["error"], error);
}

#[test]
fn every_operation_is_a_row_of_the_log() {
    let env = Env::new();
    let src = source(&env);
    let first = env.backup(&[&src]);
    std::fs::write(src.join("a.txt"), b"changed\n").unwrap();
    env.backup(&[&src]);

    let target = env.path("restored");
    let out = env.ok([
        "restore".as_ref(),
        "latest".as_ref(),
        "--json".as_ref(),
        "--target".as_ref(),
        target.as_os_str(),
    ]);
    let lines = json_lines(&out);
    assert_eq!(
        events(&lines),
        ["AGT_RESTORE_STARTED", "EVT_RESTORE_COMPLETED"],
        "{}",
        describe(&out)
    );
    assert_eq!(summary_line(&out)["files"], 2);

    // forget, prune and check print their events before their JSON document.
    let out = env.ok(["forget", "--keep-last", "1", "--json"]);
    let report = json(&out);
    assert_eq!(report["removed"].as_array().map(Vec::len), Some(1));
    assert!(
        stdout(&out).starts_with("{\"event\":\"EVT_FORGET_COMPLETED\""),
        "{}",
        describe(&out)
    );
    let out = env.ok(["prune", "--json"]);
    json(&out);
    assert!(
        stdout(&out).contains("EVT_PRUNE_STARTED"),
        "{}",
        describe(&out)
    );
    assert!(
        stdout(&out).contains("EVT_PRUNE_COMPLETED"),
        "{}",
        describe(&out)
    );
    let out = env.ok(["check", "--json"]);
    json(&out);
    assert!(
        stdout(&out).contains("EVT_CHECK_COMPLETED"),
        "{}",
        describe(&out)
    );

    let rows = log(&env, &[]);
    assert_eq!(
        column(&rows, "operation"),
        ["backup", "backup", "restore", "forget", "prune", "check"]
    );
    assert!(column(&rows, "status").iter().all(|s| *s == "success"));
    assert_eq!(rows[0]["snapshot_id"], first["snapshot_id"]);
    assert_eq!(rows[0]["files"], 2);
    assert_eq!(rows[0]["bytes_added"], first["bytes_added"]);
    assert!(rows[0]["finished_at"].as_str().unwrap() >= rows[0]["started_at"].as_str().unwrap());
    assert!(rows[0]["duration_ms"].is_i64());
    assert_eq!(rows[2]["files"], 2);
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first: {ids:?}");

    // --limit keeps the most recent.
    let last = log(&env, &["--limit", "2"]);
    assert_eq!(column(&last, "operation"), ["prune", "check"]);

    // The table.
    let out = env.ok(["log"]);
    let text = stdout(&out);
    let header = text.lines().next().unwrap();
    for title in [
        "ID",
        "Operation",
        "Status",
        "Started",
        "Duration",
        "Snapshot",
    ] {
        assert!(header.contains(title), "{text}");
    }
    let short = &first["snapshot_id"].as_str().unwrap()[..8];
    assert!(text.contains(short), "{text}");
    assert_eq!(text.lines().count(), 2 + 6, "{text}");
}

/// Whether `db` holds a `BackupLog` table with `n` rows.
fn log_rows(db: &Path) -> usize {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM BackupLog", [], |r| r.get::<_, i64>(0))
        .unwrap() as usize
}

#[test]
fn log_db_and_the_environment_variable_choose_the_database() {
    let env = Env::new();
    let src = source(&env);
    // The test environment sets RESPALDO_LOG_DB to log.db in its folder.
    env.backup(&[&src]);
    assert_eq!(log_rows(&env.path("log.db")), 1);

    // --log-db wins over the variable, and `log` reads the database it names.
    let app = env.path("app/app.db");
    std::fs::create_dir_all(app.parent().unwrap()).unwrap();
    rusqlite::Connection::open(&app)
        .unwrap()
        .execute_batch("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('ana');")
        .unwrap();
    env.ok([
        "backup".as_ref(),
        "--log-db".as_ref(),
        app.as_os_str(),
        src.as_os_str(),
    ]);
    assert_eq!(log_rows(&app), 1);
    assert_eq!(log_rows(&env.path("log.db")), 1);
    let names: String = rusqlite::Connection::open(&app)
        .unwrap()
        .query_row("SELECT group_concat(name) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(names, "ana");
    let rows = log(&env, &["--log-db", app.to_str().unwrap()]);
    assert_eq!(rows.len(), 1);

    // The variable alone.
    let other = env.path("state/other.db");
    let out = env
        .command()
        .env("RESPALDO_LOG_DB", &other)
        .args(["backup".as_ref(), src.as_os_str(), "--repo".as_ref()])
        .arg(&env.repo)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(log_rows(&other), 1);

    // --no-log writes nothing.
    env.ok(["backup".as_ref(), "--no-log".as_ref(), src.as_os_str()]);
    assert_eq!(log_rows(&env.path("log.db")), 1);
}

#[test]
fn a_log_database_that_cannot_be_written_stops_before_the_backup() {
    let env = Env::new();
    let src = source(&env);
    // Its folder is a regular file: fails for root too.
    let file = env.path("not-a-folder");
    std::fs::write(&file, b"x").unwrap();
    let db = file.join("log.db");
    let out = env.run([
        "backup".as_ref(),
        "--log-db".as_ref(),
        db.as_os_str(),
        src.as_os_str(),
    ]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains(db.to_str().unwrap()), "{err}");
    assert!(err.contains("--no-log"), "{err}");
    assert!(env.snapshots().is_empty(), "nothing was backed up");
}

#[test]
fn log_without_a_database_is_empty() {
    let env = Env::new();
    assert_eq!(log(&env, &[]), Vec::<Value>::new());
    assert!(!env.path("log.db").exists(), "reading creates nothing");
    let out = env.ok(["log"]);
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("no operations"), "{}", describe(&out));
}

#[test]
fn the_default_log_is_in_the_state_folder_and_never_stops_a_backup() {
    let env = Env::new();
    let src = source(&env);
    let backup = |state: &Path| {
        env.command()
            .env_remove("RESPALDO_LOG_DB")
            .env("XDG_STATE_HOME", state)
            .args(["backup".as_ref(), src.as_os_str(), "--repo".as_ref()])
            .arg(&env.repo)
            .output()
            .unwrap()
    };
    let state = env.path("state");
    let out = backup(&state);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(log_rows(&state.join("respaldo/log.db")), 1);

    // A state folder that cannot hold the log: a warning, and the backup is saved.
    let file = env.path("not-a-folder");
    std::fs::write(&file, b"x").unwrap();
    let out = backup(&file);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("respaldo: warning: backup log"), "{err}");
    assert!(err.contains("not-a-folder"), "{err}");
    assert_eq!(env.snapshots().len(), 2);
}
