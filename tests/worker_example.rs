//! `examples/worker-vitest`: a Metacogna-shaped Worker whose real `env.DB`,
//! `env.VECTOR_INDEX` and `env.metacogna_vault` bindings are served by tristore.
//!
//! - Its vitest suite (`@cloudflare/vitest-pool-workers`): the `globalSetup` starts this
//!   build's `tristore serve --ephemeral` (`TRISTORE_BIN`), and the tests drive the upload
//!   → ingest → chat flows through Miniflare's remote-bindings proxy and tristore's S3 API.
//! - `wrangler dev --env offline`: the same Worker, its bindings built by
//!   `packages/tristore-miniflare-plugin`, driven over HTTP by `scripts/smoke.mjs`; what it
//!   wrote is then read from the store's files.
//!
//! The example's npm packages are installed once into `target/tmp/worker-vitest` from its
//! `package-lock.json` (again when the lock changes); the plugin is copied into its
//! `node_modules` as npm would install it. The runs are offline: each happens in a network
//! namespace with only loopback where the machine allows one. `TRISTORE_NODE` /
//! `TRISTORE_NPM` pick the interpreter and the package manager.

#[path = "support/node_project.rs"]
mod node_project;

use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use node_project::{copy_tree, free_port, go_offline, node, npm_ci, repo, report, Tristore};

/// The installed example, set up by the first test that needs it. Its guard is held for
/// a whole test: both tests run in the same directory.
static PROJECT: Mutex<Option<PathBuf>> = Mutex::new(None);

fn project() -> (MutexGuard<'static, Option<PathBuf>>, PathBuf) {
    let mut guard = PROJECT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = guard.clone() {
        return (guard, dir);
    }
    let example = repo().join("examples/worker-vitest");
    // The example carries its own copy of the migrations, so that it can be copied out of
    // the repository; it must stay the repository's schema.
    for entry in fs::read_dir(repo().join("db/migrations")).unwrap() {
        let entry = entry.unwrap();
        let copy = example.join("migrations").join(entry.file_name());
        assert_eq!(
            fs::read_to_string(&copy).unwrap_or_default(),
            fs::read_to_string(entry.path()).unwrap(),
            "{} differs from db/migrations: copy it over",
            copy.display()
        );
    }
    let dir = npm_ci(&example, "worker-vitest");
    // The sources, fresh every run (the installed node_modules stays).
    for stale in ["src", "test", "scripts", "migrations", ".wrangler"] {
        let _ = fs::remove_dir_all(dir.join(stale));
    }
    copy_tree(
        &example,
        &dir,
        &[
            "node_modules",
            ".wrangler",
            "package.json",
            "package-lock.json",
        ],
    );
    let plugin = dir.join("node_modules/tristore-miniflare-plugin");
    let _ = fs::remove_dir_all(&plugin);
    copy_tree(
        &repo().join("packages/tristore-miniflare-plugin"),
        &plugin,
        &["test", "node_modules"],
    );
    *guard = Some(dir.clone());
    (guard, dir)
}

#[test]
fn worker_vitest_example_passes_against_tristore() {
    let (_serial, dir) = project();
    let specs = fs::read_dir(dir.join("test"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".spec.ts")
        })
        .count();
    assert!(specs >= 3, "only {specs} spec files");

    let offline = go_offline();
    let log = dir.join(".tristore-test.log");
    let started = Instant::now();
    let out = Command::new("timeout")
        .arg("600")
        .arg(node())
        .args(["node_modules/vitest/vitest.mjs", "run"])
        .current_dir(&dir)
        .env("TRISTORE_BIN", env!("CARGO_BIN_EXE_tristore"))
        .env("TRISTORE_LOG", &log)
        .env("CI", "1")
        .env("NO_COLOR", "1")
        .env("WRANGLER_SEND_METRICS", "false")
        .output()
        .expect("run vitest");
    let output = report(&out);
    println!(
        "{output}\nvitest run: {:.1} s (offline: {offline})",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "vitest failed ({:?}):\n{output}\n--- tristore's output ({}):\n{}",
        out.status,
        log.display(),
        fs::read_to_string(&log).unwrap_or_default()
    );
    let summary = |label: &str| {
        output
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no `{label}` line in vitest's output:\n{output}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        summary("Test Files"),
        format!("Test Files {specs} passed ({specs})"),
        "{output}"
    );
    let tests = summary("Tests ");
    assert!(
        tests.contains(" passed") && !tests.contains("failed") && !tests.contains("skipped"),
        "{tests}"
    );
}

#[test]
fn wrangler_dev_offline_env_serves_the_example_through_the_plugin() {
    let (_serial, dir) = project();
    let offline = go_offline();
    let data = tempfile::tempdir().unwrap();
    let config = dir.join("wrangler.jsonc");
    let tristore = Tristore::start(&[
        "--data-dir",
        data.path().to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);

    // wrangler 4.116.0's `bin` refuses Node.js 20; its CLI itself runs there
    let port = free_port();
    let mut wrangler = Command::new(node())
        .arg("node_modules/wrangler/wrangler-dist/cli.js")
        .args(["dev", "--env", "offline", "--ip", "127.0.0.1"])
        .args(["--port", &port.to_string()])
        .args(["--inspector-port", &free_port().to_string()])
        .args(["--var", &format!("S3_ENDPOINT:{}", tristore.s3)])
        .current_dir(&dir)
        // overrides the plugin options' url (the default port) with this server's
        .env("TRISTORE_URL", &tristore.origin)
        .env("CI", "1")
        .env("NO_COLOR", "1")
        .env("WRANGLER_SEND_METRICS", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // its own process group, so that workerd goes with it
        .process_group(0)
        .spawn()
        .expect("start wrangler dev");
    let log = Arc::new(Mutex::new(String::new()));
    let (ready_tx, ready) = mpsc::channel();
    for mut stream in [
        Box::new(wrangler.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(wrangler.stderr.take().unwrap()),
    ] {
        let (log, ready_tx) = (log.clone(), ready_tx.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut log = log.lock().unwrap();
                log.push_str(&String::from_utf8_lossy(&buf[..n]));
                if log.contains("Ready on http") {
                    let _ = ready_tx.send(());
                }
            }
        });
    }
    let stop_wrangler = |wrangler: &mut std::process::Child| {
        // SAFETY: signals the process group of our own child.
        unsafe { libc::kill(-(wrangler.id() as i32), libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while wrangler.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: as above; whatever of the group is left.
        unsafe { libc::kill(-(wrangler.id() as i32), libc::SIGKILL) };
        let _ = wrangler.wait();
    };
    let started = Instant::now();
    if ready.recv_timeout(Duration::from_secs(120)).is_err() {
        stop_wrangler(&mut wrangler);
        panic!("wrangler dev did not get ready:\n{}", log.lock().unwrap());
    }
    let out = Command::new("timeout")
        .arg("120")
        .arg(node())
        .arg("scripts/smoke.mjs")
        .arg(format!("http://127.0.0.1:{port}"))
        .current_dir(&dir)
        .output()
        .expect("run scripts/smoke.mjs");
    stop_wrangler(&mut wrangler);
    let wrangler_log = log.lock().unwrap().clone();
    println!(
        "{wrangler_log}\n{}\nwrangler dev + smoke: {:.1} s (offline: {offline})",
        report(&out),
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim_end().ends_with("OK"),
        "scripts/smoke.mjs against wrangler dev --env offline failed:\n{}\n--- wrangler:\n{wrangler_log}",
        report(&out)
    );
    // wrangler listed the three bindings as the plugin's
    for binding in [
        "env.DB (d1)",
        "env.VECTOR_INDEX (vectorize)",
        "env.metacogna_vault (r2)",
    ] {
        assert!(
            wrangler_log
                .lines()
                .any(|l| l.starts_with(binding) && l.contains("tristore")),
            "no `{binding} … tristore` line:\n{wrangler_log}"
        );
    }
    tristore.stop();

    // The flow's writes are in tristore's files: D1 row, vector, R2 object.
    let store = tristore::Store::open(data.path()).unwrap();
    let db = store.d1().database("metacogna").unwrap();
    assert_eq!(
        db.prepare("SELECT r2Key FROM documents WHERE id = 'doc-smoke'")
            .first_column("r2Key")
            .unwrap(),
        Some(serde_json::json!("smoke/doc-smoke/greenhouse.md"))
    );
    assert_eq!(
        db.prepare("SELECT count(*) AS n FROM chat_messages")
            .first_column("n")
            .unwrap(),
        Some(serde_json::json!(2))
    );
    let vectors = store
        .vectorize()
        .index("metacogna-index")
        .unwrap()
        .get_by_ids(&["doc-smoke-chunk-0"])
        .unwrap();
    assert_eq!(vectors.len(), 1);
    assert_eq!(vectors[0].values.len(), 768);
    let object = store
        .r2()
        .bucket("metacogna-vault")
        .unwrap()
        .get("smoke/doc-smoke/greenhouse.md", &Default::default())
        .unwrap()
        .expect("the uploaded object");
    assert!(String::from_utf8(object.bytes().unwrap())
        .unwrap()
        .starts_with("# Greenhouse notes"));
}
