//! Group commit: concurrent writes to one database share a transaction and its fsync.
//!
//! The one writer connection applies requests one at a time. A request that finds
//! others queued for the writer leaves its transaction open for them rather than
//! committing; the last one in (or the one that fills the group) commits for all. The
//! first request of a group runs in the transaction itself, each later one inside a
//! SAVEPOINT of its own, so a failing request rolls back alone and the others keep
//! their writes. Every request is answered only once the commit holding its writes is
//! durable (WAL with `synchronous=FULL`), errors included, since an error may depend on
//! writes of the same group.
//!
//! Two things can take a whole group down: its COMMIT failing (a full disk, deferred
//! foreign keys are checked per request before that), and a request's failure that
//! SQLite answers by rolling back the entire transaction (an interrupted write,
//! `INSERT OR ROLLBACK`, `RAISE(ROLLBACK)`, an I/O error). Then every request of the
//! group runs again alone, in a transaction of its own, so each result is the one it
//! would have had on its own.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::connection::{Conn, Own};
use super::database::{D1Database, Writer};
use super::error::D1Error;
use super::history::History;
use crate::group_fate::Fate;

/// Requests one transaction may hold before it commits whoever is still waiting: bounds
/// the wait of the group's first request.
const MAX_GROUP: usize = 64;

/// The writer connection and the group of requests its open transaction holds.
pub(crate) struct WriterSlot {
    /// Before `conn`, so that it syncs its log before the writer's closing checkpoint.
    pub(crate) history: History,
    pub(crate) conn: Conn,
    group: Option<Group>,
}

impl WriterSlot {
    pub(super) fn new(conn: Conn, history: History) -> Self {
        WriterSlot {
            history,
            conn,
            group: None,
        }
    }
}

/// Requests applied in the open transaction and waiting for its commit.
struct Group {
    fate: Arc<Fate>,
    members: usize,
    /// `last_row_id` and size after the latest member: where the next member starts,
    /// and what the database reports once the group commits.
    last_row_id: i64,
    size: u64,
}

/// How applying one request to the writer ended.
enum Applied<T> {
    /// No other request's writes were in its transaction, which is closed: the answer.
    Done(Result<T, D1Error>),
    /// In the open group: the answer holds if the group commits.
    Joined(Result<T, D1Error>),
    /// SQLite rolled back the group's transaction while the request ran.
    GroupLost,
}

impl D1Database {
    /// Runs `work` on the writer as one atomic request and returns once its writes are
    /// durable. `work` may run more than once (see the module's text), each time from
    /// the state it would see alone.
    pub(crate) fn write<T>(
        &self,
        work: impl Fn(&Writer<'_>) -> Result<T, D1Error>,
    ) -> Result<T, D1Error> {
        let shared = &self.shared;
        shared.queued.fetch_add(1, Ordering::SeqCst);
        let mut slot = self.lock_slot();
        shared.queued.fetch_sub(1, Ordering::SeqCst);
        let answer = match self.apply(&mut slot, &work) {
            Applied::Done(answer) => return answer,
            Applied::GroupLost => {
                drop(slot);
                return self.write_alone(&work);
            }
            Applied::Joined(answer) => answer,
        };
        let group = slot.group.as_ref().expect("the request joined it");
        let fate = Arc::clone(&group.fate);
        if group.members >= MAX_GROUP || shared.queued.load(Ordering::SeqCst) == 0 {
            // A failed commit is every member's to handle, this one's included.
            let _ = self.commit_group(&mut slot);
        }
        drop(slot);
        if fate.wait() {
            answer
        } else {
            self.write_alone(&work)
        }
    }

    /// Runs `work` in a transaction no other request shares, committed at once.
    fn write_alone<T>(
        &self,
        work: &impl Fn(&Writer<'_>) -> Result<T, D1Error>,
    ) -> Result<T, D1Error> {
        let mut slot = self.lock_writer();
        match self.apply(&mut slot, work) {
            Applied::Done(answer) => answer,
            Applied::Joined(answer) => self.commit_group(&mut slot).and(answer),
            Applied::GroupLost => unreachable!("a request alone is its group's first"),
        }
    }

    /// Applies one request in the open group's transaction, or in a new one.
    fn apply<T>(
        &self,
        slot: &mut WriterSlot,
        work: &impl Fn(&Writer<'_>) -> Result<T, D1Error>,
    ) -> Applied<T> {
        let shared = &self.shared;
        let first = slot.group.is_none();
        let (last_row_id, size) = match &slot.group {
            Some(group) => (group.last_row_id, group.size),
            None => (
                shared.last_row_id.load(Ordering::Relaxed),
                shared.size.load(Ordering::Relaxed),
            ),
        };
        let conn = &slot.conn;
        conn.arm(shared.limits.query_timeout, self.interrupt.as_ref());
        let writer = Writer::new(conn, last_row_id, size);
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
            conn.own(if first { Own::Begin } else { Own::Savepoint })?;
            let value = work(&writer)?;
            // A deferred foreign key still violated would fail the commit, and with it
            // every request of the group: it fails this request instead, as its own
            // commit would have.
            if conn.deferred_violations() {
                return Err(D1Error::query(
                    "FOREIGN KEY constraint failed",
                    "SQLITE_CONSTRAINT",
                ));
            }
            Ok(value)
        }));
        conn.disarm();
        let (last_row_id_after, size_after) = writer.after();
        let answer = match ran {
            Ok(answer) => answer,
            Err(panic) => {
                self.roll_back_group(slot);
                std::panic::resume_unwind(panic)
            }
        };
        let conn = &slot.conn;
        if conn.sqlite.is_autocommit() {
            self.roll_back_group(slot);
            return if first {
                // Only a failure ends the transaction early (user SQL cannot COMMIT).
                Applied::Done(answer.and_then(|_| Err(transaction_ended())))
            } else {
                Applied::GroupLost
            };
        }
        let kept = match &answer {
            Ok(_) if first => Ok(()),
            Ok(_) => conn.own(Own::Release),
            Err(_) if first => {
                self.roll_back_group(slot);
                return Applied::Done(answer);
            }
            Err(_) => conn
                .own(Own::RollbackTo)
                .and_then(|()| conn.own(Own::Release))
                .map(|()| conn.restore_last_row_id(last_row_id)),
        };
        if kept.is_err() {
            self.roll_back_group(slot);
            return Applied::GroupLost;
        }
        let (last_row_id, size) = match answer {
            Ok(_) => (last_row_id_after, size_after),
            Err(_) => (last_row_id, size),
        };
        match &mut slot.group {
            Some(group) => {
                group.members += 1;
                group.last_row_id = last_row_id;
                group.size = size;
            }
            None => {
                slot.group = Some(Group {
                    fate: Arc::default(),
                    members: 1,
                    last_row_id,
                    size,
                })
            }
        }
        Applied::Joined(answer)
    }

    /// Commits the open group, if any, and answers its requests; on failure rolls it
    /// back (they run again alone) and returns the commit's error.
    pub(super) fn commit_group(&self, slot: &mut WriterSlot) -> Result<(), D1Error> {
        let Some(group) = slot.group.take() else {
            return Ok(());
        };
        match slot.conn.own(Own::Commit) {
            Ok(()) => {
                self.shared.size.store(group.size, Ordering::Relaxed);
                self.shared
                    .last_row_id
                    .store(group.last_row_id, Ordering::Relaxed);
                self.committed(slot);
                group.fate.settle(true);
                Ok(())
            }
            Err(e) => {
                slot.group = Some(group);
                self.roll_back_group(slot);
                Err(e.into())
            }
        }
    }

    /// Rolls back the open transaction, if SQLite has not already, and tells the
    /// group's requests to run again alone.
    fn roll_back_group(&self, slot: &mut WriterSlot) {
        let conn = &slot.conn;
        if !conn.sqlite.is_autocommit() {
            // A failed ROLLBACK leaves nothing better to do; the next BEGIN reports it.
            let _ = conn.own(Own::Rollback);
        }
        conn.restore_last_row_id(self.shared.last_row_id.load(Ordering::Relaxed));
        if let Some(group) = slot.group.take() {
            group.fate.settle(false);
        }
    }
}

fn transaction_ended() -> D1Error {
    D1Error::query(
        "The write's transaction ended before it committed; nothing it wrote was kept",
        "SQLITE_ABORT",
    )
}
