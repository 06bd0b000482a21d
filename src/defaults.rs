//! The embedded default: Metacogna's storage (`shared/seed/storage-architecture.md`).

use crate::d1::migrations::{self, Migration};
use crate::error::{Error, Result};
use crate::Store;

/// The D1 database Metacogna binds as `DB`.
pub const METACOGNA_DATABASE: &str = "metacogna";

/// `db/migrations/`, compiled into the binary.
pub fn metacogna_migrations() -> Vec<Migration> {
    vec![Migration {
        name: "0001_initial.sql".into(),
        sql: include_str!("../db/migrations/0001_initial.sql").into(),
    }]
}

/// What [`provision_metacogna`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// Whether the database was created now.
    pub created: bool,
    /// Migrations applied now.
    pub applied: Vec<String>,
}

/// Creates the `metacogna` database if it is missing and applies the embedded
/// migrations it lacks. Safe to call on every start.
pub fn provision_metacogna(store: &Store) -> Result<Provisioned> {
    let created = match store.d1().create(METACOGNA_DATABASE) {
        Ok(_) => true,
        Err(Error::AlreadyExists { .. }) => false,
        Err(e) => return Err(e),
    };
    let db = store.d1().database(METACOGNA_DATABASE)?;
    let applied = migrations::apply(&db, &metacogna_migrations(), migrations::DEFAULT_TABLE)?;
    Ok(Provisioned { created, applied })
}
