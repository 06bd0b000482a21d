//! The commands that check and move data: `tristore fsck` across the stores (each kind
//! of broken link between Metacogna's documents in D1, their files in R2 and their
//! chunks' vectors in Vectorize, made on purpose, is named with its ids; `--repair`
//! removes the orphans and nothing else), and `tristore vectorize export / import`.

use std::process::Command;

use serde_json::json;
use tristore::consistency::{check, Links, Problem};
use tristore::r2::R2PutOptions;
use tristore::vectorize::VectorizeVector;
use tristore::Store;

/// A document with a file and `chunks` vectors, as Metacogna's upload flow leaves it.
fn document(store: &Store, id: &str, chunks: u64) {
    let key = format!("user-1/{id}/file.pdf");
    store
        .d1()
        .database("metacogna")
        .unwrap()
        .prepare("INSERT INTO documents (id, title, r2Key, createdAt) VALUES (?, ?, ?, 0)")
        .bind([id, "title", key.as_str()])
        .run()
        .unwrap();
    let bucket = store.r2().bucket("metacogna-vault").unwrap();
    bucket
        .put(&key, b"%PDF-1.7".as_slice(), &R2PutOptions::default())
        .unwrap();
    let vectors: Vec<VectorizeVector> = (0..chunks)
        .map(|i| vector(&format!("{id}-chunk-{i}"), Some(id), i))
        .collect();
    if !vectors.is_empty() {
        let index = store.vectorize().index("metacogna-index").unwrap();
        index.upsert(&vectors).unwrap();
    }
}

fn vector(id: &str, doc: Option<&str>, chunk: u64) -> VectorizeVector {
    let mut v = VectorizeVector::new(id.to_owned(), vec![0.5; 768]);
    let mut metadata = serde_json::Map::new();
    if let Some(doc) = doc {
        metadata.insert("docId".into(), json!(doc));
    }
    metadata.insert("chunkIndex".into(), json!(chunk));
    v.metadata = Some(metadata);
    v
}

fn fsck(dir: &std::path::Path, repair: bool) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tristore"));
    command.args(["fsck", "--data-dir"]).arg(dir);
    if repair {
        command.arg("--repair");
    }
    let out = command.output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn every_broken_link_is_named_and_repair_removes_only_orphans() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        tristore::defaults::provision_metacogna(&store).unwrap();
        document(&store, "doc-ok", 2);
        let healthy = check(&store, &Links::default()).unwrap();
        assert_eq!(healthy.problems, []);
        assert_eq!(
            (healthy.documents, healthy.vectors, healthy.objects),
            (1, 2, 1)
        );

        // A deleted object, a lost vector, a document never embedded, a vector and an
        // object nothing points to.
        document(&store, "doc-no-file", 1);
        let bucket = store.r2().bucket("metacogna-vault").unwrap();
        bucket.delete(&["user-1/doc-no-file/file.pdf"]).unwrap();
        document(&store, "doc-lost-chunk", 3);
        let index = store.vectorize().index("metacogna-index").unwrap();
        index.delete_by_ids(&["doc-lost-chunk-chunk-1"]).unwrap();
        document(&store, "doc-no-vectors", 0);
        index
            .upsert(&[vector("stray-chunk-0", Some("doc-gone"), 0)])
            .unwrap();
        index.upsert(&[vector("untagged", None, 0)]).unwrap();
        bucket
            .put(
                "user-1/doc-gone/file.pdf",
                b"x".as_slice(),
                &R2PutOptions::default(),
            )
            .unwrap();

        let report = check(&store, &Links::default()).unwrap();
        let mut expected = vec![
            Problem::MissingObject {
                document: "doc-no-file".into(),
                r2_key: "user-1/doc-no-file/file.pdf".into(),
            },
            Problem::MissingChunk {
                document: "doc-lost-chunk".into(),
                chunk_index: 1,
            },
            Problem::DocumentWithoutVectors {
                document: "doc-no-vectors".into(),
            },
            Problem::OrphanVector {
                vector: "stray-chunk-0".into(),
                doc_id: Some("doc-gone".into()),
            },
            Problem::OrphanVector {
                vector: "untagged".into(),
                doc_id: None,
            },
            Problem::OrphanObject {
                key: "user-1/doc-gone/file.pdf".into(),
            },
        ];
        expected.sort();
        assert_eq!(report.problems, expected);
    }

    let (ok, out) = fsck(dir.path(), false);
    assert!(!ok, "{out}");
    for id in [
        "doc-no-file",
        "doc-lost-chunk-chunk-1",
        "doc-no-vectors",
        "stray-chunk-0",
        "untagged",
        "user-1/doc-gone/file.pdf",
    ] {
        assert!(out.contains(id), "fsck does not name {id}:\n{out}");
    }
    assert!(out.contains("6 problems found"), "{out}");

    let (ok, out) = fsck(dir.path(), true);
    assert!(!ok, "what is missing cannot be repaired:\n{out}");
    assert_eq!(out.matches("removing: ").count(), 3, "{out}");
    assert!(out.contains("removed 2 vectors and 1 objects"), "{out}");

    let store = Store::open(dir.path()).unwrap();
    let after = check(&store, &Links::default()).unwrap();
    assert!(after.problems.iter().all(|p| !p.is_orphan()), "{after:?}");
    assert_eq!(after.problems.len(), 3);
    // The healthy document kept its file and its vectors.
    assert_eq!(after.vectors, 2 + 1 + 2);
    assert!(store
        .r2()
        .bucket("metacogna-vault")
        .unwrap()
        .head("user-1/doc-ok/file.pdf")
        .unwrap()
        .is_some());
}

#[test]
fn vectorize_export_then_import_copies_an_index() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        tristore::defaults::provision_metacogna(&store).unwrap();
        document(&store, "doc-1", 3);
        let config = store.vectorize().get("metacogna-index").unwrap().config;
        store.vectorize().create("copy", "", config).unwrap();
    }
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tristore"))
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    };
    let file = dir.path().join("vectors.ndjson");
    let said = run(&[
        "vectorize",
        "export",
        "metacogna-index",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(said.contains("exported 3 vectors"), "{said}");
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 3);
    let said = run(&["vectorize", "import", "copy", file.to_str().unwrap()]);
    assert!(said.contains("imported 3 vectors"), "{said}");
    let store = Store::open(dir.path()).unwrap();
    let ids = ["doc-1-chunk-0", "doc-1-chunk-1", "doc-1-chunk-2"];
    let copy = store
        .vectorize()
        .index("copy")
        .unwrap()
        .get_by_ids(&ids)
        .unwrap();
    let original = store
        .vectorize()
        .index("metacogna-index")
        .unwrap()
        .get_by_ids(&ids)
        .unwrap();
    assert_eq!(copy, original);
}

/// A command run on a data directory that a process holds (a running `tristore serve`,
/// here this test) says so and what to do, rather than passing on redb's lock error.
#[test]
fn a_command_on_a_directory_another_process_holds_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (ok, output) = fsck(dir.path(), false);
    assert!(!ok, "{output}");
    assert!(
        output.contains("is already open, by another process")
            && output.contains("server.json")
            && output.contains("stop the other"),
        "{output}"
    );
    drop(store);
    let (ok, output) = fsck(dir.path(), false);
    assert!(ok, "once the holder is gone the command runs: {output}");
}
