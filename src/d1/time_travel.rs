//! Time Travel on a [`D1Database`]: the bookmark of a past moment, and restoring the
//! database in place to one.

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::bookmark::{self, TimeTravelError};
use super::database::D1Database;

/// What a restore answers, as D1's REST API does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restored {
    /// The bookmark of the database's state after the restore (a new point).
    pub bookmark: String,
    /// The bookmark of the state before it: restoring to it undoes the restore.
    pub previous_bookmark: String,
    /// A line for people.
    pub message: String,
}

impl D1Database {
    /// The bookmark of the database's state at `timestamp` (Unix seconds or RFC 3339):
    /// the point at or before it. `None` gives the current bookmark.
    pub fn bookmark_at(&self, timestamp: Option<&str>) -> Result<String, TimeTravelError> {
        let Some(text) = timestamp else {
            return Ok(self.bookmark());
        };
        let at = bookmark::parse_timestamp(text)?;
        let slot = self.lock_writer();
        let point = slot.history.resolve(at, text)?;
        Ok(bookmark::format(point, self.tag()))
    }

    /// Restores the database in place to the state named by `bookmark` or `timestamp`
    /// (exactly one). The restore is a commit like any other: a new point, undone by
    /// restoring to the returned `previous_bookmark`; every other point stays.
    pub fn restore(
        &self,
        bookmark: Option<&str>,
        timestamp: Option<&str>,
    ) -> Result<Restored, TimeTravelError> {
        let (at, asked) = match (bookmark, timestamp) {
            (Some(b), None) => (bookmark::parse(b, self.tag())?, b),
            (None, Some(t)) => (bookmark::parse_timestamp(t)?, t),
            _ => return Err(TimeTravelError::OneTarget),
        };
        let mut slot = self.lock_writer();
        let point = slot.history.resolve(at, asked)?;
        let limits = self.limits();
        slot.history
            .admit_restore(limits.max_restores, limits.restore_period)?;
        let previous_bookmark = self.bookmark();
        let scratch = slot.history.scratch();
        let copied = slot.history.reconstruct(point, &scratch).and_then(|()| {
            let past = rusqlite::Connection::open(&scratch).map_err(storage)?;
            let slot = &mut *slot;
            // Through the writer, so the restore is one transaction in its WAL and the
            // history logs it as the commit it is.
            rusqlite::backup::Backup::new(&past, &mut slot.conn.sqlite)
                .and_then(|b| b.step(-1).map(|_| ()))
                .map_err(storage)?;
            past.close().map_err(|(_, e)| storage(e))
        });
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", scratch.display()));
        }
        copied?;
        let size = slot.conn.size().map_err(storage)?;
        self.shared.size.store(size, Ordering::Relaxed);
        self.committed(&mut slot);
        Ok(Restored {
            bookmark: self.bookmark(),
            previous_bookmark,
            message: format!(
                "Restored database to {} (bookmark {})",
                bookmark::rfc3339(point),
                bookmark::format(point, self.tag())
            ),
        })
    }
}

fn storage(e: impl std::fmt::Display) -> TimeTravelError {
    TimeTravelError::Storage(format!("restoring: {e}"))
}
