//! D1's per-database limits, enforced through SQLite's own limit mechanism.

use std::time::Duration;

use rusqlite::limits::Limit;
use rusqlite::Connection;

/// The limits every D1 database enforces. Defaults are Cloudflare's published values
/// (Workers Paid); each one can be changed for tests or for a different plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct D1Limits {
    /// Bound parameters per statement (D1: 100; the 101st fails with `too many SQL variables`).
    pub max_bound_parameters: u32,
    /// Bytes of SQL per statement (D1: 100,000).
    pub max_sql_length: u32,
    /// Bytes in one string, BLOB or row (D1: 2,000,000).
    pub max_value_size: u32,
    /// Columns per table, index or result (D1: 100).
    pub max_columns: u32,
    /// Arguments to one SQL function (D1: 32).
    pub max_function_args: u32,
    /// Bytes in a `LIKE` or `GLOB` pattern (D1: 50).
    pub max_like_pattern: u32,
    /// Wall time of one query, or of a whole batch (D1: 30 s).
    pub query_timeout: Duration,
    /// Size of the database file (D1: 10 GB).
    pub max_database_size: u64,
    /// Bytes of results one request may return, counted as their JSON (rows as
    /// objects, plus a few hundred bytes per statement for `meta`). D1 documents no such
    /// limit; tristore's default, 100 MB, matches the largest request body Cloudflare's
    /// API takes, and a Worker (128 MB of memory) could not hold much more.
    pub max_result_size: u64,
    /// How far back Time Travel reaches (D1: 30 days); history older than this is deleted.
    pub time_travel_window: Duration,
    /// Restores allowed per [`restore_period`](Self::restore_period) (D1: 10).
    pub max_restores: u32,
    /// The period `max_restores` counts over (D1: 10 minutes).
    pub restore_period: Duration,
}

impl Default for D1Limits {
    fn default() -> Self {
        D1Limits {
            max_bound_parameters: 100,
            max_sql_length: 100_000,
            max_value_size: 2_000_000,
            max_columns: 100,
            max_function_args: 32,
            max_like_pattern: 50,
            query_timeout: Duration::from_secs(30),
            max_database_size: 10_000_000_000,
            max_result_size: 100_000_000,
            time_travel_window: Duration::from_secs(30 * 24 * 3600),
            max_restores: 10,
            restore_period: Duration::from_secs(600),
        }
    }
}

impl D1Limits {
    /// Applies the limits SQLite can enforce itself to `conn`. The time limit is the
    /// connection's progress handler; the size limit is `max_page_count`.
    pub(crate) fn apply(&self, conn: &Connection) -> rusqlite::Result<()> {
        let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        conn.set_limit(
            Limit::SQLITE_LIMIT_VARIABLE_NUMBER,
            clamp(self.max_bound_parameters),
        );
        conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, clamp(self.max_sql_length));
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, clamp(self.max_value_size));
        conn.set_limit(Limit::SQLITE_LIMIT_COLUMN, clamp(self.max_columns));
        conn.set_limit(
            Limit::SQLITE_LIMIT_FUNCTION_ARG,
            clamp(self.max_function_args),
        );
        conn.set_limit(
            Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
            clamp(self.max_like_pattern),
        );
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0);
        let page_size: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let max_pages = (self.max_database_size / page_size.max(1)).max(1);
        conn.query_row(&format!("PRAGMA max_page_count = {max_pages}"), [], |_| {
            Ok(())
        })?;
        Ok(())
    }
}
