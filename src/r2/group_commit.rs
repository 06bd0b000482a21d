//! Group commit for the R2 catalog: concurrent object writes share one redb write
//! transaction and its durable commit.
//!
//! redb has one writer at a time, so without this 64 concurrent small puts pay 64
//! flushes one after another. Here a request takes the writer's lock and applies its
//! rows to the open transaction (beginning one if there is none). If other requests are
//! queued for the lock, it leaves the transaction open for them instead of committing;
//! the last one in, or the one that fills the group, commits for all. A lone request
//! finds nobody queued and commits at once: nothing waits for company.
//!
//! Each request runs whole while it holds the lock, on the group's current state, so a
//! conditional put sees the writes of the requests before it in the group. Every member
//! is answered only once the commit holding its rows is durable, refusals included
//! (a failed `onlyIf` may depend on an earlier member's write).
//!
//! redb's savepoints cannot be taken once a transaction has written, so a request
//! cannot be undone alone. Requests therefore refuse before writing (a refusal is part
//! of their answer, not an error); an error from a request means it may have written
//! part of itself, and the whole group is abandoned: its transaction is aborted and
//! every member runs again alone, in a transaction of its own, so each result is the one
//! it would have had on its own. A failed commit (a full disk) is handled the same way.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use redb::WriteTransaction;

use super::catalog::OrR2;
use super::error::R2Error;
use super::store::Inner;
use crate::group_fate::Fate;

/// Requests one transaction may hold before it commits whoever is still waiting: bounds
/// the wait of the group's first request (and of writers outside groups, such as
/// multipart uploads, which wait for redb's lock meanwhile).
const MAX_GROUP: usize = 64;

/// The catalog's open group, if any, and how many requests wait to join it.
#[derive(Default)]
pub(crate) struct GroupWriter {
    queued: AtomicUsize,
    open: Mutex<Option<Group>>,
}

impl GroupWriter {
    fn lock(&self) -> MutexGuard<'_, Option<Group>> {
        // A request that panicked abandoned its group first: what is left is sound.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A write transaction holding the rows of `members` requests that wait for its commit.
struct Group {
    txn: WriteTransaction,
    fate: Arc<Fate>,
    members: usize,
}

impl Group {
    /// Commits and answers the members.
    fn commit(self, op: &'static str) -> Result<(), R2Error> {
        let committed = self.txn.commit();
        self.fate.settle(committed.is_ok());
        committed.or_r2(op)
    }

    /// Aborts the transaction and sends the members to run again alone.
    fn abandon(self) {
        // A failed abort leaves nothing to undo that dropping the transaction does not.
        let _ = self.txn.abort();
        self.fate.settle(false);
    }
}

impl Inner {
    /// Runs `work` on the catalog's write transaction as one atomic request and returns
    /// once its writes are durable. `work` refuses before writing anything, by returning
    /// a refusal inside `Ok` (as a failed precondition's `Ok(None)`); an `Err` means it
    /// may have written part of itself. `work` may run more than once (see the module's
    /// text), each time from the state it would see alone.
    pub(crate) fn write_grouped<T>(
        &self,
        op: &'static str,
        work: impl Fn(&WriteTransaction) -> Result<T, R2Error>,
    ) -> Result<T, R2Error> {
        let writer = &self.group_writer;
        writer.queued.fetch_add(1, Ordering::SeqCst);
        let mut open = writer.lock();
        writer.queued.fetch_sub(1, Ordering::SeqCst);
        let mut group = match open.take() {
            Some(group) => group,
            None => Group {
                txn: self.begin_write(op)?,
                fate: Arc::default(),
                members: 0,
            },
        };
        let answer = match std::panic::catch_unwind(AssertUnwindSafe(|| work(&group.txn))) {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                let alone = group.members == 0;
                group.abandon();
                drop(open);
                return if alone {
                    Err(e)
                } else {
                    self.write_alone(op, &work)
                };
            }
            Err(panic) => {
                group.abandon();
                std::panic::resume_unwind(panic)
            }
        };
        group.members += 1;
        let fate = Arc::clone(&group.fate);
        if group.members >= MAX_GROUP || writer.queued.load(Ordering::SeqCst) == 0 {
            // A failed commit is every member's to handle, this one's included.
            let _ = group.commit(op);
        } else {
            *open = Some(group);
        }
        drop(open);
        if fate.wait() {
            Ok(answer)
        } else {
            self.write_alone(op, &work)
        }
    }

    /// Runs `work` in a transaction no other request shares, committed at once.
    fn write_alone<T>(
        &self,
        op: &'static str,
        work: &impl Fn(&WriteTransaction) -> Result<T, R2Error>,
    ) -> Result<T, R2Error> {
        let mut open = self.group_writer.lock();
        if let Some(group) = open.take() {
            // Its members are applied and waiting: commit them rather than join them.
            let _ = group.commit(op);
        }
        let txn = self.begin_write(op)?;
        let answer = work(&txn)?;
        txn.commit().or_r2(op)?;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use redb::ReadableTable;

    use super::*;
    use crate::r2::catalog::objects_table;
    use crate::r2::R2Bucket;

    /// A bucket, and its request writing the raw row `key` of its objects table.
    fn bucket() -> (tempfile::TempDir, crate::Store, R2Bucket) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(dir.path()).unwrap();
        store.r2().create_bucket("group").unwrap();
        let bucket = store.r2().bucket("group").unwrap();
        (dir, store, bucket)
    }

    fn write_row(bucket: &R2Bucket, txn: &WriteTransaction, key: &str) -> Result<(), R2Error> {
        let mut table = txn.open_table(objects_table(&bucket.table)).or_r2("test")?;
        table
            .insert(key.as_bytes(), b"row".as_slice())
            .or_r2("test")?;
        Ok(())
    }

    fn has_row(bucket: &R2Bucket, key: &str) -> bool {
        let txn = bucket.inner.catalog.begin_read().unwrap();
        let table = txn.open_table(objects_table(&bucket.table)).unwrap();
        table.get(key.as_bytes()).unwrap().is_some()
    }

    /// Runs `first` (writing row `a`) so that it leaves its group open, then `second`
    /// in that group; returns what each answered and how often `first` ran.
    fn group_of_two(
        bucket: &R2Bucket,
        second: impl Fn(&WriteTransaction) -> Result<bool, R2Error>,
    ) -> (Result<(), R2Error>, Result<bool, R2Error>, usize) {
        let writer = &bucket.inner.group_writer;
        let runs = AtomicUsize::new(0);
        // A request that looks queued keeps the first one from committing alone.
        writer.queued.fetch_add(1, Ordering::SeqCst);
        std::thread::scope(|scope| {
            let first = scope.spawn(|| {
                bucket.inner.write_grouped("test", |txn| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    write_row(bucket, txn, "a")
                })
            });
            while writer.lock().as_ref().map(|g| g.members) != Some(1) {
                std::thread::sleep(Duration::from_millis(1));
            }
            writer.queued.fetch_sub(1, Ordering::SeqCst);
            let second = bucket.inner.write_grouped("test", second);
            (first.join().unwrap(), second, runs.load(Ordering::SeqCst))
        })
    }

    #[test]
    fn a_failing_member_abandons_the_group_and_the_others_run_again_alone() {
        let (_dir, _store, bucket) = bucket();
        let (first, second, runs) = group_of_two(&bucket, |txn| {
            write_row(&bucket, txn, "b")?;
            Err(R2Error::internal("test", "failed after writing"))
        });
        assert!(first.is_ok());
        assert!(second.is_err());
        assert_eq!(runs, 2, "the first request ran in the group, then alone");
        assert!(has_row(&bucket, "a"));
        assert!(
            !has_row(&bucket, "b"),
            "the failed request's write was kept"
        );
    }

    #[test]
    fn a_refusing_member_keeps_the_group() {
        let (_dir, _store, bucket) = bucket();
        let (first, second, runs) = group_of_two(&bucket, |txn| {
            // Sees the first member's row: the group's state, not the last commit's.
            let table = txn.open_table(objects_table(&bucket.table)).or_r2("test")?;
            let seen = table.get(b"a".as_slice()).or_r2("test")?.is_some();
            Ok(seen)
        });
        assert!(first.is_ok());
        assert!(
            second.unwrap(),
            "the second member did not see the first's row"
        );
        assert_eq!(runs, 1);
        assert!(has_row(&bucket, "a"));
    }
}
