//! `respaldo service` reloads its config on SIGHUP: a job added to the file starts running; an
//! invalid file is a warning naming the file, and the service goes on with the config it had;
//! SIGTERM still stops it with exit code 0.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::util::Env;

/// How long anything may take on a loaded machine before the test gives up.
const DEADLINE: Duration = Duration::from_secs(60);

/// A job backing up `src` into the environment's repository every second.
fn job(env: &Env, src: &Path) -> String {
    format!(
        r#"{{"repository": {}, "sources": [{}], "schedule": "* * * * * *"}}"#,
        serde_json::to_string(&env.repo.display().to_string()).unwrap(),
        serde_json::to_string(&src.display().to_string()).unwrap(),
    )
}

/// Replaces `config.json` at once (write, then rename), so that a reload never reads a
/// half-written file.
fn write_config(env: &Env, text: &str) -> PathBuf {
    let file = env.path("config.json");
    let partial = env.path("config.json.partial");
    std::fs::write(&partial, text).unwrap();
    std::fs::rename(&partial, &file).unwrap();
    file
}

/// The service under test; killed if the test fails before it stops.
struct Service {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Service {
    fn start(env: &Env, config: &Path) -> Self {
        let stdout = env.path("service.out");
        let stderr = env.path("service.err");
        let child = env
            .command()
            .args(["service", "--json", "--config"])
            .arg(config)
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            stdout,
            stderr,
        }
    }

    fn signal(&self, signal: Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, signal).unwrap();
    }

    fn messages(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The jobs whose backups completed, in order, from the `--json` events.
    fn completed(&self) -> Vec<String> {
        std::fs::read_to_string(&self.stdout)
            .unwrap_or_default()
            .lines()
            // The last line may be half-written.
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|event| event["event"] == "EVT_BACKUP_COMPLETED")
            .filter_map(|event| event["job"].as_str().map(str::to_string))
            .collect()
    }

    /// Waits until `done` holds, or fails the test with the service's messages.
    fn wait_for(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        let started = Instant::now();
        while !done(self) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the service exited ({status}) while waiting for {what}:\n{}",
                    self.messages()
                );
            }
            assert!(
                started.elapsed() < DEADLINE,
                "no {what} within {DEADLINE:?}:\n{}",
                self.messages()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn sighup_reloads_the_config_and_an_invalid_one_keeps_the_service_running() {
    let env = Env::unencrypted();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    let one_job = format!(r#"{{"jobs": {{"first": {}}}}}"#, job(&env, &src));
    let config = write_config(&env, &one_job);
    let mut service = Service::start(&env, &config);
    service.wait_for("backup of the first job", |s| {
        s.completed().iter().any(|j| j == "first")
    });

    // A second job: SIGHUP makes the service take it up.
    let two_jobs = format!(
        r#"{{"jobs": {{"first": {}, "second": {}}}}}"#,
        job(&env, &src),
        job(&env, &src)
    );
    write_config(&env, &two_jobs);
    service.signal(Signal::SIGHUP);
    service.wait_for("backup of the second job", |s| {
        s.completed().iter().any(|j| j == "second")
    });
    let messages = service.messages();
    assert!(messages.contains("SIGHUP"), "{messages}");
    assert!(
        messages.contains(&format!(
            "config reloaded from {}: 2 scheduled job(s) of 2; added second",
            config.display()
        )),
        "{messages}"
    );

    // Invalid JSON: a warning naming the file, and both jobs keep running.
    write_config(&env, "{\"jobs\": {\"first\": ");
    service.signal(Signal::SIGHUP);
    service.wait_for("warning about the invalid config", |s| {
        s.messages().contains("config not reloaded")
    });
    let messages = service.messages();
    let warning = messages
        .lines()
        .find(|l| l.contains("config not reloaded"))
        .unwrap();
    assert!(
        warning.contains(&config.display().to_string()),
        "{messages}"
    );
    let done = service.completed().len();
    service.wait_for("backups of both jobs after the failed reload", |s| {
        let after = &s.completed()[done..];
        after.iter().any(|j| j == "first") && after.iter().any(|j| j == "second")
    });

    // SIGTERM still stops it, with exit code 0.
    service.signal(Signal::SIGTERM);
    let asked = Instant::now();
    let status = loop {
        if let Some(status) = service.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < DEADLINE,
            "the service did not stop within {DEADLINE:?} of SIGTERM:\n{}",
            service.messages()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let messages = service.messages();
    assert_eq!(status.code(), Some(0), "{messages}");
    assert!(messages.contains("service stopped"), "{messages}");
    assert!(
        messages.contains("config reloaded 1 time(s), 1 reload(s) failed"),
        "{messages}"
    );
    let snapshots = env.snapshots();
    assert!(snapshots.len() >= 4, "{} snapshots", snapshots.len());
}
