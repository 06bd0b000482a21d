//! Backups of a whole data directory: D1, R2 and Vectorize at one instant, taken while
//! the store serves ([`backup`]), and restored into an empty directory ([`restore`]).
//!
//! A backup is a data directory plus `manifest.json`:
//!
//! ```text
//! DEST/catalog.redb                 the store catalog (D1 databases), copied row by row
//! DEST/d1/<uuid>.sqlite             each database, through SQLite's online backup API
//! DEST/r2/catalog.redb              buckets, objects (small ones inline), uploads, parts
//! DEST/r2/blobs/<2 hex>/<blake3>    every blob the catalog names: hard links when DEST
//!                                   shares the data directory's file system, else copies
//! DEST/vectorize/<index>/           index.json, newest segment, log up to the instant
//! DEST/manifest.json                format version, counts, every file's size and BLAKE3;
//!                                   written last
//! ```
//!
//! Everything is written into `.<DEST name>.tristore-backup-<pid>-<id>` beside DEST, fsynced,
//! and renamed to DEST at the end: a kill or an error at any moment leaves no DEST, or a
//! whole one. See `snapshot` for how the instant is taken.

mod snapshot;
mod staging;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{Store, StoreOptions};
use staging::{Purpose, Staging};

pub(crate) use staging::alive;

/// The name of the manifest in a backup.
pub const MANIFEST: &str = "manifest.json";
/// What `format` says in every manifest.
pub const FORMAT: &str = "tristore-backup";
/// The backup layout this tristore writes, and the newest it restores.
pub const FORMAT_VERSION: u32 = 1;

/// `manifest.json`: what a backup holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The layout's version ([`FORMAT_VERSION`] when written).
    pub version: u32,
    /// The tristore that wrote it.
    pub tristore: String,
    /// When the instant was taken, ISO 8601 in UTC.
    pub created_at: String,
    /// D1 databases.
    pub d1_databases: usize,
    /// R2 blob files (objects small enough to be inline live in the catalog instead).
    pub r2_blobs: usize,
    /// Vectorize indexes.
    pub vectorize_indexes: usize,
    /// Every file but the manifest.
    pub files: Vec<ManifestFile>,
}

/// One file of a backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Relative to the backup, `/`-separated.
    pub path: String,
    /// Its length.
    pub bytes: u64,
    /// BLAKE3 of the content, hex; absent for hard-linked blobs, whose name is theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
}

/// What [`backup`] or [`restore`] did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// The backup written, or the data directory restored.
    pub path: PathBuf,
    /// When the backup's instant was taken.
    pub created_at: String,
    /// D1 databases.
    pub d1_databases: usize,
    /// R2 blob files.
    pub r2_blobs: usize,
    /// Vectorize indexes.
    pub vectorize_indexes: usize,
    /// Files, and their bytes.
    pub files: usize,
    pub bytes: u64,
    /// Blobs hard-linked rather than copied.
    pub linked_blobs: usize,
    /// How long the backup held every write (zero for a restore).
    pub pause_micros: u64,
}

/// Writes a backup of `store` to `dest` (absent, or an empty directory). The store
/// keeps serving: writes pause only while a snapshot of each store is opened.
pub fn backup(store: &Store, dest: &Path) -> Result<Summary> {
    refuse_inside(store.dir(), dest)?;
    let mut out = Staging::begin(dest, Purpose::Backup)?;
    let created_at = crate::store::now_iso8601();
    let snapshot = snapshot::take(store)?;
    copy_catalog(&mut out, "catalog.redb", |to| {
        Store::copy_catalog(&snapshot.catalog, to)
    })?;
    copy_catalog(&mut out, "r2/catalog.redb", |to| {
        Ok(crate::r2::copy_catalog(&snapshot.r2, to)?)
    })?;
    // The R2 store's key check: without it, a restored store encrypted at rest would
    // open without its key and fail on every read instead of refusing to open.
    let key_check = store.r2().dir().join(crate::r2::KEY_CHECK_FILE);
    if let Ok(file) = std::fs::File::open(&key_check) {
        let len = file
            .metadata()
            .map_err(Error::io("reading", &key_check))?
            .len();
        out.copy_from(
            &format!("r2/{}", crate::r2::KEY_CHECK_FILE),
            file,
            len,
            None,
        )?;
    }
    let blobs = crate::r2::blobs_named("backup", &snapshot.r2)?;
    drop(snapshot.r2);
    for blob in &blobs {
        let hex = hex::encode(blob.hash);
        let rel = format!("r2/blobs/{}/{hex}", &hex[..2]);
        out.link_or_copy(&rel, &store.r2().blob_path(&blob.hash), blob.len, None)?;
    }
    let d1_databases = snapshot.d1.len();
    for (uuid, source) in snapshot.d1 {
        let rel = format!("d1/{uuid}.sqlite");
        copy_d1(&mut out, &rel, &source)?;
    }
    let vectorize_indexes = snapshot.vectorize.len();
    for index in snapshot.vectorize {
        for file in index.files {
            let rel = format!("vectorize/{}/{}", index.name, file.name);
            out.copy_from(&rel, &file.file, file.len, None)?;
        }
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        tristore: env!("CARGO_PKG_VERSION").into(),
        created_at,
        d1_databases,
        r2_blobs: blobs.len(),
        vectorize_indexes,
        files: std::mem::take(&mut out.files),
    };
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Backup {
        path: out.target().to_owned(),
        message: format!("encoding the manifest: {e}"),
    })?;
    let linked = out.linked;
    let path = out.finish(Some((MANIFEST, &bytes)))?;
    Ok(summary(path, &manifest, linked, snapshot.pause))
}

/// Restores the backup at `src` into `data_dir`, which must be absent or empty. Every
/// file is checked against the manifest as it is copied, and the result is opened once
/// (every index included) before it is moved into place, so a damaged backup leaves
/// no data directory behind.
pub fn restore(src: &Path, data_dir: &Path) -> Result<Summary> {
    restore_with(src, data_dir, StoreOptions::default())
}

/// [`restore`], opening the restored store with `options` (a backup of a store
/// encrypted at rest opens only with its key: `StoreOptions::r2_encryption_key`).
pub fn restore_with(src: &Path, data_dir: &Path, options: StoreOptions) -> Result<Summary> {
    let manifest = read_manifest(src)?;
    let mut out = Staging::begin(data_dir, Purpose::Restore)?;
    for file in &manifest.files {
        let from = src.join(&file.path);
        let missing = |e: std::io::Error| {
            Error::Backup {
            path: from.clone(),
            message: format!("this file of the backup cannot be read ({e}): the backup is damaged; restore another one"),
        }
        };
        if file.path.starts_with("r2/blobs/") {
            // Blobs are never written in place, so the restored store may share them.
            std::fs::metadata(&from).map_err(missing)?;
            let expect = file.blake3.as_deref();
            out.link_or_copy(&file.path, &from, file.bytes, expect)?;
        } else {
            let source = std::fs::File::open(&from).map_err(missing)?;
            out.copy_from(&file.path, source, file.bytes, file.blake3.as_deref())?;
        }
    }
    let store = Store::open_with(out.dir(), options).map_err(|e| Error::Backup {
        path: src.to_owned(),
        message: format!(
            "the restored store does not open ({e}): the backup is damaged; restore another one"
        ),
    })?;
    for index in store.vectorize().list()? {
        store.vectorize().index(&index.name)?;
    }
    drop(store);
    let linked = out.linked;
    let files = std::mem::take(&mut out.files);
    let path = out.finish(None)?;
    let restored = Manifest { files, ..manifest };
    Ok(summary(path, &restored, linked, Default::default()))
}

/// The manifest of the backup at `src`, refused unless it is one this tristore reads.
pub fn read_manifest(src: &Path) -> Result<Manifest> {
    let path = src.join(MANIFEST);
    let refuse = |message: String| Error::Backup {
        path: src.to_owned(),
        message,
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse(format!("not a tristore backup: there is no {MANIFEST} (an interrupted backup never has one); name the directory `tristore backup` wrote")));
        }
        Err(e) => return Err(Error::io("reading", path)(e)),
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        refuse(format!(
            "{MANIFEST} is not valid JSON ({e}): the backup is damaged; restore another one"
        ))
    })?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(refuse(format!("{MANIFEST} is not a tristore backup manifest (its \"format\" is not {FORMAT:?}); name the directory `tristore backup` wrote")));
    }
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if version > u64::from(FORMAT_VERSION) {
        return Err(refuse(format!("this backup has format version {version}, written by a newer tristore ({}); this one ({}) restores versions up to {FORMAT_VERSION}: restore it with that version or a newer one", value.get("tristore").and_then(|v| v.as_str()).unwrap_or("unknown"), env!("CARGO_PKG_VERSION"))));
    }
    let manifest: Manifest = serde_json::from_value(value).map_err(|e| {
        refuse(format!(
            "{MANIFEST} is damaged ({e}); restore another backup"
        ))
    })?;
    // Restoring writes each listed path below the new data directory: only plain
    // relative paths, so that no manifest can make it write elsewhere.
    let plain = |p: &str| {
        !p.is_empty()
            && Path::new(p)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
    };
    if let Some(bad) = manifest.files.iter().find(|f| !plain(&f.path)) {
        return Err(refuse(format!("{MANIFEST} lists {:?}, which is not a path inside the backup: the manifest is damaged; restore another backup", bad.path)));
    }
    Ok(manifest)
}

/// Refuses a destination inside the data directory: the backup would then be part of
/// the store it copies (and of the next backup).
fn refuse_inside(data_dir: &Path, dest: &Path) -> Result<()> {
    let resolve = |path: &Path| -> Option<PathBuf> {
        // The nearest ancestor that exists, with symbolic links resolved.
        let path = std::path::absolute(path).ok()?;
        let mut rest = Vec::new();
        let mut at = path.as_path();
        loop {
            if let Ok(real) = std::fs::canonicalize(at) {
                return Some(rest.iter().rev().fold(real, |p, c| p.join(c)));
            }
            rest.push(at.file_name()?.to_owned());
            at = at.parent()?;
        }
    };
    match (resolve(data_dir), resolve(dest)) {
        (Some(data), Some(dest)) if dest.starts_with(&data) => Err(Error::Backup {
            path: dest,
            message: format!(
                "the destination is inside the data directory {}: choose a directory outside it",
                data.display()
            ),
        }),
        _ => Ok(()),
    }
}

/// Writes a new redb catalog at `rel`, filled by `fill` in one transaction.
fn copy_catalog(
    out: &mut Staging,
    rel: &str,
    fill: impl FnOnce(&redb::WriteTransaction) -> Result<()>,
) -> Result<()> {
    let path = out.path(rel)?;
    let fail = |e: &dyn std::fmt::Display| Error::Catalog {
        path: path.clone(),
        message: e.to_string(),
    };
    let db = redb::Database::create(&path).map_err(|e| fail(&e))?;
    let txn = db.begin_write().map_err(|e| fail(&e))?;
    fill(&txn)?;
    txn.commit().map_err(|e| fail(&e))?;
    drop(db);
    out.written(rel)
}

/// Copies the database `source` sees (its read transaction's snapshot) to `rel`, with
/// SQLite's online backup API in one step: a copy of the pages as of the snapshot.
fn copy_d1(out: &mut Staging, rel: &str, source: &rusqlite::Connection) -> Result<()> {
    let path = out.path(rel)?;
    let fail = |e: rusqlite::Error| Error::Backup {
        path: path.clone(),
        message: format!("copying a D1 database: {e}"),
    };
    // A copy that fails is thrown away with the staging directory, and a finished one
    // is fsynced by `written`.
    crate::d1::copy_database(source, &path).map_err(fail)?;
    out.written(rel)
}

fn summary(
    path: PathBuf,
    manifest: &Manifest,
    linked: usize,
    pause: std::time::Duration,
) -> Summary {
    Summary {
        path,
        created_at: manifest.created_at.clone(),
        d1_databases: manifest.d1_databases,
        r2_blobs: manifest.r2_blobs,
        vectorize_indexes: manifest.vectorize_indexes,
        files: manifest.files.len(),
        bytes: manifest.files.iter().map(|f| f.bytes).sum(),
        linked_blobs: linked,
        pause_micros: u64::try_from(pause.as_micros()).unwrap_or(u64::MAX),
    }
}
