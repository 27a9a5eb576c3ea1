//! Test support: a real S3-compatible server on loopback, and a proxy that can stall.
//!
//! [`S3Server`] runs a one-node [Garage](https://garagehq.deuxfleurs.fr/) cluster in a
//! temporary folder, with one bucket and one key, the way users run it in production (only
//! smaller). Garage is an external program, never linked: the binary is found through
//! `RESPALDO_TEST_GARAGE`, then `garage` on `PATH`, then where `.ci/run` installs it
//! (`$CARGO_HOME/garage-2.5.0/bin/garage`). Without one, [`S3Server::start`] returns `None`
//! so that a plain `cargo test` on a new machine passes, unless `RESPALDO_TEST_S3_REQUIRED`
//! is set (CI sets it), in which case a missing server fails the test.
//!
//! A server left behind by a test process that died is stopped by its own watchdog, which
//! follows the test process.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Names the Garage binary to use.
pub const GARAGE_ENV: &str = "RESPALDO_TEST_GARAGE";
/// When set (to anything but empty), a test that finds no Garage binary fails instead of
/// skipping.
pub const REQUIRED_ENV: &str = "RESPALDO_TEST_S3_REQUIRED";
/// The region the server signs for.
pub const REGION: &str = "garage";
/// The bucket every server has.
pub const BUCKET: &str = "respaldo";

/// A running one-node Garage server. Dropping it stops the server and deletes its data.
pub struct S3Server {
    dir: tempfile::TempDir,
    binary: PathBuf,
    config: PathBuf,
    s3_port: u16,
    process: Option<Child>,
    /// Bucket and key exist: a restart waits for the bucket to answer.
    ready: bool,
    /// The access key id, allowed to read and write [`BUCKET`].
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
}

/// Where the Garage binary is, if anywhere.
pub fn garage_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(GARAGE_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("garage"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        let installed = cargo_home.join("garage-2.5.0").join("bin").join("garage");
        installed.is_file().then_some(installed)
    })
}

/// Two distinct free ports on loopback (both held until both are chosen).
fn free_ports() -> (u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("no free port on loopback");
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| l.local_addr().expect("bound socket has an address").port();
    (port(&a), port(&b))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("no OS randomness");
    hex::encode(buf)
}

impl S3Server {
    /// Starts a server with bucket [`BUCKET`] and a key allowed to use it. `None` (after a
    /// note on stderr) when there is no Garage binary and S3 tests are not required.
    ///
    /// Panics when the server cannot be started: a test must not pass without it.
    pub fn start() -> Option<S3Server> {
        let Some(binary) = garage_binary() else {
            let required = std::env::var_os(REQUIRED_ENV).is_some_and(|v| !v.is_empty());
            assert!(
                !required,
                "{REQUIRED_ENV} is set but no Garage binary was found: set {GARAGE_ENV} or \
                 install it with `cargo install --locked garage --version 2.5.0`"
            );
            eprintln!(
                "skipping: no Garage binary (set {GARAGE_ENV}, or run .ci/run once to install it)"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("respaldo-garage-")
            .tempdir()
            .expect("cannot create a folder for the server");
        let (rpc_port, s3_port) = free_ports();
        let config = dir.path().join("garage.toml");
        let root = dir.path().display();
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{root}/meta\"\n\
                 data_dir = \"{root}/data\"\n\
                 db_engine = \"sqlite\"\n\
                 replication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_secret = \"{}\"\n\
                 \n\
                 [s3_api]\n\
                 s3_region = \"{REGION}\"\n\
                 api_bind_addr = \"127.0.0.1:{s3_port}\"\n\
                 root_domain = \".s3.garage.localhost\"\n",
                random_hex(32)
            ),
        )
        .expect("cannot write the server's config");
        let mut server = S3Server {
            dir,
            binary,
            config,
            s3_port,
            process: None,
            ready: false,
            access_key_id: String::new(),
            secret_access_key: String::new(),
        };
        server.resume();
        let node = server.garage(&["node", "id", "-q"]);
        let node = node
            .trim()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_string();
        server.garage(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        server.garage(&["layout", "apply", "--version", "1"]);
        server.garage(&["bucket", "create", BUCKET]);
        let key = server.garage(&["key", "create", "respaldo-test"]);
        let field = |label: &str| {
            key.lines()
                .find_map(|l| l.strip_prefix(label))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {label:?} in `garage key create` output:\n{key}"))
        };
        server.access_key_id = field("Key ID:");
        server.secret_access_key = field("Secret key:");
        server.garage(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            BUCKET,
            "--key",
            "respaldo-test",
        ]);
        server.ready = true;
        server.wait_for_bucket();
        Some(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The loopback port of the S3 API.
    pub fn port(&self) -> u16 {
        self.s3_port
    }

    /// The respaldo location of a repository under `prefix` in [`BUCKET`].
    pub fn location(&self, prefix: &str) -> String {
        format!("s3:{}/{BUCKET}/{prefix}", self.endpoint())
    }

    /// The variables a respaldo process needs to reach the bucket.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_REGION", REGION.to_string()),
        ]
    }

    /// Runs a `garage` admin command against this server and returns its output; panics when
    /// it fails.
    pub fn garage(&self, args: &[&str]) -> String {
        let out = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run garage");
        assert!(
            out.status.success(),
            "garage {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server abruptly (SIGKILL), as a crash or a pulled cable would. Data stays.
    pub fn stop(&mut self) {
        if let Some(pid) = self.server_pid() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
        if let Some(mut watchdog) = self.process.take() {
            // The watchdog ends with the server; kill it too, in case the server's pid was
            // never written.
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let _ = std::fs::remove_file(self.pid_file());
    }

    /// Starts the server (again) on the same data and ports, and waits until it answers.
    pub fn resume(&mut self) {
        if self.process.is_some() {
            return;
        }
        // A watchdog shell starts the server and stops it when this test process goes away,
        // so that no server outlives a test that crashed.
        let script = r#"
            "$1" -c "$2" server >"$3/server.log" 2>&1 &
            server=$!
            echo "$server" >"$3/server.pid"
            while kill -0 "$4" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 0.2; done
            kill "$server" 2>/dev/null
            wait "$server"
        "#;
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("garage-watchdog")
            .arg(&self.binary)
            .arg(&self.config)
            .arg(self.dir.path())
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start the Garage server");
        self.process = Some(watchdog);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = Command::new(&self.binary)
                .arg("-c")
                .arg(&self.config)
                .arg("status")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if status.is_ok_and(|s| s.success())
                && TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok()
            {
                if self.ready {
                    self.wait_for_bucket();
                }
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Garage server did not start within a minute; its log:\n{}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for_bucket(&self) {
        // A fresh layout (or a restarted node) takes a moment before the bucket accepts
        // requests; an anonymous GET answers 403 once the API serves the bucket.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                Instant::now() < deadline,
                "the Garage bucket did not answer within 30 s; the server's log:\n{}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            if let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.s3_port)) {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let request = format!(
                    "GET /{BUCKET}/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                );
                let mut answer = String::new();
                if conn.write_all(request.as_bytes()).is_ok()
                    && conn.read_to_string(&mut answer).is_ok()
                    && (answer.starts_with("HTTP/1.1 403") || answer.starts_with("HTTP/1.1 200"))
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("server.pid")
    }

    fn server_pid(&self) -> Option<String> {
        let pid = std::fs::read_to_string(self.pid_file()).ok()?;
        let pid = pid.trim();
        (!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then(|| pid.to_string())
    }

    /// What the server logged so far (one line per request it served, among others).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server's data folder (for tests that look at what it stored).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP proxy in front of a server that forwards everything until told to stall; a stalled
/// proxy accepts connections and reads requests but never answers, as a hung server does.
/// It also counts the connections it accepted. Dropping it ends its threads.
pub struct StallProxy {
    port: u16,
    stalled: Arc<AtomicBool>,
    connections: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        self.stalled.store(false, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl StallProxy {
    /// A proxy on a free loopback port forwarding to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> StallProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("no free port on loopback");
        let port = listener
            .local_addr()
            .expect("bound socket has an address")
            .port();
        let stalled = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicU64::new(0));
        let closed = Arc::new(AtomicBool::new(false));
        let (flag, count, done) = (stalled.clone(), connections.clone(), closed.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                count.fetch_add(1, Ordering::Relaxed);
                let flag = flag.clone();
                std::thread::spawn(move || serve(client, upstream, flag));
            }
        });
        StallProxy {
            port,
            stalled,
            connections,
            closed,
        }
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops (or resumes) answering.
    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

fn serve(mut client: TcpStream, upstream: u16, stalled: Arc<AtomicBool>) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(mut client_read), Ok(mut server_write)) = (client.try_clone(), server.try_clone())
    else {
        return;
    };
    let up_flag = stalled.clone();
    std::thread::spawn(move || pump(&mut client_read, &mut server_write, &up_flag));
    pump(&mut server, &mut client, &stalled);
}

/// Copies `from` to `to`; while stalled, reads and drops nothing, so the peer waits.
fn pump(from: &mut TcpStream, to: &mut TcpStream, stalled: &AtomicBool) {
    let mut buf = [0u8; 64 * 1024];
    loop {
        while stalled.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                while stalled.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
