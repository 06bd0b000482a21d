//! # tristore
//!
//! Cloudflare's three storage services, implemented natively in one data directory:
//! **D1** (SQL on SQLite), **Vectorize** (persistent HNSW) and **R2** (content-addressed
//! objects), plus [`server`], the emulator that serves them over Cloudflare's HTTP APIs.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! use tristore::Store;
//!
//! let store = Store::open(dir.path())?;
//! store.d1().create("metacogna")?;
//! let db = store.d1().database("metacogna")?;
//! tristore::d1::migrations::apply(&db, &tristore::defaults::metacogna_migrations(), "d1_migrations")?;
//!
//! db.prepare("INSERT INTO users VALUES (?, ?, ?, ?)")
//!     .bind(["u1", "ann", "hash", "1700000000000"])
//!     .run()?;
//! let user = db.prepare("SELECT username FROM users WHERE id = ?").bind(["u1"]).first_column("username")?;
//! assert_eq!(user, Some("ann".into()));
//! # Ok(()) }
//! ```
//!
//! Module map: [`store`] owns the data directory and its catalog; [`d1`] is the SQL
//! store; [`r2`] the object store; [`vectorize`] the vector index; [`server`] the v4 REST
//! and S3 APIs; [`provision`] creates what a wrangler configuration binds, and
//! [`defaults`] what Metacogna's does.

pub mod backup;
mod catalog_file;
pub mod consistency;
pub mod d1;
pub mod defaults;
mod error;
mod fsutil;
mod fsync;
mod group_fate;
#[doc(hidden)]
pub mod power_loss;
pub mod provision;
pub mod r2;
pub mod server;
pub mod store;
pub mod transfer;
pub mod usage;
pub mod vectorize;

pub use error::{Error, Result};
pub use store::{
    DatabaseInfo, Store, StoreOptions, DEFAULT_OPEN_D1_DATABASES, DEFAULT_R2_INLINE_MAX_BYTES,
};
