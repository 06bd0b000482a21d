//! JSON-to-value binding: any JSON either converts or is a D1_TYPE_ERROR, never a panic;
//! and what converts runs through a real statement and comes back as D1 returns it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tristore::d1::{D1Database, D1Limits, D1Value};

fn db() -> &'static D1Database {
    static DB: OnceLock<(tempfile_dir::Dir, D1Database)> = OnceLock::new();
    &DB.get_or_init(|| {
        let dir = tempfile_dir::Dir::new();
        let db = D1Database::open(dir.0.join("fuzz.sqlite"), D1Limits::default()).unwrap();
        (dir, db)
    })
    .1
}

mod tempfile_dir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!("tristore-fuzz-{}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    match D1Value::from_json(&value) {
        Err(e) => assert!(e
            .to_string()
            .starts_with("D1_TYPE_ERROR: Type 'object' not supported for value '")),
        Ok(v) => {
            let back = db()
                .prepare("SELECT ? AS v")
                .bind([v.clone()])
                .first_column("v");
            match back {
                Ok(Some(json)) => assert_eq!(json, v.to_json()),
                Ok(None) => panic!("SELECT ? returned no row"),
                // Values beyond D1's 2,000,000-byte limit are refused by SQLite.
                Err(e) => assert!(e.to_string().contains("SQLITE_TOOBIG"), "{e}"),
            }
        }
    }
});
