//! The one-shot answer a group commit gives its members: whether the transaction
//! holding their writes committed. Shared by D1's and R2's group commit.

use std::sync::{Condvar, Mutex};

/// Whether a group committed (`Some(true)`) or was abandoned (`Some(false)`).
#[derive(Default)]
pub(crate) struct Fate {
    settled: Mutex<Option<bool>>,
    done: Condvar,
}

impl Fate {
    pub(crate) fn settle(&self, committed: bool) {
        *self.settled.lock().unwrap_or_else(|p| p.into_inner()) = Some(committed);
        self.done.notify_all();
    }

    /// Blocks until the group is settled; `true` if it committed.
    pub(crate) fn wait(&self) -> bool {
        let mut settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(committed) = *settled {
                return committed;
            }
            settled = self.done.wait(settled).unwrap_or_else(|p| p.into_inner());
        }
    }
}
