//! File-system steps of the durability rules: new files are written to a temporary
//! name, fsynced, renamed into place, and their directory fsynced.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Creates `dir` (and parents) and makes the new entry durable in its parent.
#[track_caller]
pub(crate) fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(Error::io("creating directory", dir))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// fsyncs a directory so that entries created or renamed in it survive a crash.
#[track_caller]
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    crate::fsync::dir(dir).map_err(Error::io("syncing directory", dir))
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the directory.
#[track_caller]
pub(crate) fn write_durable(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let site = crate::fsync::Site::here("file");
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        crate::fsync::file_at(&f, site)?;
        fs::rename(&tmp, path)
    };
    write().map_err(Error::io("writing", path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}
