//! `packages/tristore-miniflare-plugin`: wrangler's `getPlatformProxy({ environment:
//! "offline" })` with unsafe bindings that name the plugin gets workerd's real D1, Vectorize
//! and R2 bindings, and their calls land in this build's `tristore serve`. Once under
//! Miniflare 4 (wrangler 4.116.0) and once under Miniflare 5 (wrangler 4.164.0), whose
//! plugin interfaces differ.
//!
//! `packages/tristore-miniflare-plugin/test/platform-proxy.mjs` makes the calls and checks
//! the answers (and the same data over tristore's REST API); this test then stops the
//! server and finds what the script left in the store's files. The harnesses
//! (`test/mf4`, `test/mf5`) are installed once into `target/tmp/miniflare-plugin-*` from
//! their lock files; the plugin itself is copied into their `node_modules` each run, as npm
//! installs a package. The run is offline where the machine allows a network namespace.

#[path = "support/node_project.rs"]
mod node_project;

use std::fs;
use std::process::Command;

use node_project::{copy_tree, go_offline, node, npm_ci, repo, report, Tristore};

fn plugin_serves_the_three_bindings(harness: &str) {
    let plugin = repo().join("packages/tristore-miniflare-plugin");
    let dir = npm_ci(
        &plugin.join("test").join(harness),
        &format!("miniflare-plugin-{harness}"),
    );
    let installed = dir.join("node_modules/tristore-miniflare-plugin");
    let _ = fs::remove_dir_all(&installed);
    copy_tree(&plugin, &installed, &["test", "node_modules"]);
    fs::copy(
        plugin.join("test/platform-proxy.mjs"),
        dir.join("platform-proxy.mjs"),
    )
    .unwrap();

    let offline = go_offline();
    let data = tempfile::tempdir().unwrap();
    let tristore = Tristore::start(&["--data-dir", data.path().to_str().unwrap()]);
    let started = std::time::Instant::now();
    let out = Command::new("timeout")
        .arg("300")
        .arg(node())
        .arg("platform-proxy.mjs")
        .current_dir(&dir)
        .env("TRISTORE_URL", &tristore.origin)
        .env("NO_COLOR", "1")
        .env("WRANGLER_SEND_METRICS", "false")
        .output()
        .expect("run node");
    let output = report(&out);
    println!(
        "{output}\n{harness}: {:.1} s (offline: {offline})",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout)
                .trim_end()
                .ends_with("OK"),
        "platform-proxy.mjs under {harness} failed ({:?}):\n{output}",
        out.status
    );
    tristore.stop();

    // What the Worker's bindings wrote is in tristore's own files.
    let store = tristore::Store::open(data.path()).unwrap();
    let db = store.d1().database("metacogna").unwrap();
    assert_eq!(
        db.prepare("SELECT typeof(createdAt) AS t FROM documents WHERE id = 'plugin-doc'")
            .first_column("t")
            .unwrap(),
        Some(serde_json::json!("integer"))
    );
    let vectors = store
        .vectorize()
        .index("metacogna-index")
        .unwrap()
        .get_by_ids(&["plugin-vec"])
        .unwrap();
    assert_eq!(vectors.len(), 1);
    assert_eq!(vectors[0].values[7], 1.0);
    let bucket = store.r2().bucket("metacogna-vault").unwrap();
    let object = bucket
        .get("plugin/hello.txt", &Default::default())
        .unwrap()
        .expect("plugin/hello.txt in the bucket");
    assert_eq!(object.bytes().unwrap(), b"hello from the plugin");
    assert!(bucket.head("plugin/gone.txt").unwrap().is_none());
}

#[test]
fn miniflare4_plugin_serves_d1_vectorize_and_r2_from_tristore() {
    plugin_serves_the_three_bindings("mf4");
}

#[test]
fn miniflare5_plugin_serves_d1_vectorize_and_r2_from_tristore() {
    plugin_serves_the_three_bindings("mf5");
}
