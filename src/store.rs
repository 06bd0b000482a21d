//! `Store`: one data directory holding every database, index and bucket.
//!
//! ```text
//! <data>/catalog.redb                 what exists, with its configuration
//! <data>/d1/<database-uuid>.sqlite    one SQLite file per D1 database (WAL mode)
//! <data>/r2/catalog.redb              buckets, objects, multipart uploads and parts
//! <data>/r2/blobs/<2 hex>/<blake3 hex>   object content, stored once per content
//! <data>/r2/tmp/                      uploads being written
//! <data>/vectorize/<index>/           index.json, wal-<gen>.log, segment-<gen>.seg, vectors-<run>-<gen>.vec
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::d1::{D1Database, D1Limits, OpenDatabases};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::r2::{R2Limits, R2Store};
use crate::vectorize::VectorizeStore;

/// D1 databases by uuid: postcard-encoded [`DatabaseRecord`].
const D1_DATABASES: TableDefinition<&str, &[u8]> = TableDefinition::new("d1_databases");
/// D1 database names to uuids, which keeps names unique.
const D1_NAMES: TableDefinition<&str, &str> = TableDefinition::new("d1_names");

/// Options for [`Store::open_with`].
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Limits every D1 database of the store enforces.
    pub d1_limits: D1Limits,
    /// Limits every R2 bucket of the store enforces.
    pub r2_limits: R2Limits,
    /// **Benchmarks only.** Skip fsync in R2 (blob files, directories, catalog commits):
    /// an acknowledged write can be lost in a crash. Off by default.
    pub r2_relaxed_durability_for_benchmarks: bool,
    /// R2 objects put whole with at most this many bytes are stored in their catalog
    /// row, not in a blob file: one flush per put instead of three (`None`:
    /// [`DEFAULT_R2_INLINE_MAX_BYTES`]; `Some(0)` keeps only empty objects inline).
    pub r2_inline_max_bytes: Option<u64>,
    /// Limits every Vectorize index of the store enforces.
    pub vectorize_limits: crate::vectorize::Limits,
    /// Vectorize engine settings (search breadth, checkpoint size).
    pub vectorize_options: crate::vectorize::VectorizeOptions,
    /// How many D1 databases to keep open when no handle to them is held (`None`:
    /// [`DEFAULT_OPEN_D1_DATABASES`]). Beyond it the least recently used are closed,
    /// and opened again on their next use. An open database holds three file
    /// descriptors, plus two per idle reader connection (at most eight).
    pub max_open_d1_databases: Option<usize>,
    /// Encrypt R2 content written from now on at rest with this key (AES-256-GCM;
    /// docs/design.md, "Encryption"). Content written without it stays readable;
    /// content written with it cannot be read without it.
    pub r2_encryption_key: Option<crate::r2::EncryptionKey>,
}

/// R2 objects up to 32 KiB live in their catalog row by default: "tens of KiB", chosen
/// rather than tuned; a put at or under it costs one flush (docs/benchmarks.md).
pub const DEFAULT_R2_INLINE_MAX_BYTES: u64 = 32 << 10;

/// D1 databases kept open by default: 64 hold about 200 file descriptors, a fifth of
/// Linux's usual limit of 1,024 (macOS: 256, which leaves room for about 40 more
/// connections of other kinds).
pub const DEFAULT_OPEN_D1_DATABASES: usize = 64;

/// A data directory: the catalog and the files of every store in it.
pub struct Store {
    dir: PathBuf,
    catalog: crate::catalog_file::CatalogFile,
    options: StoreOptions,
    r2: R2Store,
    vectorize: VectorizeStore,
    /// Open D1 databases by uuid, so that every caller shares one writer per database.
    open_d1: Mutex<OpenDatabases>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

/// A D1 database as D1's REST API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseInfo {
    /// The database id.
    pub uuid: String,
    /// The unique name.
    pub name: String,
    /// Creation time, ISO 8601 in UTC.
    pub created_at: String,
    /// `production` (D1's current storage backend).
    pub version: String,
    /// Bytes in use.
    pub file_size: u64,
    /// Tables, not counting SQLite's internal ones.
    pub num_tables: u64,
}

/// What the catalog keeps of a D1 database; sizes are read from the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DatabaseRecord {
    uuid: String,
    name: String,
    created_at: String,
}

impl Store {
    /// Opens the data directory `dir`, creating it if needed.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir, StoreOptions::default())
    }

    /// Opens `dir` with non-default options.
    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        fsutil::create_dir_durable(&dir.join("d1"))?;
        fsutil::create_dir_durable(&dir.join("r2"))?;
        let path = dir.join("catalog.redb");
        let catalog = crate::catalog_file::CatalogFile::open(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => catalog_error(
                &path,
                format!(
                    "the data directory {} is already open, by another process (a running \
                     `tristore serve`? its address is in {}) or elsewhere in this one. One \
                     process at a time may open it: stop the other, or send the request to \
                     the server that holds it",
                    dir.display(),
                    dir.join("server.json").display()
                ),
            ),
            e => catalog_error(&path, e),
        })?;
        let r2 = R2Store::open(
            &dir.join("r2"),
            options.r2_limits.clone(),
            !options.r2_relaxed_durability_for_benchmarks,
            options
                .r2_inline_max_bytes
                .unwrap_or(DEFAULT_R2_INLINE_MAX_BYTES),
            options.r2_encryption_key.clone(),
        )?;
        let vectorize = VectorizeStore::open(
            &dir.join("vectorize"),
            options.vectorize_limits.clone(),
            options.vectorize_options.clone(),
        )?;
        let open_d1 = OpenDatabases::new(
            options
                .max_open_d1_databases
                .unwrap_or(DEFAULT_OPEN_D1_DATABASES),
        );
        let store = Store {
            vectorize,
            dir,
            catalog,
            options,
            r2,
            open_d1: Mutex::new(open_d1),
        };
        store.init_tables()?;
        store.sweep_orphan_d1_files()?;
        Ok(store)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The R2 buckets of this store.
    pub fn r2(&self) -> &R2Store {
        &self.r2
    }

    /// The Vectorize indexes of this store.
    pub fn vectorize(&self) -> &VectorizeStore {
        &self.vectorize
    }

    /// The D1 databases of this store.
    pub fn d1(&self) -> D1Databases<'_> {
        D1Databases { store: self }
    }

    fn init_tables(&self) -> Result<()> {
        let txn = self
            .catalog
            .begin_write()
            .map_err(|e| self.catalog_err(e))?;
        txn.open_table(D1_DATABASES)
            .map_err(|e| self.catalog_err(e))?;
        txn.open_table(D1_NAMES).map_err(|e| self.catalog_err(e))?;
        txn.commit().map_err(|e| self.catalog_err(e))
    }

    /// Removes database files no catalog row names: left by a crash between creating a
    /// file and committing its row, or between deleting a row and its file.
    fn sweep_orphan_d1_files(&self) -> Result<()> {
        let known: HashSet<String> = self.d1().records()?.into_iter().map(|r| r.uuid).collect();
        let d1_dir = self.dir.join("d1");
        let entries = std::fs::read_dir(&d1_dir).map_err(Error::io("listing", &d1_dir))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(uuid) = name.split('.').next() else {
                continue;
            };
            if uuid::Uuid::parse_str(uuid).is_ok() && !known.contains(uuid) {
                let path = entry.path();
                // A database's Time Travel history is a directory beside it.
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(Error::io("removing orphan", &path))?;
            }
        }
        Ok(())
    }

    fn catalog_err(&self, e: impl std::fmt::Display) -> Error {
        catalog_error(&self.dir.join("catalog.redb"), e)
    }

    fn open_d1(&self) -> MutexGuard<'_, OpenDatabases> {
        // The set holds no invariant a panic could break halfway.
        self.open_d1.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn catalog_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Catalog {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The D1 side of a [`Store`]: create, list, get, delete and open databases.
pub struct D1Databases<'s> {
    store: &'s Store,
}

const D1_KIND: &str = "D1 database";

impl D1Databases<'_> {
    /// Creates an empty database called `name` and returns its description.
    pub fn create(&self, name: &str) -> Result<DatabaseInfo> {
        validate_name(name)?;
        let store = self.store;
        let uuid = uuid::Uuid::new_v4().to_string();
        let record = DatabaseRecord {
            uuid: uuid.clone(),
            name: name.to_owned(),
            created_at: now_iso8601(),
        };
        // The file exists before the row that names it; a crash in between leaves an
        // orphan file that the next open sweeps.
        let db = D1Database::open(self.path_of(&uuid), store.options.d1_limits.clone())?;
        fsutil::sync_dir(&store.dir.join("d1"))?;
        let txn = store
            .catalog
            .begin_write()
            .map_err(|e| store.catalog_err(e))?;
        {
            let mut names = txn.open_table(D1_NAMES).map_err(|e| store.catalog_err(e))?;
            if names.get(name).map_err(|e| store.catalog_err(e))?.is_some() {
                drop(names);
                drop(txn);
                drop(db);
                self.remove_files(&uuid)?;
                return Err(Error::AlreadyExists {
                    kind: D1_KIND,
                    name: name.to_owned(),
                });
            }
            names
                .insert(name, uuid.as_str())
                .map_err(|e| store.catalog_err(e))?;
            let mut dbs = txn
                .open_table(D1_DATABASES)
                .map_err(|e| store.catalog_err(e))?;
            let bytes = postcard::to_allocvec(&record).map_err(|e| store.catalog_err(e))?;
            dbs.insert(uuid.as_str(), bytes.as_slice())
                .map_err(|e| store.catalog_err(e))?;
        }
        txn.commit().map_err(|e| store.catalog_err(e))?;
        let evicted = store.open_d1().keep(&uuid, db);
        drop(evicted);
        self.describe(record)
    }

    /// Every database, ordered by creation time.
    pub fn list(&self) -> Result<Vec<DatabaseInfo>> {
        Ok(self.list_page(0, usize::MAX)?.0)
    }

    /// `take` databases after the first `skip`, ordered by creation time, and how many
    /// there are in all. Only the page's databases are read, each opened for a moment
    /// if it is not open already.
    pub fn list_page(&self, skip: usize, take: usize) -> Result<(Vec<DatabaseInfo>, usize)> {
        let mut records = self.records()?;
        let total = records.len();
        records.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.name.cmp(&b.name)));
        let page = records
            .into_iter()
            .skip(skip)
            .take(take)
            .map(|r| self.describe(r))
            .collect::<Result<_>>()?;
        Ok((page, total))
    }

    /// The database named `name_or_uuid` (a name or a uuid).
    pub fn get(&self, name_or_uuid: &str) -> Result<DatabaseInfo> {
        self.describe(self.record(name_or_uuid)?)
    }

    /// A handle to the database named `name_or_uuid`, shared with every other caller.
    pub fn database(&self, name_or_uuid: &str) -> Result<D1Database> {
        let record = self.record(name_or_uuid)?;
        self.open_uuid(&record.uuid)
    }

    /// Deletes the database and its file. Handles still held keep working on the
    /// unlinked file until dropped; nothing they write is kept.
    pub fn delete(&self, name_or_uuid: &str) -> Result<()> {
        let store = self.store;
        let record = self.record(name_or_uuid)?;
        let txn = store
            .catalog
            .begin_write()
            .map_err(|e| store.catalog_err(e))?;
        {
            let mut names = txn.open_table(D1_NAMES).map_err(|e| store.catalog_err(e))?;
            names
                .remove(record.name.as_str())
                .map_err(|e| store.catalog_err(e))?;
            let mut dbs = txn
                .open_table(D1_DATABASES)
                .map_err(|e| store.catalog_err(e))?;
            dbs.remove(record.uuid.as_str())
                .map_err(|e| store.catalog_err(e))?;
        }
        txn.commit().map_err(|e| store.catalog_err(e))?;
        let forgotten = store.open_d1().remove(&record.uuid);
        drop(forgotten);
        self.remove_files(&record.uuid)
    }

    /// Every database's uuid and SQLite file, as the catalog names them now.
    pub(crate) fn files(&self) -> Result<Vec<(String, PathBuf)>> {
        Ok(self
            .records()?
            .into_iter()
            .map(|r| {
                let path = self.path_of(&r.uuid);
                (r.uuid, path)
            })
            .collect())
    }

    fn remove_files(&self, uuid: &str) -> Result<()> {
        let main = self.path_of(uuid);
        for suffix in ["", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{suffix}", main.display()));
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io("removing", path)(e));
                }
                _ => {}
            }
        }
        let history = crate::d1::history_dir(&main);
        match std::fs::remove_dir_all(&history) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("removing", history)(e));
            }
            _ => {}
        }
        fsutil::sync_dir(&self.store.dir.join("d1"))
    }

    fn path_of(&self, uuid: &str) -> PathBuf {
        self.store.dir.join("d1").join(format!("{uuid}.sqlite"))
    }

    /// The database `uuid`, opened if needed and kept open as the most recently used.
    fn open_uuid(&self, uuid: &str) -> Result<D1Database> {
        let mut open = self.store.open_d1();
        let (found, evicted) = open.get(uuid);
        let (db, evicted) = match found {
            Some(db) => (db, evicted),
            None => {
                // Opened under the lock, so that two callers never open it twice.
                let db = self.open_file(uuid)?;
                let evicted = open.keep(uuid, db.clone());
                (db, evicted)
            }
        };
        drop(open);
        drop(evicted);
        Ok(db)
    }

    fn open_file(&self, uuid: &str) -> Result<D1Database> {
        Ok(D1Database::open(
            self.path_of(uuid),
            self.store.options.d1_limits.clone(),
        )?)
    }

    /// Describes a database, reading its size and tables from its file: through the
    /// open database if there is one, else opened just for this and closed after, so
    /// that listing many databases keeps none of them open.
    fn describe(&self, record: DatabaseRecord) -> Result<DatabaseInfo> {
        let db = {
            let mut open = self.store.open_d1();
            match open.peek(&record.uuid) {
                Some(db) => db,
                None => {
                    let db = self.open_file(&record.uuid)?;
                    open.track(&record.uuid, &db);
                    db
                }
            }
        };
        Ok(DatabaseInfo {
            uuid: record.uuid,
            name: record.name,
            created_at: record.created_at,
            version: "production".into(),
            file_size: db.file_size()?,
            num_tables: db.num_tables()?,
        })
    }

    fn records(&self) -> Result<Vec<DatabaseRecord>> {
        let store = self.store;
        let txn = store
            .catalog
            .begin_read()
            .map_err(|e| store.catalog_err(e))?;
        let table = txn
            .open_table(D1_DATABASES)
            .map_err(|e| store.catalog_err(e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| store.catalog_err(e))? {
            let (_, value) = entry.map_err(|e| store.catalog_err(e))?;
            out.push(postcard::from_bytes(value.value()).map_err(|e| store.catalog_err(e))?);
        }
        Ok(out)
    }

    /// Ids win over names: a text that reads as a uuid is only ever looked up as one,
    /// so no name (one from an older catalog included) can stand in for a database id.
    fn record(&self, name_or_uuid: &str) -> Result<DatabaseRecord> {
        let store = self.store;
        let txn = store
            .catalog
            .begin_read()
            .map_err(|e| store.catalog_err(e))?;
        let uuid = match uuid::Uuid::parse_str(name_or_uuid) {
            Ok(id) => id.hyphenated().to_string(),
            Err(_) => {
                let names = txn.open_table(D1_NAMES).map_err(|e| store.catalog_err(e))?;
                let by_name = names.get(name_or_uuid).map_err(|e| store.catalog_err(e))?;
                by_name.map_or_else(|| name_or_uuid.to_owned(), |u| u.value().to_owned())
            }
        };
        let dbs = txn
            .open_table(D1_DATABASES)
            .map_err(|e| store.catalog_err(e))?;
        let bytes = dbs.get(uuid.as_str()).map_err(|e| store.catalog_err(e))?;
        match bytes {
            Some(b) => postcard::from_bytes(b.value()).map_err(|e| store.catalog_err(e)),
            None => Err(Error::NotFound {
                kind: D1_KIND,
                name: name_or_uuid.to_owned(),
            }),
        }
    }
}

/// D1 names: what wrangler accepts (letters, digits, `-` and `_`), at most 64 bytes,
/// and not a uuid, which lookups would take for a database id.
fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let rule = if !ok {
        "use 1 to 64 characters from a-z, A-Z, 0-9, '-' and '_'"
    } else if uuid::Uuid::parse_str(name).is_ok() {
        "it looks like a database id, and ids are looked up before names; choose a name that is not a uuid"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        kind: D1_KIND,
        name: name.to_owned(),
        rule,
    })
}

pub(crate) fn now_iso8601() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// What backups (`crate::backup`) need of the store catalog.
impl Store {
    /// The store's catalog, for backups (which pause its writes and copy a snapshot).
    pub(crate) fn catalog_file(&self) -> &crate::catalog_file::CatalogFile {
        &self.catalog
    }

    /// Copies the store catalog's tables from the snapshot `from` into `to`.
    pub(crate) fn copy_catalog(
        from: &redb::ReadTransaction,
        to: &redb::WriteTransaction,
    ) -> Result<()> {
        let fail = |e: redb::Error| Error::Catalog {
            path: "catalog.redb".into(),
            message: e.to_string(),
        };
        crate::catalog_file::copy_table(from, to, D1_DATABASES).map_err(fail)?;
        crate::catalog_file::copy_table(from, to, D1_NAMES).map_err(fail)
    }
}
