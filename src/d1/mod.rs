//! D1: SQL databases with the Worker binding's semantics, on SQLite.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! use tristore::d1::{D1Database, D1Limits};
//!
//! let db = D1Database::open(dir.path().join("app.sqlite"), D1Limits::default())?;
//! db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")?;
//! let insert = db.prepare("INSERT INTO users (name) VALUES (?)");
//! db.batch(&[insert.bind(["ann"]), insert.bind(["bob"])])?;
//!
//! let bob = db.prepare("SELECT * FROM users WHERE name = ?1").bind(["bob"]).first()?;
//! assert_eq!(bob.unwrap()["id"], 2);
//! let count = db.prepare("SELECT count(*) AS n FROM users").first_column("n")?;
//! assert_eq!(count, Some(2.into()));
//! # Ok(()) }
//! ```

mod bookmark;
mod connection;
mod database;
pub mod dump;
mod error;
mod group_commit;
mod history;
mod interrupt;
mod limits;
pub mod migrations;
mod open_databases;
mod policy;
mod result;
pub mod sql_text;
mod statement;
mod time_travel;
mod value;

pub use bookmark::{parse_timestamp, TimeTravelError};

/// Entry points for the fuzz targets (`fuzz/`). Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    /// The point a bookmark names in the database `tag`, if it is one.
    pub fn parse_bookmark(bookmark: &str, tag: &str) -> Option<u64> {
        super::bookmark::parse(bookmark, tag).ok()
    }

    /// The bookmark of the point `at` in the database `tag`.
    pub fn format_bookmark(at: u64, tag: &str) -> String {
        super::bookmark::format(at, tag)
    }
}
pub use database::D1Database;
pub use error::{D1Error, SqlError};
pub(crate) use history::{copy_database, history_dir};
pub use interrupt::{Interrupt, InterruptOnDrop};
pub use limits::D1Limits;
pub(crate) use open_databases::OpenDatabases;
pub use result::{D1ExecResult, D1Meta, D1Result, D1Row, D1Timings};
pub use statement::D1PreparedStatement;
pub use time_travel::Restored;
pub use value::D1Value;
