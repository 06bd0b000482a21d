//! Stopping a request's work from outside, as its time limit does from inside.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A switch that stops the D1 work of one request: once set, the statement running on
/// a handle made by [`D1Database::interruptible`](super::D1Database::interruptible) is
/// interrupted, no further statement starts, and a write rolls back, as when the time
/// limit passes. A server sets it when its client goes away.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// A switch not yet set.
    pub fn new() -> Self {
        Interrupt::default()
    }

    /// Stops the work; it fails with `SQLITE_INTERRUPT`.
    pub fn interrupt(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`interrupt`](Self::interrupt) was called.
    pub fn is_interrupted(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// A guard that sets this switch when dropped. Kept in a request's future, it stops
    /// the blocking work the request started when the future is dropped (as hyper does
    /// when the client goes away); once the work is done, setting it changes nothing.
    pub fn on_drop(&self) -> InterruptOnDrop {
        InterruptOnDrop(self.clone())
    }
}

/// See [`Interrupt::on_drop`].
#[derive(Debug)]
#[must_use = "the guard interrupts when dropped"]
pub struct InterruptOnDrop(Interrupt);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        self.0.interrupt();
    }
}
