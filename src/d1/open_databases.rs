//! The D1 databases a store keeps open: the most recently used, up to a cap, and any a
//! caller still holds a handle to, so that no database is ever open twice at once (two
//! writers would each keep their own `last_row_id`, size and bookmark).

use std::collections::{HashMap, VecDeque};
use std::sync::Weak;

use super::database::{D1Database, Shared};

pub(crate) struct OpenDatabases {
    cap: usize,
    /// Kept open by the store, least recently used first.
    recent: VecDeque<(String, D1Database)>,
    /// Every database open anywhere: kept here or by a caller's handle.
    live: HashMap<String, Weak<Shared>>,
}

impl OpenDatabases {
    /// Keeps at most `cap` databases open beyond those callers hold.
    pub(crate) fn new(cap: usize) -> Self {
        OpenDatabases {
            cap,
            recent: VecDeque::new(),
            live: HashMap::new(),
        }
    }

    /// The database `key` if it is open, now the most recently used; and the handles
    /// this pushed out, for the caller to drop once it has let go of `self` (closing a
    /// database checkpoints its WAL, which should not hold up every other lookup).
    pub(crate) fn get(&mut self, key: &str) -> (Option<D1Database>, Vec<D1Database>) {
        if let Some(at) = self.recent.iter().position(|(k, _)| k == key) {
            let entry = self.recent.remove(at).expect("found above");
            let db = entry.1.clone();
            self.recent.push_back(entry);
            return (Some(db), Vec::new());
        }
        match self.peek(key) {
            Some(db) => {
                let evicted = self.keep(key, db.clone());
                (Some(db), evicted)
            }
            None => (None, Vec::new()),
        }
    }

    /// The database `key` if anything holds it open, without counting this as a use.
    pub(crate) fn peek(&self, key: &str) -> Option<D1Database> {
        self.live.get(key).and_then(D1Database::upgrade)
    }

    /// Keeps a database just opened, as the most recently used; returns the handles
    /// pushed out (see [`get`](Self::get)).
    pub(crate) fn keep(&mut self, key: &str, db: D1Database) -> Vec<D1Database> {
        self.track(key, &db);
        self.recent.push_back((key.to_owned(), db));
        let excess = self.recent.len().saturating_sub(self.cap);
        self.recent.drain(..excess).map(|(_, db)| db).collect()
    }

    /// Records a database opened for a moment (to read its size), so that a caller who
    /// asks for it meanwhile shares it instead of opening it a second time.
    pub(crate) fn track(&mut self, key: &str, db: &D1Database) {
        // Forget databases nobody holds any more, in amortised constant time.
        if self.live.len() >= 2 * self.cap + 16 {
            self.live.retain(|_, weak| weak.strong_count() > 0);
        }
        self.live.insert(key.to_owned(), db.downgrade());
    }

    /// Forgets `key` (its database was deleted); handles still held keep it open.
    pub(crate) fn remove(&mut self, key: &str) -> Option<D1Database> {
        self.live.remove(key);
        let at = self.recent.iter().position(|(k, _)| k == key)?;
        self.recent.remove(at).map(|(_, db)| db)
    }
}
