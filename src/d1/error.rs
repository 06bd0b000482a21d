//! D1's error texts.
//!
//! Every failure surfaces as one of the prefixes the Worker binding uses
//! (`D1_ERROR`, `D1_TYPE_ERROR`, `D1_COLUMN_NOTFOUND`, `D1_EXEC_ERROR`), so a
//! program that matches on `err.to_string().starts_with("D1_ERROR")` behaves the
//! same against tristore as against Cloudflare.

use rusqlite::ffi;

/// An error from a D1 call, displayed exactly as the Worker binding's `Error.message`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum D1Error {
    /// A statement, batch or transport failure: `D1_ERROR: <message>: SQLITE_<CODE>`.
    #[error("D1_ERROR: {0}")]
    Query(SqlError),
    /// `bind()` was given a value D1 cannot store.
    #[error("D1_TYPE_ERROR: Type '{type_name}' not supported for value '{value}'")]
    Type {
        /// The JavaScript `typeof` of the value (`object`, `bigint`, `undefined`).
        type_name: String,
        /// The value as JavaScript's `String(value)` prints it.
        value: String,
    },
    /// `first(column)` named a column the row does not have.
    #[error("D1_COLUMN_NOTFOUND: Column not found ({0})")]
    ColumnNotFound(String),
    /// A line of `exec()` failed.
    #[error("D1_EXEC_ERROR: Error in line {line}: {sql}: {error}")]
    Exec {
        /// 1-based line of the trimmed input.
        line: usize,
        /// The text of that line.
        sql: String,
        /// What went wrong on it.
        error: SqlError,
    },
}

impl D1Error {
    /// A `D1_ERROR` with a message and a SQLite result code name.
    pub(crate) fn query(message: impl Into<String>, code: &'static str) -> Self {
        D1Error::Query(SqlError {
            message: message.into(),
            code,
        })
    }

    /// The SQL error inside a `D1_ERROR` or `D1_EXEC_ERROR`, if this is one.
    pub fn sql_error(&self) -> Option<&SqlError> {
        match self {
            D1Error::Query(e) | D1Error::Exec { error: e, .. } => Some(e),
            _ => None,
        }
    }
}

/// SQLite's message and primary result code, printed as `<message>: SQLITE_<CODE>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// SQLite's error text, e.g. `no such table: nope`.
    pub message: String,
    /// The primary result code's name, e.g. `SQLITE_ERROR`.
    pub code: &'static str,
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.message, self.code)
    }
}

impl From<rusqlite::Error> for SqlError {
    fn from(err: rusqlite::Error) -> Self {
        match err {
            rusqlite::Error::SqliteFailure(e, message) => SqlError {
                message: message.unwrap_or_else(|| ffi::code_to_str(e.extended_code).to_string()),
                code: code_name(e.extended_code),
            },
            // Production D1 treats a missing binding as NULL; workerd (and so every local
            // D1) refuses it with this text, which we keep since it catches real bugs.
            rusqlite::Error::InvalidParameterCount(..) => SqlError {
                message: "Wrong number of parameter bindings for SQL query.".into(),
                code: "SQLITE_RANGE",
            },
            rusqlite::Error::SqlInputError {
                error, msg, offset, ..
            } => SqlError {
                message: if offset >= 0 {
                    format!("{msg} at offset {offset}")
                } else {
                    msg
                },
                code: code_name(error.extended_code),
            },
            other => SqlError {
                message: other.to_string(),
                code: "SQLITE_ERROR",
            },
        }
    }
}

impl From<rusqlite::Error> for D1Error {
    fn from(err: rusqlite::Error) -> Self {
        D1Error::Query(err.into())
    }
}

/// The name of SQLite's primary result code (`extended & 0xff`).
pub(crate) fn code_name(extended: i32) -> &'static str {
    match extended & 0xff {
        ffi::SQLITE_ERROR => "SQLITE_ERROR",
        ffi::SQLITE_INTERNAL => "SQLITE_INTERNAL",
        ffi::SQLITE_PERM => "SQLITE_PERM",
        ffi::SQLITE_ABORT => "SQLITE_ABORT",
        ffi::SQLITE_BUSY => "SQLITE_BUSY",
        ffi::SQLITE_LOCKED => "SQLITE_LOCKED",
        ffi::SQLITE_NOMEM => "SQLITE_NOMEM",
        ffi::SQLITE_READONLY => "SQLITE_READONLY",
        ffi::SQLITE_INTERRUPT => "SQLITE_INTERRUPT",
        ffi::SQLITE_IOERR => "SQLITE_IOERR",
        ffi::SQLITE_CORRUPT => "SQLITE_CORRUPT",
        ffi::SQLITE_NOTFOUND => "SQLITE_NOTFOUND",
        ffi::SQLITE_FULL => "SQLITE_FULL",
        ffi::SQLITE_CANTOPEN => "SQLITE_CANTOPEN",
        ffi::SQLITE_PROTOCOL => "SQLITE_PROTOCOL",
        ffi::SQLITE_EMPTY => "SQLITE_EMPTY",
        ffi::SQLITE_SCHEMA => "SQLITE_SCHEMA",
        ffi::SQLITE_TOOBIG => "SQLITE_TOOBIG",
        ffi::SQLITE_CONSTRAINT => "SQLITE_CONSTRAINT",
        ffi::SQLITE_MISMATCH => "SQLITE_MISMATCH",
        ffi::SQLITE_MISUSE => "SQLITE_MISUSE",
        ffi::SQLITE_NOLFS => "SQLITE_NOLFS",
        ffi::SQLITE_AUTH => "SQLITE_AUTH",
        ffi::SQLITE_FORMAT => "SQLITE_FORMAT",
        ffi::SQLITE_RANGE => "SQLITE_RANGE",
        ffi::SQLITE_NOTADB => "SQLITE_NOTADB",
        _ => "SQLITE_ERROR",
    }
}
