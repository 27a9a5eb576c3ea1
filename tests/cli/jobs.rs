//! Jobs from the JSON config on the command line: `run JOB`, `jobs`, `service` (started as a
//! child process and stopped with SIGTERM), and config errors that name the file and field.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Env, code, describe, json, stderr, stdout};

/// A source folder with two files.
fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    std::fs::write(src.join("sub/b.txt"), b"beta\n").unwrap();
    src
}

/// Writes `config.json` with one job `name` (the environment's repository, `sources`, and
/// `extra` fields), whose hook appends each event's name to `events.txt`.
fn write_config(env: &Env, name: &str, sources: &[&Path], extra: &str) -> PathBuf {
    let sources: Vec<String> = sources
        .iter()
        .map(|p| serde_json::to_string(&p.display().to_string()).unwrap())
        .collect();
    let hook = serde_json::to_string(&format!(
        "echo \"$RESPALDO_EVENT\" >> '{}'",
        env.path("events.txt").display()
    ))
    .unwrap();
    let text = format!(
        r#"{{
  "jobs": {{
    "{name}": {{
      "repository": {repo},
      "sources": [{sources}],
      "hooks": {{"EVT_BACKUP_COMPLETED": [{hook}], "EVT_BACKUP_FAILED": [{hook}]}}{extra}
    }}
  }}
}}"#,
        repo = serde_json::to_string(&env.repo.display().to_string()).unwrap(),
        sources = sources.join(", "),
    );
    let file = env.path("config.json");
    std::fs::write(&file, text).unwrap();
    file
}

/// `respaldo ARGS... --config FILE` (no `--repo`: the config names it).
fn respaldo<I, S>(env: &Env, config: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    env.command()
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn hook_events(env: &Env) -> Vec<String> {
    std::fs::read_to_string(env.path("events.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `log --json` rows.
fn log(env: &Env) -> Vec<Value> {
    let out = env.ok(["log", "--json", "--limit", "1000"]);
    json(&out).as_array().unwrap().clone()
}

#[test]
fn run_runs_a_job_with_its_retention_prune_hooks_and_log() {
    let env = Env::unencrypted();
    let src = source(&env);
    let config = write_config(
        &env,
        "nightly",
        &[&src],
        r#", "retention": {"keep_last": 1}, "prune": true"#,
    );
    let out = respaldo(&env, &config, ["run", "nightly"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(stdout(&out).contains("snapshot"), "{}", describe(&out));

    std::fs::write(src.join("a.txt"), b"changed\n").unwrap();
    let out = respaldo(&env, &config, ["run", "nightly", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["job"], "nightly");
    assert_eq!(report["status"], "success");
    assert_eq!(
        report["forget"]["removed"].as_array().map(Vec::len),
        Some(1)
    );
    assert!(report["prune"]["bytes_freed"].is_u64(), "{report}");
    // The events as JSON lines, then the report.
    let events: Vec<String> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .filter_map(|l| l["event"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        events,
        [
            "EVT_BACKUP_STARTED",
            "EVT_BACKUP_COMPLETED",
            "EVT_FORGET_COMPLETED",
            "EVT_PRUNE_STARTED",
            "EVT_PRUNE_COMPLETED"
        ]
    );

    let snapshots = env.snapshots();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0]["id"], report["snapshot_id"]);
    assert_eq!(hook_events(&env), ["EVT_BACKUP_COMPLETED"; 2]);
    let rows = log(&env);
    assert_eq!(rows.len(), 6, "{rows:#?}");
    assert!(
        rows.iter()
            .all(|r| r["job"] == "nightly" && r["status"] == "success")
    );

    // Some sources missing: the snapshot is saved, exit 3.
    let config = write_config(&env, "partial", &[&src, &env.path("missing")], "");
    let out = respaldo(&env, &config, ["run", "partial"]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(stderr(&out).contains("missing"), "{}", describe(&out));

    // Nothing to back up: exit 1, the failed event reaches the hook and the log.
    let config = write_config(&env, "broken", &[&env.path("missing")], "");
    let out = respaldo(&env, &config, ["run", "broken"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(
        stderr(&out).contains("job broken: backup failed"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        hook_events(&env).last().map(String::as_str),
        Some("EVT_BACKUP_FAILED")
    );
    let rows = log(&env);
    let last = rows.last().unwrap();
    assert_eq!(last["job"], "broken");
    assert_eq!(last["status"], "failed");

    // No repository: exit 10, as for every command, and the failure is still an event.
    let mut cfg = std::fs::read_to_string(&config).unwrap();
    cfg = cfg.replace(&*env.repo.display().to_string(), "/nonexistent/repo");
    std::fs::write(&config, cfg).unwrap();
    let out = respaldo(&env, &config, ["run", "broken"]);
    assert_eq!(code(&out), 10, "{}", describe(&out));
    assert_eq!(log(&env).len(), rows.len() + 1);
}

#[test]
fn jobs_lists_the_jobs_with_their_next_run() {
    let env = Env::unencrypted();
    let src = source(&env);
    let config = write_config(
        &env,
        "nightly",
        &[&src],
        r#", "schedule": "0 1 * * *", "timezone": "Europe/Madrid""#,
    );
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replacen(
        "\"jobs\": {",
        &format!(
            "\"jobs\": {{\"manual\": {{\"repository\": \"/r\", \"sources\": [{}]}},",
            serde_json::to_string(&src.display().to_string()).unwrap()
        ),
        1,
    );
    std::fs::write(&config, text).unwrap();

    // RESPALDO_CONFIG names the file too.
    let out = env
        .command()
        .args(["jobs", "--json"])
        .env("RESPALDO_CONFIG", &config)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let jobs = json(&out);
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let manual = &jobs[0];
    assert_eq!(manual["name"], "manual");
    assert!(manual["next_run"].is_null() && manual["schedule"].is_null());
    let nightly = &jobs[1];
    assert_eq!(nightly["name"], "nightly");
    assert_eq!(nightly["schedule"], "0 1 * * *");
    assert_eq!(nightly["timezone"], "Europe/Madrid");
    let next: jiff::Timestamp = nightly["next_run"].as_str().unwrap().parse().unwrap();
    let now = jiff::Timestamp::now();
    assert!(next > now && next.duration_since(now) <= jiff::SignedDuration::from_hours(24));
    // 01:00 in Madrid is 00:00 UTC in winter, 23:00 UTC in summer.
    let utc = next.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    assert!([0, 23].contains(&utc.hour()) && utc.minute() == 0 && utc.second() == 0);

    let out = respaldo(&env, &config, ["jobs"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let table = stdout(&out);
    for word in [
        "Job",
        "Next run",
        "nightly",
        "manual",
        "Europe/Madrid",
        "0 1 * * *",
    ] {
        assert!(table.contains(word), "{word:?} missing:\n{table}");
    }
}

#[test]
fn the_service_runs_jobs_until_sigterm_then_exits_zero() {
    let env = Env::unencrypted();
    let src = source(&env);
    let config = write_config(
        &env,
        "often",
        &[&src],
        r#", "schedule": "* * * * * *", "retention": {"keep_last": 2}, "prune": true"#,
    );
    let log_file = std::fs::File::create(env.path("service.err")).unwrap();
    let mut child = env
        .command()
        .args(["service", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap();
    // At least two runs (4 s on an idle machine; a loaded one is given up to a minute).
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let done = std::fs::read_to_string(env.path("events.txt"))
            .unwrap_or_default()
            .matches("EVT_BACKUP_COMPLETED")
            .count();
        if (done >= 2 && started.elapsed() >= Duration::from_secs(4))
            || started.elapsed() > Duration::from_secs(60)
        {
            break;
        }
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let asked = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if asked.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the service did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let messages = std::fs::read_to_string(env.path("service.err")).unwrap();
    assert_eq!(status.code(), Some(0), "{messages}");
    assert!(messages.contains("job often: started"), "{messages}");
    assert!(messages.contains("SIGTERM"), "{messages}");
    assert!(messages.contains("service stopped"), "{messages}");

    let rows = log(&env);
    let backups = rows
        .iter()
        .filter(|r| r["operation"] == "backup" && r["status"] == "success")
        .count();
    assert!(backups >= 2, "{backups} backups:\n{messages}");
    let forgets = rows
        .iter()
        .filter(|r| r["operation"] == "forget" && r["status"] == "success")
        .count();
    // keep_last 2, unless the stop came during the last backup (its forget is skipped).
    let kept = env.snapshots().len();
    assert!(
        kept >= 1 && kept <= 2 + backups - forgets,
        "{kept} snapshots"
    );
    assert!(hook_events(&env).len() >= 2);
}

#[test]
fn config_errors_name_the_file_and_the_field() {
    let env = Env::unencrypted();
    let src = source(&env);
    let config = write_config(&env, "nightly", &[&src], r#", "schedule": "0 25 * * *""#);
    for args in [vec!["run", "nightly"], vec!["jobs"], vec!["service"]] {
        let out = respaldo(&env, &config, &args);
        assert_eq!(code(&out), 1, "{args:?}: {}", describe(&out));
        let message = stderr(&out);
        assert!(
            message.contains(&*config.display().to_string()),
            "{message}"
        );
        assert!(message.contains("jobs.nightly.schedule"), "{message}");
        assert!(message.contains("invalid cron expression"), "{message}");
    }

    let config = write_config(&env, "nightly", &[&src], r#", "sourcs": []"#);
    let out = respaldo(&env, &config, ["jobs"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(
        stderr(&out).contains("jobs.nightly: unknown field \"sourcs\""),
        "{}",
        describe(&out)
    );

    // A job the config does not have, and a config that does not exist.
    let config = write_config(&env, "nightly", &[&src], "");
    let out = respaldo(&env, &config, ["run", "weekly"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(
        stderr(&out).contains("no job named \"weekly\""),
        "{}",
        describe(&out)
    );
    let missing = env.path("nope.json");
    let out = respaldo(&env, &missing, ["jobs"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(
        stderr(&out).contains(&*missing.display().to_string()),
        "{}",
        describe(&out)
    );
}

/// Hooks are other programs: they get the event, never the repository's password.
#[test]
fn hooks_do_not_see_the_password() {
    let env = crate::util::Env::new();
    let src = source(&env);
    let seen = env.path("hook-env.txt");
    let hook = serde_json::to_string(&format!(
        "echo \"${{RESPALDO_PASSWORD:-none}} ${{RESPALDO_EVENT}}\" >> '{}'",
        seen.display()
    ))
    .unwrap();
    let text = format!(
        r#"{{"jobs": {{"j": {{"repository": {repo}, "sources": [{src}],
            "hooks": {{"EVT_BACKUP_COMPLETED": [{hook}]}}}}}}}}"#,
        repo = serde_json::to_string(&env.repo.display().to_string()).unwrap(),
        src = serde_json::to_string(&src.display().to_string()).unwrap(),
    );
    let config = env.path("config.json");
    std::fs::write(&config, text).unwrap();
    let out = respaldo(&env, &config, ["run", "j"]);
    assert_eq!(
        crate::util::code(&out),
        0,
        "{}",
        crate::util::describe(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "none EVT_BACKUP_COMPLETED\n"
    );
}

#[test]
fn a_second_run_of_a_running_job_fails_with_exit_11_and_the_first_goes_on() {
    let env = Env::unencrypted();
    let src = source(&env);
    let started = env.path("started");
    let release = env.path("release");
    // The first run's started hook holds it (and its job lock) until `release` exists (at most
    // a minute, within the hook's timeout).
    let hold = serde_json::to_string(&format!(
        "touch '{}'; i=0; while [ ! -e '{}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done",
        started.display(),
        release.display()
    ))
    .unwrap();
    let text = format!(
        r#"{{"jobs": {{"nightly": {{
            "repository": {repo},
            "sources": [{src}],
            "hooks": {{"EVT_BACKUP_STARTED": [{hold}]}},
            "hook_timeout": "5m"
        }}}}}}"#,
        repo = serde_json::to_string(&env.repo.display().to_string()).unwrap(),
        src = serde_json::to_string(&src.display().to_string()).unwrap(),
    );
    let config = env.path("config.json");
    std::fs::write(&config, text).unwrap();

    let first = env
        .command()
        .args(["run", "nightly", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the first run never started");
        std::thread::sleep(Duration::from_millis(50));
    }

    let out = respaldo(&env, &config, ["run", "nightly"]);
    assert_eq!(code(&out), 11, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("job nightly is already running")
            && err.contains(&format!("pid {}", first.id()))
            && err.contains("--retry-lock"),
        "{err}"
    );

    // Waiting for it: the second run starts once the first ends.
    let second = env
        .command()
        .args(["run", "nightly", "--retry-lock", "2m", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(&release, b"").unwrap();
    let out = first.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let out = second.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(env.snapshots().len(), 2);
    // The refused run is in the log as a failed backup of the job.
    let rows = log(&env);
    let failed: Vec<&Value> = rows.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{rows:?}");
    assert_eq!(failed[0]["job"], "nightly");
    assert!(
        failed[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("already running")),
        "{rows:?}"
    );
}

#[test]
fn run_draws_a_progress_bar_on_a_terminal_and_nothing_on_a_pipe() {
    use std::io::Read;

    let env = Env::unencrypted();
    let src = source(&env);
    // The started hook keeps the backup (and its bar) going for a moment.
    let text = format!(
        r#"{{"jobs": {{"nightly": {{
            "repository": {repo},
            "sources": [{src}],
            "hooks": {{"EVT_BACKUP_STARTED": ["sleep 1"]}}
        }}}}}}"#,
        repo = serde_json::to_string(&env.repo.display().to_string()).unwrap(),
        src = serde_json::to_string(&src.display().to_string()).unwrap(),
    );
    let config = env.path("config.json");
    std::fs::write(&config, text).unwrap();

    // Standard error on a terminal.
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut child = env
        .command()
        .args(["run", "nightly", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::from(pty.slave))
        .spawn()
        .unwrap();
    let mut terminal = std::fs::File::from(pty.master);
    let mut seen = Vec::new();
    // Reading the master ends with EIO once the child has closed the terminal.
    let _ = terminal.read_to_end(&mut seen);
    assert!(child.wait().unwrap().success());
    let seen = String::from_utf8_lossy(&seen);
    assert!(
        seen.contains("backup [") && seen.contains("ETA"),
        "a bar on the terminal: {seen:?}"
    );

    // On a pipe: no bar, only the result.
    let out = respaldo(&env, &config, ["run", "nightly"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let err = stderr(&out);
    assert!(!err.contains("ETA") && !err.contains('\r'), "{err:?}");
}
