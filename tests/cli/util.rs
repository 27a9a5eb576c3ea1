//! A test environment: a temporary folder with a repository, a cache and room for sources,
//! and helpers to run the binary in it.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tempfile::TempDir;

/// The password of encrypted test repositories.
pub const PASSWORD: &str = "correct horse battery staple";

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_respaldo")
}

/// One test's folders: `repo/` (the repository), `cache/` and anything else under `dir`.
pub struct Env {
    pub dir: TempDir,
    pub repo: PathBuf,
    pub cache: PathBuf,
    /// Given as `RESPALDO_PASSWORD` to every command (none for unencrypted repositories).
    pub password: Option<String>,
}

impl Env {
    /// An environment without a repository yet; commands get `PASSWORD`.
    pub fn empty() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("respaldo-cli-test-")
            .tempdir()
            .unwrap();
        let repo = dir.path().join("repo");
        let cache = dir.path().join("cache");
        Self {
            dir,
            repo,
            cache,
            password: Some(PASSWORD.to_string()),
        }
    }

    /// An environment with an encrypted repository.
    pub fn new() -> Self {
        let env = Self::empty();
        env.ok(["init"]);
        env
    }

    /// An environment with an unencrypted repository and no password.
    pub fn unencrypted() -> Self {
        let mut env = Self::empty();
        env.password = None;
        env.ok(["init", "--no-encryption"]);
        env
    }

    /// A path under the environment's folder.
    pub fn path(&self, name: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A command running the binary with this environment (cache, password, fast KDF) and no
    /// arguments.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(binary());
        cmd.env_remove("RESPALDO_REPOSITORY")
            .env_remove("RESPALDO_PASSWORD")
            .env_remove("RESPALDO_PASSWORD_FILE")
            .env("RESPALDO_CACHE_DIR", &self.cache)
            .env("RESPALDO_LOG_DB", self.dir.path().join("log.db"))
            .env("RESPALDO_INSECURE_KDF_FOR_TESTS", "1")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        if let Some(p) = &self.password {
            cmd.env("RESPALDO_PASSWORD", p);
        }
        cmd
    }

    /// `respaldo ARGS... --repo REPO`.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command();
        cmd.args(args).arg("--repo").arg(&self.repo);
        cmd.output().unwrap()
    }

    /// Like [`Env::run`], and asserts exit code 0.
    pub fn ok<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.run(&args);
        assert_eq!(
            code(&out),
            0,
            "respaldo {args:?} failed:\n{}",
            describe(&out)
        );
        out
    }

    /// `respaldo ARGS... --repo REPO` with `input` on standard input.
    pub fn run_with_stdin<I, S>(&self, args: I, input: &[u8]) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command();
        cmd.args(args)
            .arg("--repo")
            .arg(&self.repo)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out
    }

    /// `backup --json PATHS...`, asserting exit 0; returns the summary object.
    pub fn backup(&self, paths: &[&Path]) -> Value {
        let mut args: Vec<OsString> = vec!["backup".into(), "--json".into()];
        args.extend(paths.iter().map(|p| p.as_os_str().to_owned()));
        let out = self.ok(&args);
        summary_line(&out)
    }

    /// `snapshots --json`, parsed.
    pub fn snapshots(&self) -> Vec<Value> {
        let out = self.ok(["snapshots", "--json"]);
        let value: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("snapshots --json is not JSON ({e}):\n{}", describe(&out)));
        value
            .as_array()
            .expect("snapshots --json is not an array")
            .clone()
    }
}

/// The exit code (`-1` when killed by a signal).
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Everything about a finished command, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    )
}

/// Every line of standard output parsed as JSON (a JSON lines stream).
pub fn json_lines(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("line {l:?} is not JSON ({e}):\n{}", describe(out)))
        })
        .collect()
}

/// The `{"message_type": "summary"}` line of a JSON stream (the last line).
pub fn summary_line(out: &Output) -> Value {
    let lines = json_lines(out);
    let last = lines
        .last()
        .cloned()
        .unwrap_or_else(|| panic!("no JSON output:\n{}", describe(out)));
    assert_eq!(
        last["message_type"],
        "summary",
        "last line is not a summary:\n{}",
        describe(out)
    );
    last
}

/// Standard output parsed as one JSON document, after the JSON lines of the events that
/// backup, restore, forget, prune and check print first with `--json`.
pub fn json(out: &Output) -> Value {
    let mut values: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("output is not JSON ({e}):\n{}", describe(out)));
    let document = values
        .pop()
        .unwrap_or_else(|| panic!("no JSON output:\n{}", describe(out)));
    for event in &values {
        assert!(
            event["event"].is_string(),
            "not an event before the JSON document: {event}\n{}",
            describe(out)
        );
    }
    document
}

/// Whether this process can read a file whose mode is 000 (it runs as root).
pub fn can_read_unreadable(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let probe = dir.join("root-probe");
    std::fs::write(&probe, b"x").unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o000)).unwrap();
    let readable = std::fs::File::open(&probe).is_ok();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(&probe).unwrap();
    readable
}
