//! A redb database that survives a failed write.
//!
//! After an I/O error in a commit (a full disk, say), redb refuses every later
//! transaction with "Previous I/O error occurred. Please close and re-open the
//! database." The catalogs are opened once per process, so without help a store would
//! stay broken after the disk is freed until tristore restarts. `CatalogFile` reopens
//! the file the next time a transaction is begun; redb's own recovery on open makes it
//! consistent (the failed commit never happened).

// The methods mirror redb's own, whose error type is large; callers map it as before.
#![allow(clippy::result_large_err)]

use std::path::Path;
use std::sync::{Arc, RwLock};

use redb::{
    Database, DatabaseError, ReadTransaction, StorageError, TransactionError, WriteTransaction,
};

/// One catalog file; `begin_read` / `begin_write` as on [`redb::Database`].
pub(crate) struct CatalogFile {
    /// The file, for messages.
    name: String,
    /// Opens the database (again).
    open: Box<dyn Fn() -> Result<Database, DatabaseError> + Send + Sync>,
    /// `None` only between dropping a failed database and opening it again.
    db: RwLock<Option<Arc<Database>>>,
}

impl CatalogFile {
    /// Opens (creating if needed) the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<CatalogFile, DatabaseError> {
        let owned = path.to_owned();
        CatalogFile::with(path.display().to_string(), move || {
            Database::builder().create_with_backend(crate::power_loss::RecordedFile::open(&owned)?)
        })
    }

    fn with(
        name: String,
        open: impl Fn() -> Result<Database, DatabaseError> + Send + Sync + 'static,
    ) -> Result<CatalogFile, DatabaseError> {
        let db = open()?;
        Ok(CatalogFile {
            name,
            open: Box::new(open),
            db: RwLock::new(Some(Arc::new(db))),
        })
    }

    /// A read transaction.
    pub(crate) fn begin_read(&self) -> Result<ReadTransaction, TransactionError> {
        self.retry(|db| db.begin_read())
    }

    /// A write transaction.
    pub(crate) fn begin_write(&self) -> Result<WriteTransaction, TransactionError> {
        self.retry(|db| db.begin_write())
    }

    fn retry<T>(
        &self,
        begin: impl Fn(&Database) -> Result<T, TransactionError>,
    ) -> Result<T, TransactionError> {
        let db = self.current()?;
        match begin(&db) {
            Err(TransactionError::Storage(StorageError::PreviousIo)) => {
                // Our handle must go too, or the old database keeps the file locked.
                let failed = Arc::as_ptr(&db);
                drop(db);
                self.reopen(Some(failed))?;
                begin(self.current()?.as_ref())
            }
            other => other,
        }
    }

    fn current(&self) -> Result<Arc<Database>, TransactionError> {
        if let Some(db) = self.db.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(db.clone());
        }
        self.reopen(None)?;
        self.current()
    }

    /// Drops `failed` (the database in place when the call began) and opens the file
    /// again. Transactions still open on the old one keep its file locked; then this
    /// fails and the next call tries again.
    fn reopen(&self, failed: Option<*const Database>) -> Result<(), TransactionError> {
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        if let (Some(now), Some(failed)) = (slot.as_ref(), failed) {
            if !std::ptr::eq(Arc::as_ptr(now), failed) {
                return Ok(()); // another caller reopened it meanwhile
            }
        }
        *slot = None;
        let db = (self.open)().map_err(|e| {
            TransactionError::Storage(StorageError::Io(std::io::Error::other(format!(
                "reopening {} after an I/O error: {e}",
                self.name
            ))))
        })?;
        *slot = Some(Arc::new(db));
        Ok(())
    }
}

/// Copies every row of `table` in the snapshot `from` into `to`; a table the snapshot
/// does not have is left out. For backups, which copy a catalog row by row from a
/// read transaction (redb has no online copy of a whole file).
pub(crate) fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    table: redb::TableDefinition<'_, K, V>,
) -> Result<(), redb::Error> {
    use redb::ReadableTable;
    let source = match from.open_table(table) {
        Ok(source) => source,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut dest = to.open_table(table)?;
    for entry in source.iter()? {
        let (k, v) = entry?;
        dest.insert(k.value(), v.value())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use redb::backends::InMemoryBackend;
    use redb::{StorageBackend, TableDefinition};

    use super::*;

    const T: TableDefinition<&str, u64> = TableDefinition::new("t");

    /// Storage that fails every write while `full` is set, as a full disk does.
    #[derive(Debug)]
    struct Flaky {
        bytes: Arc<InMemoryBackend>,
        full: Arc<AtomicBool>,
    }

    impl StorageBackend for Flaky {
        fn len(&self) -> std::io::Result<u64> {
            self.bytes.len()
        }
        fn read(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
            self.bytes.read(offset, len)
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.bytes.set_len(len)
        }
        fn sync_data(&self, eventual: bool) -> std::io::Result<()> {
            self.bytes.sync_data(eventual)
        }
        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            if self.full.load(Ordering::SeqCst) {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.bytes.write(offset, data)
        }
    }

    fn put(catalog: &CatalogFile, key: &str, value: u64) -> Result<(), String> {
        let txn = catalog.begin_write().map_err(|e| e.to_string())?;
        txn.open_table(T)
            .map_err(|e| e.to_string())?
            .insert(key, value)
            .map_err(|e| e.to_string())?;
        txn.commit().map_err(|e| e.to_string())
    }

    #[test]
    fn a_failed_commit_does_not_break_the_catalog_for_good() {
        let bytes = Arc::new(InMemoryBackend::new());
        let full = Arc::new(AtomicBool::new(false));
        let (b, f) = (bytes.clone(), full.clone());
        let catalog = CatalogFile::with("test".into(), move || {
            let backend = Flaky {
                bytes: b.clone(),
                full: f.clone(),
            };
            Database::builder().create_with_backend(backend)
        })
        .unwrap();
        put(&catalog, "kept", 1).unwrap();
        full.store(true, Ordering::SeqCst);
        assert!(put(&catalog, "lost", 2).is_err());
        full.store(false, Ordering::SeqCst);
        // redb refuses everything after the failed commit; the catalog reopens itself.
        put(&catalog, "after", 3).unwrap();
        let txn = catalog.begin_read().unwrap();
        let table = txn.open_table(T).unwrap();
        assert_eq!(table.get("kept").unwrap().map(|v| v.value()), Some(1));
        assert!(table.get("lost").unwrap().is_none());
        assert_eq!(table.get("after").unwrap().map(|v| v.value()), Some(3));
    }
}
