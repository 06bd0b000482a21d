//! What `tristore usage` prints and `GET /cdn-cgi/tristore/usage` answers.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::allowance::thousands;
use super::{Allowance, Counts, FreeTier, Period, Policy};
use crate::error::Result;
use crate::r2::R2ListOptions;
use crate::Store;

/// What the store held when last measured, in billing units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// When it was measured (RFC 3339, UTC).
    pub measured_at: String,
    /// Bytes of every D1 database file.
    pub d1_bytes: u64,
    /// Vectors times dimensions, over every index.
    pub vectorize_dimensions: u64,
    /// Bytes of every R2 object.
    pub r2_bytes: u64,
}

impl Stored {
    /// Sums every database file, index and object (R2 bills object sizes, not the
    /// deduplicated blobs on disk).
    pub(super) fn measure(store: &Store, now: time::OffsetDateTime) -> Result<Stored> {
        let d1_bytes = store.d1().list()?.iter().map(|d| d.file_size).sum();
        let mut vectorize_dimensions = 0;
        for index in store.vectorize().list()? {
            let count = store
                .vectorize()
                .index(&index.name)?
                .describe()
                .vector_count;
            vectorize_dimensions += (count * index.config.dimensions) as u64;
        }
        let mut r2_bytes = 0;
        for bucket in store.r2().list_buckets()? {
            let bucket = store.r2().bucket(&bucket.name)?;
            let mut options = R2ListOptions::default();
            loop {
                let page = bucket.list(&options)?;
                r2_bytes += page.objects.iter().map(|o| o.size).sum::<u64>();
                match page.cursor.filter(|_| page.truncated) {
                    Some(cursor) => options.cursor = Some(cursor),
                    None => break,
                }
            }
        }
        Ok(Stored {
            measured_at: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            d1_bytes,
            vectorize_dimensions,
            r2_bytes,
        })
    }

    pub(super) fn of(&self, allowance: Allowance) -> Option<u64> {
        match allowance {
            Allowance::D1Storage => Some(self.d1_bytes),
            Allowance::VectorizeStoredDimensions => Some(self.vectorize_dimensions),
            Allowance::R2Storage => Some(self.r2_bytes),
            _ => None,
        }
    }
}

/// One allowance in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// `d1`, `vectorize` or `r2`.
    pub service: String,
    /// The allowance's name (`d1-rows-read`).
    pub allowance: Allowance,
    /// What is counted (`rows read`).
    pub label: String,
    /// Over what the allowance is measured.
    pub period: Period,
    /// Counted today (`None` for stored quantities).
    pub today: Option<u64>,
    /// Counted this month (`None` for stored quantities).
    pub this_month: Option<u64>,
    /// Stored now (`None` for counted quantities).
    pub stored: Option<u64>,
    /// What counts against the allowance: today's, this month's, or the stored amount.
    pub used: u64,
    /// The allowance.
    pub limit: u64,
    /// `used` as a percentage of `limit`.
    pub percent: f64,
}

/// Every allowance, used and left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The UTC day counted (`YYYY-MM-DD`).
    pub day: String,
    /// The UTC month counted (`YYYY-MM`).
    pub month: String,
    /// `count`, `warn` or `enforce`.
    pub policy: String,
    /// When the stored amounts were measured (RFC 3339).
    pub stored_measured_at: String,
    /// One line per allowance.
    pub allowances: Vec<Line>,
}

impl Report {
    pub(super) fn make(
        tier: &FreeTier,
        day: &str,
        month: &str,
        today: Counts,
        this_month: Counts,
        stored: &Stored,
    ) -> Report {
        let allowances = Allowance::ALL
            .into_iter()
            .map(|allowance| {
                let (today, this_month, stored) = (
                    today.of(allowance),
                    this_month.of(allowance),
                    stored.of(allowance),
                );
                let used = match allowance.period() {
                    Period::Day => today,
                    Period::Month => this_month,
                    Period::Stored => stored,
                }
                .unwrap_or(0);
                let limit = tier.limit(allowance);
                Line {
                    service: allowance.service().to_owned(),
                    allowance,
                    label: allowance.label().to_owned(),
                    period: allowance.period(),
                    today,
                    this_month,
                    stored,
                    used,
                    limit,
                    percent: if limit == 0 {
                        100.0
                    } else {
                        used as f64 * 100.0 / limit as f64
                    },
                }
            })
            .collect();
        Report {
            day: day.to_owned(),
            month: month.to_owned(),
            policy: match tier.policy {
                Policy::Count => "count",
                Policy::Warn => "warn",
                Policy::Enforce => "enforce",
            }
            .to_owned(),
            stored_measured_at: stored.measured_at.clone(),
            allowances,
        }
    }
}

/// The table `tristore usage` prints.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = [
            "service",
            "what",
            "today",
            "this month",
            "stored",
            "free tier",
            "used",
        ];
        let number = |n: Option<u64>| n.map_or_else(|| "-".to_owned(), thousands);
        let rows: Vec<[String; 7]> = self
            .allowances
            .iter()
            .map(|l| {
                let per = match l.period {
                    Period::Day => " a day",
                    Period::Month => " a month",
                    Period::Stored => "",
                };
                [
                    l.service.clone(),
                    l.label.clone(),
                    number(l.today),
                    number(l.this_month),
                    number(l.stored),
                    format!("{}{per}", thousands(l.limit)),
                    format!("{:.1}%", l.percent),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        writeln!(
            f,
            "Usage on {} (month {}, UTC) against Cloudflare's free tier; past an allowance: {}",
            self.day, self.month, self.policy
        )?;
        writeln!(f, "Stored amounts measured at {}", self.stored_measured_at)?;
        let line = |f: &mut fmt::Formatter<'_>, cells: &[&str]| -> fmt::Result {
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                // Text columns align left, numbers right.
                if i < 2 {
                    write!(f, "{cell:<w$}  ")?;
                } else {
                    write!(f, "{cell:>w$}  ")?;
                }
            }
            writeln!(f)
        };
        line(f, &header)?;
        for row in &rows {
            line(f, &row.each_ref().map(String::as_str))?;
        }
        Ok(())
    }
}
