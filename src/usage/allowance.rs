//! The free tier's allowances, and what happens past one.
//!
//! Values from Cloudflare's pricing pages (D1 `d1/platform/pricing`, Vectorize
//! `vectorize/platform/pricing`, R2 `r2/pricing`); see `docs/compatibility.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One allowance of the free tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Allowance {
    /// D1 rows read per day (UTC).
    D1RowsRead,
    /// D1 rows written per day (UTC).
    D1RowsWritten,
    /// Bytes of all D1 databases.
    D1Storage,
    /// Vectorize queried vector dimensions per month.
    VectorizeQueriedDimensions,
    /// Vectorize stored vector dimensions.
    VectorizeStoredDimensions,
    /// R2 Class A operations per month.
    R2ClassA,
    /// R2 Class B operations per month.
    R2ClassB,
    /// Bytes of all R2 objects.
    R2Storage,
}

/// Over what an allowance is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// A UTC day; the count starts again at midnight UTC.
    Day,
    /// A UTC calendar month.
    Month,
    /// What is stored now.
    Stored,
}

impl Allowance {
    /// Every allowance, in report order.
    pub const ALL: [Allowance; 8] = [
        Allowance::D1RowsRead,
        Allowance::D1RowsWritten,
        Allowance::D1Storage,
        Allowance::VectorizeQueriedDimensions,
        Allowance::VectorizeStoredDimensions,
        Allowance::R2ClassA,
        Allowance::R2ClassB,
        Allowance::R2Storage,
    ];

    /// The name `--free-tier-allowance NAME=VALUE` and the JSON report use.
    pub fn name(self) -> &'static str {
        match self {
            Allowance::D1RowsRead => "d1-rows-read",
            Allowance::D1RowsWritten => "d1-rows-written",
            Allowance::D1Storage => "d1-storage-bytes",
            Allowance::VectorizeQueriedDimensions => "vectorize-queried-dimensions",
            Allowance::VectorizeStoredDimensions => "vectorize-stored-dimensions",
            Allowance::R2ClassA => "r2-class-a-operations",
            Allowance::R2ClassB => "r2-class-b-operations",
            Allowance::R2Storage => "r2-storage-bytes",
        }
    }

    /// `d1`, `vectorize` or `r2`.
    pub fn service(self) -> &'static str {
        match self {
            Allowance::D1RowsRead | Allowance::D1RowsWritten | Allowance::D1Storage => "d1",
            Allowance::VectorizeQueriedDimensions | Allowance::VectorizeStoredDimensions => {
                "vectorize"
            }
            Allowance::R2ClassA | Allowance::R2ClassB | Allowance::R2Storage => "r2",
        }
    }

    /// What the report calls it.
    pub fn label(self) -> &'static str {
        match self {
            Allowance::D1RowsRead => "rows read",
            Allowance::D1RowsWritten => "rows written",
            Allowance::D1Storage => "storage (bytes)",
            Allowance::VectorizeQueriedDimensions => "queried vector dimensions",
            Allowance::VectorizeStoredDimensions => "stored vector dimensions",
            Allowance::R2ClassA => "Class A operations",
            Allowance::R2ClassB => "Class B operations",
            Allowance::R2Storage => "storage (bytes)",
        }
    }

    /// Over what it is measured.
    pub fn period(self) -> Period {
        match self {
            Allowance::D1RowsRead | Allowance::D1RowsWritten => Period::Day,
            Allowance::VectorizeQueriedDimensions | Allowance::R2ClassA | Allowance::R2ClassB => {
                Period::Month
            }
            Allowance::D1Storage | Allowance::VectorizeStoredDimensions | Allowance::R2Storage => {
                Period::Stored
            }
        }
    }

    /// The Workers Free plan's allowance.
    pub fn free(self) -> u64 {
        const GB: u64 = 1_000_000_000;
        match self {
            Allowance::D1RowsRead => 5_000_000,
            Allowance::D1RowsWritten => 100_000,
            Allowance::D1Storage => 5 * GB,
            Allowance::VectorizeQueriedDimensions => 30_000_000,
            Allowance::VectorizeStoredDimensions => 5_000_000,
            Allowance::R2ClassA => 1_000_000,
            Allowance::R2ClassB => 10_000_000,
            Allowance::R2Storage => 10 * GB,
        }
    }

    /// What a request refused past this allowance says. D1's two texts are
    /// Cloudflare's; the others are tristore's (Cloudflare bills R2 and Vectorize
    /// usage past the free tier instead of refusing it).
    pub fn refusal(self, limit: u64) -> String {
        match self {
            Allowance::D1RowsRead => "Your account has exceeded D1's free tier daily row read limit. Upgrade to a paid plan or wait until tomorrow (midnight UTC) to continue.".into(),
            Allowance::D1RowsWritten => "Your account has exceeded D1's free tier daily row write limit. Upgrade to a paid plan or wait until tomorrow (midnight UTC) to continue.".into(),
            other => format!(
                "This account has used its free tier allowance of {} {} {} (tristore --free-tier enforce). \
                 It starts again {}; run `tristore usage` to see every allowance, or serve with --free-tier warn.",
                thousands(limit),
                other.label(),
                match other.period() { Period::Day => "today", Period::Month => "this month", Period::Stored => "stored" },
                match other.period() { Period::Day => "at midnight UTC", Period::Month => "on the 1st of next month (UTC)", Period::Stored => "once less is stored" },
            ),
        }
    }
}

impl fmt::Display for Allowance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<Allowance> for &'static str {
    fn from(a: Allowance) -> &'static str {
        a.name()
    }
}

impl TryFrom<String> for Allowance {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl FromStr for Allowance {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Allowance::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Allowance::ALL.iter().map(|a| a.name()).collect();
                format!(
                    "unknown allowance {s:?}; the allowances are {}",
                    names.join(", ")
                )
            })
    }
}

/// What happens past an allowance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Count only.
    #[default]
    Count,
    /// Log a warning, once per allowance and period.
    Warn,
    /// Refuse requests as Cloudflare's free plan does (and warn).
    Enforce,
}

/// The allowances in force and what happens past them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FreeTier {
    /// Count, warn or enforce.
    pub policy: Policy,
    /// Allowances that differ from the free plan's (smaller ones make tests quick).
    pub overrides: BTreeMap<Allowance, u64>,
}

impl FreeTier {
    /// The allowance in force.
    pub fn limit(&self, allowance: Allowance) -> u64 {
        self.overrides
            .get(&allowance)
            .copied()
            .unwrap_or_else(|| allowance.free())
    }

    /// Parses `NAME=VALUE` (`VALUE` a whole number, `_` allowed between digits).
    pub fn parse_override(text: &str) -> Result<(Allowance, u64), String> {
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not NAME=VALUE (e.g. d1-rows-read=1000)"))?;
        let value = value
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{value:?} in {text:?} is not a whole number"))?;
        Ok((name.parse()?, value))
    }
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_by_name_and_refuse_unknown_names() {
        assert_eq!(
            FreeTier::parse_override("r2-class-a-operations=1_000"),
            Ok((Allowance::R2ClassA, 1000))
        );
        let e = FreeTier::parse_override("d1-rows=5").unwrap_err();
        assert!(e.contains("d1-rows-read"), "{e}");
        assert!(FreeTier::parse_override("d1-rows-read").is_err());
        assert!(FreeTier::parse_override("d1-rows-read=lots").is_err());
    }

    #[test]
    fn numbers_read_with_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(30_000_000), "30,000,000");
    }
}
