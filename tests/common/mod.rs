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
