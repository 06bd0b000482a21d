//! One instant across the three stores: every write paused for as long as it takes to
//! open a read snapshot of each, then released; the copying happens from the snapshots
//! while writes go on.
//!
//! Pausing takes, in this order: the R2 collector's hold (so no blob a snapshot names is
//! swept), the store catalog's write transaction (no D1 database is created or deleted),
//! R2's catalog write transaction (no object changes), `BEGIN IMMEDIATE` on a connection
//! of our own to each D1 database (a writer in the middle of a transaction finishes
//! first; later ones wait in SQLite's busy handler), and every Vectorize index's write
//! lock. No writer holds one of these and then waits for an earlier one, so the pause
//! cannot deadlock with them. The D1 side stays outside D1's own write path: SQLite's
//! file locks do the pausing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::vectorize::PinnedIndex;
use crate::Store;

/// How long a D1 lock waits for a writer's transaction to finish.
const D1_LOCK_WAIT: Duration = Duration::from_secs(30);

/// The three stores at one instant.
pub(super) struct Snapshot {
    /// The store catalog (D1 databases by name).
    pub catalog: redb::ReadTransaction,
    /// R2's catalog.
    pub r2: redb::ReadTransaction,
    /// Each D1 database: uuid, and a read-only connection inside a read transaction
    /// begun at the instant.
    pub d1: Vec<(String, Connection)>,
    /// Each index's files, held open.
    pub vectorize: Vec<PinnedIndex>,
    /// Keeps R2's collector from removing blobs until the copy is done.
    pub _blobs: crate::r2::BlobHold,
    /// How long writes were paused.
    pub pause: Duration,
}

/// Pauses every write, pins a snapshot of each store, and resumes.
pub(super) fn take(store: &Store) -> Result<Snapshot> {
    let blobs = store.r2().hold_blobs();
    let catalog_pause = store
        .catalog_file()
        .begin_write()
        .map_err(|e| catalog_error("catalog.redb", e))?;
    let started = Instant::now();
    let r2_pause = store.r2().pause_writes()?;
    let databases = store.d1().files()?;
    let mut d1_locks = Vec::with_capacity(databases.len());
    for (_, path) in &databases {
        d1_locks.push(lock_d1(path)?);
    }
    let (vectorize, (catalog, r2, d1)) = store.vectorize().while_frozen(|| {
        let catalog = store
            .catalog_file()
            .begin_read()
            .map_err(|e| catalog_error("catalog.redb", e))?;
        let r2 = store.r2().snapshot()?;
        let d1 = databases
            .iter()
            .map(|(uuid, path)| Ok((uuid.clone(), pin_d1(path)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok((catalog, r2, d1))
    })?;
    drop(d1_locks);
    // Neither was written to: aborting changes nothing.
    let _ = r2_pause.abort();
    let _ = catalog_pause.abort();
    Ok(Snapshot {
        catalog,
        r2,
        d1,
        vectorize,
        _blobs: blobs,
        pause: started.elapsed(),
    })
}

/// A connection holding the database's write lock until it is dropped (closing it
/// rolls the empty transaction back).
fn lock_d1(path: &PathBuf) -> Result<Connection> {
    let fail = |e: rusqlite::Error| Error::Backup {
        path: path.clone(),
        message: format!("could not pause this D1 database's writes: {e}"),
    };
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(fail)?;
    conn.busy_timeout(D1_LOCK_WAIT).map_err(fail)?;
    conn.execute_batch("BEGIN IMMEDIATE").map_err(fail)?;
    Ok(conn)
}

/// A read-only connection whose read transaction starts now: in WAL mode it sees the
/// database as of this instant for as long as it stays open.
fn pin_d1(path: &PathBuf) -> Result<Connection> {
    let fail = |e: rusqlite::Error| Error::Backup {
        path: path.clone(),
        message: format!("could not open a snapshot of this D1 database: {e}"),
    };
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(fail)?;
    conn.execute_batch("BEGIN").map_err(fail)?;
    // A read transaction begins at its first read.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(fail)?;
    Ok(conn)
}

fn catalog_error(file: &str, e: impl std::fmt::Display) -> Error {
    Error::Catalog {
        path: file.into(),
        message: e.to_string(),
    }
}
