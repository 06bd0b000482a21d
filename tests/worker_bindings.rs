//! Real Miniflare against `tristore serve`'s remote-bindings route: a Worker
//! (tests/node/worker_bindings/worker.mjs) calls every method of env.VECTORIZE, env.DB and
//! env.BUCKET through workerd's own binding classes, under Miniflare 4.20260730.0 (one URL per
//! binding) and Miniflare 5.20261117.0-beta (one URL for every binding, resources in the query),
//! and driver.mjs checks what it saw against Cloudflare's documented behaviour. A third run is
//! the differential: the D1 and R2 suites against Miniflare's own local D1/R2 and against
//! tristore, every difference explained in driver.mjs's allow-list.
//!
//! The npm packages are pinned by tests/node/worker_bindings/package-lock.json and installed
//! once with `npm ci` into `target/tmp/worker-bindings` (a marker names the lock file's hash);
//! after that nothing needs the network. `TRISTORE_NODE` / `TRISTORE_NPM` pick the programs
//! (default `node`, `npm`). A missing Node or a failed install fails the tests. The Worker's
//! answers of the last run are kept in `target/tmp/worker-bindings/<mode>.json`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The API token the server is started with; the driver adds `?token=` to every URL.
const TOKEN: &str = "wb-secret";
/// How long one driver run may take before it is killed (a normal run takes seconds).
const DRIVER_TIMEOUT: Duration = Duration::from_secs(300);

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/worker_bindings")
}

fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("worker-bindings")
}

/// One run at a time: the runs share the npm install and two cores.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn program(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.into())
}

/// `npm ci` of the checked-in lock file into target/tmp/worker-bindings, once per lock file;
/// returns its node_modules.
fn install() -> PathBuf {
    let dir = work_dir();
    let lock =
        std::fs::read(suite_dir().join("package-lock.json")).expect("read package-lock.json");
    let manifest = std::fs::read(suite_dir().join("package.json")).expect("read package.json");
    let mut hasher = blake3::Hasher::new();
    hasher.update(&manifest).update(&lock);
    let marker = dir.join(format!("installed-{}", &hasher.finalize().to_hex()[..16]));
    let modules = dir.join("node_modules");
    if marker.exists() && modules.join("miniflare5/package.json").exists() {
        return modules;
    }
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("installed-")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    std::fs::write(dir.join("package.json"), &manifest).unwrap();
    std::fs::write(dir.join("package-lock.json"), &lock).unwrap();
    let node = program("TRISTORE_NODE", "node");
    let version = Command::new(&node)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!("Node.js is needed for the Miniflare tests and `{node} --version` failed: {e}")
        });
    assert!(version.status.success(), "`{node} --version` failed");
    let npm = program("TRISTORE_NPM", "npm");
    let out = Command::new(&npm)
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("`{npm} ci` could not start ({e}); npm is needed for the Miniflare tests")
        });
    assert!(
        out.status.success(),
        "`npm ci` of tests/node/worker_bindings/package-lock.json into {} failed (the npm registry must be reachable for the first run):\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        modules.join("miniflare/package.json").exists()
            && modules.join("miniflare5/package.json").exists(),
        "npm ci finished but miniflare / miniflare5 are missing from {}",
        modules.display()
    );
    std::fs::write(&marker, b"").unwrap();
    modules
}

/// `tristore serve --ephemeral` with the test's wrangler.jsonc, stopped with SIGTERM on drop.
struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT/cdn-cgi/tristore/remote-bindings` (without the token).
    remote_bindings: String,
    /// The temporary data directory `--ephemeral` announced.
    data_dir: Option<PathBuf>,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tristore"))
            .args([
                "serve",
                "--ephemeral",
                "--port",
                "0",
                "--s3-port",
                "0",
                "--api-token",
                TOKEN,
                "--config",
            ])
            .arg(suite_dir().join("wrangler.jsonc"))
            .env_remove("TRISTORE_DATA_DIR")
            .env_remove("TRISTORE_CONFIG")
            .env_remove("TRISTORE_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tristore serve");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let err_log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = err_log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let out_log = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("Remote bindings:") {
                    let url = rest.split_whitespace().next().unwrap_or("");
                    let url = url.split('?').next().unwrap_or("").to_string();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url);
                    }
                }
                let mut log = out_log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let remote_bindings = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tristore serve printed no 'Remote bindings:' line:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        assert!(
            remote_bindings.starts_with("http://")
                && remote_bindings.ends_with("/cdn-cgi/tristore/remote-bindings"),
            "unexpected remote-bindings URL {remote_bindings:?}"
        );
        let data_dir = log.lock().unwrap().lines().find_map(|l| {
            let rest = l.split(" serving ").nth(1)?;
            let (dir, tail) = rest.split_once(' ')?;
            tail.contains("temporary").then(|| PathBuf::from(dir))
        });
        Server {
            child,
            remote_bindings,
            data_dir,
            log,
        }
    }

    /// SIGTERM, then check that the server exited and removed its --ephemeral directory.
    fn stop(mut self) {
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "tristore serve did not stop within 20 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success() || status.code().is_none(),
            "tristore serve exited with {status} after SIGTERM"
        );
        let dir = self
            .data_dir
            .clone()
            .expect("--ephemeral names its temporary directory in the banner");
        assert!(
            !dir.exists(),
            "--ephemeral left {} behind after SIGTERM",
            dir.display()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return; // stopped already (and reaped: its pid must not be signalled again)
        }
        // SIGTERM lets --ephemeral remove its directory.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs driver.mjs in `mode` against a fresh server; panics with the driver's report (and the
/// server's log) unless every check passed.
fn run(mode: &str) {
    let _serial = serial();
    let modules = install();
    let server = Server::start();
    let node = program("TRISTORE_NODE", "node");
    let dump = work_dir().join(format!("{mode}.json"));
    let mut child = Command::new(&node)
        .arg(suite_dir().join("driver.mjs"))
        .args([mode, &server.remote_bindings, TOKEN])
        .arg(&dump)
        .env("WORKER_BINDINGS_MODULES", &modules)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("could not start `{node}` ({e}); Node.js is needed for the Miniflare tests")
        });
    let mut readers = Vec::new();
    for mut pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        readers.push(std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        }));
    }
    let deadline = Instant::now() + DRIVER_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output: Vec<String> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    // workerd logs a harmless warning per multipart handle; keep the report readable.
    let report: String = format!("{}{}", output[0], output[1])
        .lines()
        .filter(|l| !l.contains("NOSENTRY"))
        .map(|l| format!("{l}\n"))
        .collect();
    let passed = matches!(status, Some(s) if s.success()) && report.trim_end().ends_with("OK");
    if passed {
        println!("{report}");
    } else {
        // The server logs one INFO line per binding call; show what else it said.
        let log = server.log.lock().unwrap().clone();
        let tail: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains(" INFO "))
            .rev()
            .take(40)
            .collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "driver.mjs {mode} failed ({}):\n{report}\n--- tristore serve (last lines) ---\n{}",
            match status {
                None => format!("killed after {DRIVER_TIMEOUT:?}"),
                Some(s) => s.to_string(),
            },
            tail.join("\n")
        );
    }
    server.stop();
}

#[test]
fn miniflare4_worker_sees_cloudflare_behaviour() {
    run("mf4");
}

#[test]
fn miniflare5_worker_sees_cloudflare_behaviour_through_one_url() {
    run("mf5");
}

#[test]
fn miniflare_local_d1_and_r2_differ_only_where_explained() {
    run("diff");
}
