//! Errors of the store as a whole (catalog, files, names); each store adds its own.

use std::path::PathBuf;

use crate::d1::D1Error;

/// A failure of a [`Store`](crate::Store) call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the data directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What tristore was doing.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The catalog (`catalog.redb`) failed; the message names the file.
    #[error("catalog {path}: {message}")]
    Catalog {
        /// The catalog file.
        path: PathBuf,
        /// What redb reported.
        message: String,
    },
    /// No database, index or bucket of that name or id.
    #[error("{kind} not found: {name}")]
    NotFound {
        /// `D1 database`, ...
        kind: &'static str,
        /// The name or id asked for.
        name: String,
    },
    /// The name is taken.
    #[error("{kind} already exists: {name}")]
    AlreadyExists {
        /// `D1 database`, ...
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
    /// The name breaks the naming rule, which the message states.
    #[error("invalid {kind} name {name:?}: {rule}")]
    InvalidName {
        /// `D1 database`, ...
        kind: &'static str,
        /// The name given.
        name: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A migration could not be read, created or applied.
    #[error("migration {name}: {message}")]
    Migration {
        /// The migration's name (its path relative to the migrations directory).
        name: String,
        /// What went wrong.
        message: String,
    },
    /// A configuration file (`--config`) could not be used.
    #[error("configuration {path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A backup could not be written or restored; the message says what to do.
    #[error("{path}: {message}")]
    Backup {
        /// The backup, its destination, or the data directory restored into.
        path: PathBuf,
        /// What is wrong, and what to do about it.
        message: String,
    },
    /// A D1 call failed.
    #[error(transparent)]
    D1(#[from] D1Error),
    /// An R2 call failed.
    #[error(transparent)]
    R2(#[from] crate::r2::R2Error),
    /// A Vectorize call failed.
    #[error(transparent)]
    Vectorize(#[from] crate::vectorize::VectorizeError),
}

/// Shorthand for results of [`Store`](crate::Store) calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
