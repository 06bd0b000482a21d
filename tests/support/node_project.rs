//! Node.js projects for the tests that run JavaScript tooling (vitest, wrangler, Miniflare)
//! against tristore: installed once from a committed `package-lock.json`, run offline.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `node`, or `$TRISTORE_NODE`.
pub fn node() -> String {
    std::env::var("TRISTORE_NODE").unwrap_or_else(|_| "node".into())
}

/// `npm`, or `$TRISTORE_NPM`.
pub fn npm() -> String {
    std::env::var("TRISTORE_NPM").unwrap_or_else(|_| "npm".into())
}

/// `target/tmp/<name>` with `npm ci` done from `src`'s `package.json` and
/// `package-lock.json`. The install runs once per lock: a marker file named after the
/// BLAKE3 hash of both files records it (so an edited lock reinstalls). Node.js and npm
/// must be there and the npm registry reachable for that first install: otherwise this
/// panics, and the test fails rather than skips.
pub fn npm_ci(src: &Path, name: &str) -> PathBuf {
    let manifest = fs::read(src.join("package.json")).expect("package.json");
    let lock = fs::read(src.join("package-lock.json")).expect("package-lock.json");
    let mut hasher = blake3::Hasher::new();
    hasher.update(&manifest);
    hasher.update(b"\0");
    hasher.update(&lock);
    let hash = hasher.finalize().to_hex();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let marker = dir.join(format!(".installed-{}", &hash[..16]));
    if marker.exists() {
        return dir;
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap();
    }
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("package.json"), &manifest).unwrap();
    fs::write(dir.join("package-lock.json"), &lock).unwrap();
    let started = std::time::Instant::now();
    let out = Command::new(npm())
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): these tests need Node.js 20+ and npm",
                npm()
            )
        });
    assert!(
        out.status.success(),
        "npm ci for {} failed (the npm registry must be reachable for the first run):\n{}",
        src.display(),
        report(&out)
    );
    println!(
        "npm ci for {} took {:.1} s",
        src.display(),
        started.elapsed().as_secs_f64()
    );
    fs::write(&marker, b"").unwrap();
    dir
}

/// Copies `src` into `dst` recursively, leaving out the entries named in `skip`.
pub fn copy_tree(src: &Path, dst: &Path, skip: &[&str]) {
    fs::create_dir_all(dst).unwrap();
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let to = dst.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to, skip);
        } else {
            fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// Standard output then standard error, as text.
pub fn report(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Moves the calling thread, and so every process it starts from now on, into a new
/// network namespace with only loopback up: no DNS, no Cloudflare, no registry. Returns
/// false (and changes nothing) where the machine does not allow it (no CAP_SYS_ADMIN, no
/// `ip`).
///
/// Network namespaces belong to threads, and each test runs on its own thread, so
/// this isolates the calling test only.
pub fn go_offline() -> bool {
    use std::os::fd::AsRawFd;
    let Ok(previous) = fs::File::open("/proc/thread-self/ns/net") else {
        println!("note: no /proc/thread-self/ns/net; running with the network");
        return false;
    };
    // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        println!(
            "note: cannot make a network namespace ({}); running with the network",
            std::io::Error::last_os_error()
        );
        return false;
    }
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !up {
        // SAFETY: returns this thread to the namespace it was in.
        let back = unsafe { libc::setns(previous.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(back, 0, "cannot return to the original network namespace");
        println!("note: `ip link set lo up` failed; running with the network");
        return false;
    }
    true
}

/// A running `tristore serve` started with `args` (plus `--port 0 --s3-port 0`), its
/// banner read.
pub struct Tristore {
    child: Child,
    /// Everything printed up to and including the `Remote bindings:` line.
    pub banner: String,
    /// `http://127.0.0.1:PORT`, the REST port's origin.
    pub origin: String,
    /// `http://127.0.0.1:PORT`, the S3 API.
    pub s3: String,
}

impl Tristore {
    pub fn start(args: &[&str]) -> Tristore {
        Tristore::spawn(args, Stdio::null())
    }

    /// [`Tristore::start`], its log (standard error) written to `log`.
    pub fn start_logging(args: &[&str], log: &Path) -> Tristore {
        Tristore::spawn(args, fs::File::create(log).unwrap().into())
    }

    fn spawn(args: &[&str], stderr: Stdio) -> Tristore {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tristore"))
            .arg("serve")
            .args(args)
            .args(["--port", "0", "--s3-port", "0"])
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start tristore serve");
        let mut banner = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap() > 0 {
            banner.push_str(&line);
            if line.starts_with("Remote bindings:") {
                break;
            }
            line.clear();
        }
        // keep draining: a closed pipe would make its next line fail
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let origin = banner
            .lines()
            .find_map(|l| l.strip_prefix("Cloudflare API: "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|url| url.strip_suffix("/client/v4"))
            .unwrap_or_else(|| panic!("no `Cloudflare API:` line in the banner:\n{banner}"))
            .to_string();
        let s3 = banner
            .lines()
            .find_map(|l| l.strip_prefix("R2 S3 API:"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no `R2 S3 API:` line in the banner:\n{banner}"))
            .to_string();
        assert!(
            banner.contains(&format!(
                "Remote bindings: {origin}/cdn-cgi/tristore/remote-bindings"
            )),
            "{banner}"
        );
        Tristore {
            child,
            banner,
            origin,
            s3,
        }
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop(mut self) {
        // SAFETY: signals our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "tristore exited with {status:?}");
    }
}

impl Drop for Tristore {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
