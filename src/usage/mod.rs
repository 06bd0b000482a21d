//! Usage in Cloudflare's billing units, per UTC day and month, against the free tier.
//!
//! The emulator counts each operation it serves ([`Usage::record`]): D1 rows read and
//! written as `meta` reports them, Vectorize queried vector dimensions, R2 Class A and
//! Class B operations ([`R2Class`]). What is stored (D1 and R2 bytes, Vectorize stored
//! dimensions) is measured from the [`Store`] when a [`Report`] is made. Counts are kept
//! in `<data>/usage.json`, written atomically by [`Usage::flush`]; the emulator flushes
//! every second and on shutdown, so a crash loses at most the last second's counts
//! (billing counters, not data: see `docs/design.md`).
//!
//! Past an allowance the [`Policy`] decides: count only, warn once per allowance and
//! period, or refuse ([`Usage::admit`]) as Cloudflare's free plan does.

mod allowance;
mod report;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use allowance::{Allowance, FreeTier, Period, Policy};
pub use report::{Line, Report, Stored};

use crate::error::{Error, Result};
use crate::Store;

/// The file the counts live in, in the data directory.
pub const FILE: &str = "usage.json";

/// R2's operation classes (`r2/pricing`): Class A mutates or lists, Class B reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum R2Class {
    /// `PutObject`, `ListObjects`, `CopyObject`, multipart calls, bucket writes...
    A,
    /// `GetObject`, `HeadObject`, `HeadBucket`, bucket configuration reads.
    B,
    /// `DeleteObject`, `DeleteBucket`, `AbortMultipartUpload`.
    Free,
}

impl R2Class {
    /// The class of an S3 operation name (`PutObject`); `None` for names R2's pricing
    /// page does not list (those are not counted).
    pub fn of(operation: &str) -> Option<R2Class> {
        match operation {
            "ListBuckets"
            | "PutBucket"
            | "CreateBucket"
            | "ListObjects"
            | "ListObjectsV2"
            | "PutObject"
            | "CopyObject"
            | "CompleteMultipartUpload"
            | "CreateMultipartUpload"
            | "ListMultipartUploads"
            | "UploadPart"
            | "UploadPartCopy"
            | "ListParts"
            | "PutBucketEncryption"
            | "PutBucketCors"
            | "PutBucketLifecycleConfiguration" => Some(R2Class::A),
            "HeadBucket"
            | "HeadObject"
            | "GetObject"
            | "GetBucketEncryption"
            | "GetBucketLocation"
            | "GetBucketCors"
            | "GetBucketLifecycleConfiguration" => Some(R2Class::B),
            // R2 documents `DeleteObject`; `DeleteObjects` (one request, many keys) is
            // counted the same way, and the CORS / lifecycle deletes as the writes they are
            // not listed with are free too.
            "DeleteObject"
            | "DeleteObjects"
            | "DeleteBucket"
            | "AbortMultipartUpload"
            | "DeleteBucketCors"
            | "DeleteBucketLifecycle" => Some(R2Class::Free),
            _ => None,
        }
    }

    /// The allowance an operation of this class counts against.
    pub fn allowance(self) -> Option<Allowance> {
        match self {
            R2Class::A => Some(Allowance::R2ClassA),
            R2Class::B => Some(Allowance::R2ClassB),
            R2Class::Free => None,
        }
    }
}

/// What one operation costs, in billing units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Units {
    /// D1 rows read (`meta.rows_read`, summed over the statements).
    pub d1_rows_read: u64,
    /// D1 rows written (`meta.rows_written`).
    pub d1_rows_written: u64,
    /// Vectorize queried vector dimensions: the index's dimensions per query.
    pub vectorize_queried_dimensions: u64,
    /// An R2 operation's class.
    pub r2_class: Option<R2Class>,
}

impl Units {
    /// What D1 statements cost: their `meta` row counts, summed.
    pub fn d1(results: &[crate::d1::D1Result]) -> Units {
        Units {
            d1_rows_read: results.iter().map(|r| r.meta.rows_read).sum(),
            d1_rows_written: results.iter().map(|r| r.meta.rows_written).sum(),
            ..Units::default()
        }
    }

    /// What one Vectorize query of an index of `dimensions` costs.
    pub fn vectorize_query(dimensions: usize) -> Units {
        Units {
            vectorize_queried_dimensions: dimensions as u64,
            ..Units::default()
        }
    }
}

/// The counted quantities of one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    /// D1 rows read.
    pub d1_rows_read: u64,
    /// D1 rows written.
    pub d1_rows_written: u64,
    /// Vectorize queried vector dimensions.
    pub vectorize_queried_dimensions: u64,
    /// R2 Class A operations.
    pub r2_class_a: u64,
    /// R2 Class B operations.
    pub r2_class_b: u64,
}

impl Counts {
    fn add(&mut self, u: &Units) {
        self.d1_rows_read += u.d1_rows_read;
        self.d1_rows_written += u.d1_rows_written;
        self.vectorize_queried_dimensions += u.vectorize_queried_dimensions;
        match u.r2_class {
            Some(R2Class::A) => self.r2_class_a += 1,
            Some(R2Class::B) => self.r2_class_b += 1,
            Some(R2Class::Free) | None => {}
        }
    }

    /// The count an allowance is measured by; `None` for stored quantities.
    pub fn of(&self, allowance: Allowance) -> Option<u64> {
        Some(match allowance {
            Allowance::D1RowsRead => self.d1_rows_read,
            Allowance::D1RowsWritten => self.d1_rows_written,
            Allowance::VectorizeQueriedDimensions => self.vectorize_queried_dimensions,
            Allowance::R2ClassA => self.r2_class_a,
            Allowance::R2ClassB => self.r2_class_b,
            Allowance::D1Storage | Allowance::VectorizeStoredDimensions | Allowance::R2Storage => {
                return None
            }
        })
    }
}

/// What `usage.json` holds: the current day's and month's counts, and what was
/// stored when last measured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
struct Ledger {
    /// `YYYY-MM-DD`, UTC.
    day: String,
    /// `YYYY-MM`, UTC.
    month: String,
    today: Counts,
    this_month: Counts,
    stored: Stored,
    /// The free tier the emulator last ran with, for `tristore usage`.
    free_tier: FreeTier,
    /// The UTC date `day` names, so that most calls compare dates, not text.
    #[serde(skip)]
    date: Option<time::Date>,
}

impl Ledger {
    /// Starts a new day or month when `now` is past the ledger's.
    fn roll(&mut self, now: OffsetDateTime) {
        if self.date == Some(now.date()) {
            return;
        }
        self.date = Some(now.date());
        let (day, month) = period_keys(now);
        if self.month != month {
            self.month = month;
            self.this_month = Counts::default();
        }
        if self.day != day {
            self.day = day;
            self.today = Counts::default();
        }
    }

    /// What counts against an allowance: its period's count, or the stored amount.
    fn used(&self, allowance: Allowance) -> Option<u64> {
        match allowance.period() {
            Period::Day => self.today.of(allowance),
            Period::Month => self.this_month.of(allowance),
            Period::Stored => self.stored.of(allowance),
        }
    }

    fn period_key(&self, allowance: Allowance) -> &str {
        match allowance.period() {
            Period::Day => &self.day,
            Period::Month | Period::Stored => &self.month,
        }
    }
}

fn period_keys(now: OffsetDateTime) -> (String, String) {
    let date = now.date();
    (
        format!(
            "{:04}-{:02}-{:02}",
            date.year(),
            date.month() as u8,
            date.day()
        ),
        format!("{:04}-{:02}", date.year(), date.month() as u8),
    )
}

/// A request refused past an allowance, under [`Policy::Enforce`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// The allowance used up.
    pub allowance: Allowance,
    /// Its value.
    pub limit: u64,
}

impl Exceeded {
    /// The text the refused request carries.
    pub fn message(&self) -> String {
        self.allowance.refusal(self.limit)
    }
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// The counts of a data directory, and the free tier they are held to.
#[derive(Debug)]
pub struct Usage {
    path: PathBuf,
    tier: FreeTier,
    ledger: Mutex<Ledger>,
    dirty: AtomicBool,
    /// Held while [`Usage::flush`] writes.
    flushing: Mutex<()>,
    /// (allowance, period key) pairs already warned about.
    warned: Mutex<HashSet<(Allowance, String)>>,
}

impl Usage {
    /// The counts kept in `data_dir` (none yet if it has no [`FILE`]), held to `tier`.
    pub fn open(data_dir: &Path, tier: FreeTier) -> Result<Usage> {
        let usage = Usage::read(data_dir)?;
        usage.ledger(OffsetDateTime::now_utc()).free_tier = tier.clone();
        usage.dirty.store(true, Ordering::Release);
        Ok(Usage { tier, ..usage })
    }

    /// The counts kept in `data_dir`, held to the free tier the emulator last ran with.
    pub fn read(data_dir: &Path) -> Result<Usage> {
        let path = data_dir.join(FILE);
        let ledger: Ledger = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                let message = format!("{e}; move the file away to start counting again");
                Error::io("reading", &path)(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    message,
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ledger::default(),
            Err(e) => return Err(Error::io("reading", &path)(e)),
        };
        Ok(Usage {
            path,
            tier: ledger.free_tier.clone(),
            ledger: Mutex::new(ledger),
            dirty: AtomicBool::new(false),
            flushing: Mutex::new(()),
            warned: Mutex::new(HashSet::new()),
        })
    }

    /// The free tier these counts are held to.
    pub fn free_tier(&self) -> &FreeTier {
        &self.tier
    }

    fn ledger(&self, now: OffsetDateTime) -> MutexGuard<'_, Ledger> {
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        ledger.roll(now);
        ledger
    }

    /// Adds one operation's units; warns (under `Warn` and `Enforce`) the first time
    /// a count passes its allowance in a period.
    pub fn record(&self, units: &Units) {
        self.record_at(units, OffsetDateTime::now_utc());
    }

    fn record_at(&self, units: &Units, now: OffsetDateTime) {
        if *units == Units::default() {
            return;
        }
        let mut ledger = self.ledger(now);
        ledger.today.add(units);
        ledger.this_month.add(units);
        self.dirty.store(true, Ordering::Release);
        self.warn_past_allowances(ledger);
    }

    /// Logs each allowance used past its limit, once per period.
    fn warn_past_allowances(&self, ledger: MutexGuard<'_, Ledger>) {
        if self.tier.policy == Policy::Count {
            return;
        }
        let crossed: Vec<_> = Allowance::ALL
            .into_iter()
            .filter(|&a| {
                ledger
                    .used(a)
                    .is_some_and(|used| used >= self.tier.limit(a))
            })
            .map(|a| (a, ledger.period_key(a).to_owned()))
            .collect();
        drop(ledger);
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        for key in crossed {
            let allowance = key.0;
            if warned.insert(key) {
                tracing::warn!(
                    target: "tristore::usage",
                    allowance = allowance.name(),
                    limit = self.tier.limit(allowance),
                    "past the free tier's allowance of {} {} {}; `tristore usage` shows every allowance",
                    allowance::thousands(self.tier.limit(allowance)),
                    allowance.service(),
                    allowance.label(),
                );
            }
        }
    }

    /// Under [`Policy::Enforce`], refuses an operation that counts against one of
    /// `allowances` once that allowance is used up (stored quantities are reported and
    /// warned about, not enforced: see `docs/compatibility.md`).
    pub fn admit(&self, allowances: &[Allowance]) -> std::result::Result<(), Exceeded> {
        if self.tier.policy != Policy::Enforce || allowances.is_empty() {
            return Ok(());
        }
        let ledger = self.ledger(OffsetDateTime::now_utc());
        for &allowance in allowances {
            let limit = self.tier.limit(allowance);
            let counted = allowance.period() != Period::Stored;
            if counted && ledger.used(allowance).is_some_and(|used| used >= limit) {
                return Err(Exceeded { allowance, limit });
            }
        }
        Ok(())
    }

    /// Today's and this month's counts.
    pub fn counts(&self) -> (Counts, Counts) {
        let ledger = self.ledger(OffsetDateTime::now_utc());
        (ledger.today, ledger.this_month)
    }

    /// Writes the counts to [`FILE`] if they changed since the last flush.
    pub fn flush(&self) -> Result<()> {
        // One writer at a time: two would share the temporary file, and the second
        // rename would find it gone (the emulator's last flush at shutdown can meet a
        // periodic one still running).
        let _writing = self.flushing.lock().unwrap_or_else(|p| p.into_inner());
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let json = {
            let ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
            serde_json::to_vec_pretty(&*ledger).expect("counts serialize")
        };
        crate::fsutil::write_durable(&self.path, &json).inspect_err(|_| {
            self.dirty.store(true, Ordering::Release);
        })
    }

    /// Measures what `store` holds now, keeps it for [`Usage::saved_report`], and warns
    /// (under `Warn` and `Enforce`) about a stored amount past its allowance.
    pub fn measure(&self, store: &Store) -> Result<()> {
        let now = OffsetDateTime::now_utc();
        let stored = Stored::measure(store, now)?;
        let mut ledger = self.ledger(now);
        ledger.stored = stored;
        self.dirty.store(true, Ordering::Release);
        self.warn_past_allowances(ledger);
        Ok(())
    }

    /// Every allowance: what was used today and this month, and what is stored in
    /// `store` now.
    pub fn report(&self, store: &Store) -> Result<Report> {
        self.measure(store)?;
        Ok(self.saved_report())
    }

    /// The report with the stored amounts as last measured (what `tristore usage`
    /// shows while the emulator holds the data directory).
    pub fn saved_report(&self) -> Report {
        let ledger = self.ledger(OffsetDateTime::now_utc());
        Report::make(
            &self.tier,
            &ledger.day,
            &ledger.month,
            ledger.today,
            ledger.this_month,
            &ledger.stored,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn d1(read: u64, written: u64) -> Units {
        Units {
            d1_rows_read: read,
            d1_rows_written: written,
            ..Units::default()
        }
    }

    #[test]
    fn days_and_months_start_again_at_midnight_utc() {
        let dir = tempfile::tempdir().unwrap();
        let usage = Usage::open(dir.path(), FreeTier::default()).unwrap();
        let class_a = Units {
            r2_class: Some(R2Class::A),
            ..Units::default()
        };
        usage.record_at(&d1(10, 1), datetime!(2026-11-30 23:59 UTC));
        usage.record_at(&class_a, datetime!(2026-11-30 23:59 UTC));
        usage.record_at(&d1(5, 0), datetime!(2026-11-30 23:59:59 UTC));
        usage.record_at(&class_a, datetime!(2026-12-01 00:00 UTC));
        usage.record_at(&d1(7, 2), datetime!(2026-12-01 00:00 UTC));
        let ledger = usage.ledger(datetime!(2026-12-01 01:00 UTC)).clone();
        assert_eq!(
            (ledger.day.as_str(), ledger.month.as_str()),
            ("2026-12-01", "2026-12")
        );
        assert_eq!(ledger.today, ledger.this_month);
        assert_eq!(
            ledger.today,
            Counts {
                d1_rows_read: 7,
                d1_rows_written: 2,
                r2_class_a: 1,
                ..Counts::default()
            }
        );
        usage.record_at(&d1(1, 0), datetime!(2026-12-02 00:00 UTC));
        let ledger = usage.ledger(datetime!(2026-12-02 00:00 UTC)).clone();
        assert_eq!(ledger.today.d1_rows_read, 1);
        assert_eq!(ledger.this_month.d1_rows_read, 8);
        assert_eq!(ledger.this_month.r2_class_a, 1);
    }

    #[test]
    fn flushes_racing_each_other_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let usage = Usage::open(dir.path(), FreeTier::default()).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..50 {
                        usage.record(&d1(1, 0));
                        usage.flush().unwrap();
                    }
                });
            }
        });
        let again = Usage::open(dir.path(), FreeTier::default()).unwrap();
        assert_eq!(again.counts().0.d1_rows_read, 200);
    }

    #[test]
    fn counts_survive_a_flush_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let usage = Usage::open(dir.path(), FreeTier::default()).unwrap();
        usage.record(&d1(3, 4));
        usage.flush().unwrap();
        let again = Usage::open(dir.path(), FreeTier::default()).unwrap();
        assert_eq!(again.counts(), usage.counts());
        assert_eq!(again.counts().0.d1_rows_written, 4);
    }

    #[test]
    fn enforcement_refuses_once_an_allowance_is_used_up() {
        let dir = tempfile::tempdir().unwrap();
        let tier = FreeTier {
            policy: Policy::Enforce,
            overrides: [(Allowance::D1RowsWritten, 5)].into(),
        };
        let usage = Usage::open(dir.path(), tier).unwrap();
        let d1_allowances = [Allowance::D1RowsRead, Allowance::D1RowsWritten];
        usage.record(&d1(0, 4));
        assert_eq!(usage.admit(&d1_allowances), Ok(()));
        usage.record(&d1(0, 1));
        let refused = usage.admit(&d1_allowances).unwrap_err();
        assert_eq!(refused.allowance, Allowance::D1RowsWritten);
        assert!(refused.message().contains("daily row write limit"));
        assert_eq!(usage.admit(&[Allowance::R2ClassA]), Ok(()));
    }

    #[test]
    fn r2_operations_are_classed_as_the_pricing_page_lists_them() {
        assert_eq!(R2Class::of("PutObject"), Some(R2Class::A));
        assert_eq!(R2Class::of("ListObjectsV2"), Some(R2Class::A));
        assert_eq!(R2Class::of("GetObject"), Some(R2Class::B));
        assert_eq!(R2Class::of("HeadBucket"), Some(R2Class::B));
        assert_eq!(R2Class::of("DeleteObject"), Some(R2Class::Free));
        assert_eq!(R2Class::of("AbortMultipartUpload"), Some(R2Class::Free));
        assert_eq!(R2Class::of("GetObjectAcl"), None);
    }
}
