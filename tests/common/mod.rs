//! Helpers shared by the integration tests.
#![allow(dead_code)]

use tristore::d1::{D1Database, D1Limits};

/// A fresh database in a temporary directory (kept alive by the returned guard).
pub fn fresh_db(limits: D1Limits) -> (tempfile::TempDir, D1Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = D1Database::open(dir.path().join("test.sqlite"), limits).unwrap();
    (dir, db)
}

pub fn db() -> (tempfile::TempDir, D1Database) {
    fresh_db(D1Limits::default())
}

/// The error text of a failing call.
pub fn err<T: std::fmt::Debug>(r: Result<T, tristore::d1::D1Error>) -> String {
    r.unwrap_err().to_string()
}

/// Runs the ignored test `child_test` of this same test binary as a child process with
/// `env` set, waits, from `earliest` on, for it to print a line containing `marker`, then
/// for `delay`, kills it with SIGKILL (a kill inside the work the line announces; waiting
/// for the line, not a fixed time, keeps a slow start on a loaded machine from being
/// killed before it has done anything), and returns the lines it printed to standard
/// output before dying (each line is flushed as it is printed). Gives up waiting, and
/// kills, after a minute.
///
/// Panics, showing the child's standard error, unless the child died of that SIGKILL:
/// a child that panicked, exited, or never ran its test (a misspelt name runs nothing
/// and exits 0) fails the calling test instead of counting as killed.
pub fn run_and_kill_child_at(
    child_test: &str,
    env: &[(&str, String)],
    earliest: std::time::Duration,
    marker: &str,
    delay: std::time::Duration,
) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            child_test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints `test NAME ... ` without a newline before the test runs:
            // the child's first line follows it on the same line.
            let line = match line.split_once(" ... ") {
                Some((head, rest)) if head.starts_with("test ") => rest.to_owned(),
                _ => line,
            };
            let _ = send.send(line);
        }
    });
    // Standard error is drained as the child runs (a full pipe would stall it) and kept
    // for the message should the child die otherwise than by the kill.
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });
    let started = Instant::now();
    let mut printed = Vec::new();
    let give_up = started + earliest + Duration::from_secs(60);
    while let Ok(line) = lines.recv_timeout(give_up.saturating_duration_since(Instant::now())) {
        let seen = started.elapsed() >= earliest && line.contains(marker);
        printed.push(line);
        if seen {
            std::thread::sleep(delay);
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix; a no-op if the child has already exited
    let status = child.wait().unwrap();
    // The channel closes once the reader has seen the end of the dead child's output.
    printed.extend(lines);
    let stderr = stderr.join().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "the child {child_test} was not killed by SIGKILL but ended with {status}\n\
         --- its standard output (last 20 lines) ---\n{}\n--- its standard error ---\n{stderr}",
        printed[printed.len().saturating_sub(20)..].join("\n")
    );
    printed
}

/// Fails the test unless a round's child acknowledged at least `min` writes.
pub fn assert_round_acked(round: usize, acked: usize, min: usize, lines: &[String]) {
    println!("round {round}: {acked} acknowledged");
    assert!(
        acked >= min,
        "round {round}: the child acknowledged {acked} writes, fewer than {min}; \
         its last lines: {:?}",
        &lines[lines.len().saturating_sub(10)..]
    );
}

/// A small pseudo-random generator for kill times: different each run, no dependency.
pub struct KillClock(u64);

impl KillClock {
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        KillClock(u64::from(std::process::id()) ^ u64::from(nanos))
    }

    /// A duration between `min_ms` and `min_ms + spread_ms`.
    pub fn next(&mut self, min_ms: u64, spread_ms: u64) -> std::time::Duration {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::time::Duration::from_millis(min_ms + (self.0 >> 33) % spread_ms)
    }
}

/// The value of the line of a `/metrics` scrape that starts with `series` (the metric's
/// name and labels, as the server writes them).
pub fn metric(scrape: &str, series: &str) -> u64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{scrape}"))
        .parse()
        .unwrap()
}

/// Moves this process into a mount namespace of its own with a tmpfs of `bytes` at `dir`.
pub fn private_tmpfs(dir: &std::path::Path, bytes: u64) {
    let c = |s: &str| std::ffi::CString::new(s).unwrap();
    let (none, root, tmpfs) = (c("none"), c("/"), c("tmpfs"));
    let target = c(dir.to_str().unwrap());
    let size = c(&format!("size={bytes}"));
    // SAFETY: plain system calls with valid NUL-terminated strings; they only change
    // this child process's mount namespace.
    unsafe {
        assert_eq!(
            libc::unshare(libc::CLONE_NEWNS),
            0,
            "a mount namespace is needed (unshare: {}): run the tests as root or with CAP_SYS_ADMIN",
            std::io::Error::last_os_error()
        );
        let private = libc::MS_REC | libc::MS_PRIVATE;
        assert_eq!(
            libc::mount(
                none.as_ptr(),
                root.as_ptr(),
                std::ptr::null(),
                private,
                std::ptr::null()
            ),
            0
        );
        let mounted = libc::mount(
            tmpfs.as_ptr(),
            target.as_ptr(),
            tmpfs.as_ptr(),
            0,
            size.as_ptr().cast(),
        );
        assert_eq!(
            mounted,
            0,
            "mount tmpfs: {}",
            std::io::Error::last_os_error()
        );
    }
}
