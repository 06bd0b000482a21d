//! Every fsync tristore does of its own files, in one place: a write is durable only
//! once one of these returned, and the power-loss tests ([`crate::power_loss`]) see
//! each one here, named by its call site, to work out what a power cut would keep.

use std::fmt;
use std::fs::File;
use std::io;
use std::panic::Location;
use std::path::Path;

use crate::power_loss;

/// Where an fsync is called from, and what it syncs: `src/r2/blobs.rs:287 file`.
#[derive(Clone, Copy)]
pub(crate) struct Site {
    at: &'static Location<'static>,
    what: &'static str,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} {}", self.at.file(), self.at.line(), self.what)
    }
}

impl Site {
    /// The call site of the function this is called in (with `#[track_caller]`).
    #[track_caller]
    pub(crate) fn here(what: &'static str) -> Site {
        Site {
            at: Location::caller(),
            what,
        }
    }
}

/// `fsync`: the file's data and metadata (its length) are durable, not its name.
#[track_caller]
pub(crate) fn file(f: &File) -> io::Result<()> {
    file_at(f, Site::here("file"))
}

/// [`file`] for a site named by the caller.
pub(crate) fn file_at(f: &File, site: Site) -> io::Result<()> {
    f.sync_all()?;
    power_loss::synced_file(f, &site);
    Ok(())
}

/// `fdatasync`: the file's data and length are durable, not its name.
#[track_caller]
pub(crate) fn data(f: &File) -> io::Result<()> {
    let site = Site::here("file");
    f.sync_data()?;
    power_loss::synced_file(f, &site);
    Ok(())
}

/// `fsync` of a directory: the entries created, renamed or removed in it are durable.
#[track_caller]
pub(crate) fn dir(path: &Path) -> io::Result<()> {
    let site = Site::here("directory");
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    File::open(path)?.sync_all()?;
    power_loss::synced_dir(path, &site);
    Ok(())
}
