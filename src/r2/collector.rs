//! Housekeeping of R2's storage: each bucket's lifecycle rules are applied (R2's
//! default rule aborts uploads after 7 days), then blobs nothing references are
//! collected; once on demand (`tristore gc`), or periodically on a thread of its own
//! while the emulator runs.

use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::error::R2Error;
use super::lifecycle::LifecycleReport;
use super::store::{GcReport, R2Store};

/// What housekeeping removes, and how often the [`Collector`] runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Housekeeping {
    /// Time between two runs of the collector (the first runs when it starts).
    pub interval: Duration,
    /// Unreferenced blobs younger than this are kept: a reader may still be about to
    /// open one (see [`R2Store::gc`]).
    pub grace: Duration,
    /// Apply each bucket's lifecycle rules: expirations, transitions and upload aborts,
    /// R2's default rule (abort after 7 days) for a bucket that never set any.
    pub lifecycle: bool,
    /// Besides the rules, abort every multipart upload started this long ago, in every
    /// bucket: a ceiling for the whole emulator, to keep a disk from filling up.
    pub upload_expiry: Option<Duration>,
}

impl Default for Housekeeping {
    /// Every 10 minutes; a grace period of an hour; the buckets' own lifecycle rules.
    fn default() -> Self {
        Housekeeping {
            interval: Duration::from_secs(10 * 60),
            grace: Duration::from_secs(60 * 60),
            lifecycle: true,
            upload_expiry: None,
        }
    }
}

/// What one run of housekeeping did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HousekeepingReport {
    /// What the buckets' lifecycle rules removed or moved.
    #[serde(flatten)]
    pub lifecycle: LifecycleReport,
    /// Multipart uploads aborted because they were older than
    /// [`Housekeeping::upload_expiry`].
    pub expired_uploads: usize,
    /// The collection that followed.
    #[serde(flatten)]
    pub gc: GcReport,
}

impl R2Store {
    /// Applies the lifecycle rules and expires old uploads, then collects garbage: what
    /// the first steps removed goes in the same run when its blobs are past the grace
    /// period.
    ///
    /// Each step is announced at debug level before it starts, so that a log shows
    /// which step a process was in when it died (`tests/r2_crash.rs` relies on it).
    pub fn housekeep(&self, what: &Housekeeping) -> Result<HousekeepingReport, R2Error> {
        let lifecycle = if what.lifecycle {
            step("lifecycle");
            self.apply_lifecycle(SystemTime::now())?
        } else {
            LifecycleReport::default()
        };
        let expired_uploads = match what.upload_expiry {
            Some(age) => {
                step("expire_uploads");
                self.expire_uploads(age)?
            }
            None => 0,
        };
        step("gc");
        let gc = self.gc(what.grace)?;
        Ok(HousekeepingReport {
            lifecycle,
            expired_uploads,
            gc,
        })
    }
}

/// Runs [`R2Store::housekeep`] every [`Housekeeping::interval`] on a thread of its own,
/// logging what each run removed, until dropped. Dropping it lets a run in progress
/// finish first.
pub struct Collector {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    /// Starts collecting in `r2`, with a first run right away (garbage left by an
    /// earlier process counts too).
    pub fn start(r2: R2Store, what: Housekeeping) -> std::io::Result<Collector> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tristore-r2-gc".into())
            .spawn(move || loop {
                match r2.housekeep(&what) {
                    Ok(done) => log(&done),
                    Err(e) => tracing::warn!(target: "tristore::r2", "housekeeping failed: {e}"),
                }
                if stopped.recv_timeout(what.interval) != Err(mpsc::RecvTimeoutError::Timeout) {
                    return;
                }
            })?;
        Ok(Collector {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        // Closing the channel is the signal; the thread notices between two runs.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn step(name: &'static str) {
    tracing::debug!(target: "tristore::r2", step = name, "housekeeping step");
}

/// The end of a run: at info level when it removed something, else at debug.
fn log(done: &HousekeepingReport) {
    let gc = &done.gc;
    let rules = &done.lifecycle;
    macro_rules! report {
        ($level:expr) => {
            tracing::event!(
                target: "tristore::r2",
                $level,
                expired_objects = rules.expired_objects,
                transitioned_objects = rules.transitioned_objects,
                aborted_uploads = rules.aborted_uploads,
                expired_uploads = done.expired_uploads,
                deleted_blobs = gc.deleted_blobs,
                deleted_bytes = gc.deleted_bytes,
                deleted_temp_files = gc.deleted_temp_files,
                live_blobs = gc.live_blobs,
                "housekeeping done"
            )
        };
    }
    let removed = rules.expired_objects + rules.transitioned_objects + rules.aborted_uploads;
    if removed + done.expired_uploads + gc.deleted_blobs + gc.deleted_temp_files == 0 {
        report!(tracing::Level::DEBUG);
    } else {
        report!(tracing::Level::INFO);
    }
}
