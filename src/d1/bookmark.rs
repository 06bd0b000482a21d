//! Bookmarks and Time Travel timestamps: how a point in a database's history is named.
//!
//! A bookmark is `00000000-hhhhhhhh-llllllll-<tag>`: the point's commit time in
//! microseconds since the Unix epoch split into two 8-digit hex groups, and the
//! database's 32-hex-digit tag. Fixed widths make lexicographic order time order.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a bookmark, a timestamp or a restore was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeTravelError {
    /// Not four hex groups of 8, 8, 8 and 32 digits.
    #[error("invalid bookmark '{0}': expected four lowercase hex groups of 8, 8, 8 and 32 digits, as returned by `time_travel/bookmark`")]
    MalformedBookmark(String),
    /// A bookmark of another database.
    #[error("bookmark '{0}' belongs to another database; get one for this database with `time_travel/bookmark`")]
    ForeignBookmark(String),
    /// Neither Unix seconds nor RFC 3339.
    #[error("invalid timestamp '{0}': give Unix seconds (1735689600) or RFC 3339 (2025-01-01T00:00:00Z)")]
    MalformedTimestamp(String),
    /// Older than the retention window or than the database's first point.
    #[error("{asked} is outside the Time Travel window: the oldest point this database can return to is {oldest}")]
    OutsideWindow {
        /// The point asked for, as given.
        asked: String,
        /// The oldest point still kept, RFC 3339.
        oldest: String,
    },
    /// After the database's current state.
    #[error("{0} is in the future: the newest point is the database's current state")]
    InTheFuture(String),
    /// `restore` needs exactly one of `bookmark` and `timestamp`.
    #[error("give exactly one of `bookmark` and `timestamp`")]
    OneTarget,
    /// Too many restores of this database lately.
    #[error("too many restores: at most {limit} per {period_secs} seconds per database; try again in {retry_secs} seconds")]
    TooManyRestores {
        /// Restores allowed per period.
        limit: u32,
        /// The period.
        period_secs: u64,
        /// When the oldest counted restore leaves the period.
        retry_secs: u64,
    },
    /// The history files could not be read or written.
    #[error("Time Travel history {0}")]
    Storage(String),
}

/// The bookmark of the point committed at `at` (µs since the epoch) in the database `tag`.
pub(crate) fn format(at: u64, tag: &str) -> String {
    format!("00000000-{:08x}-{:08x}-{tag}", at >> 32, at & 0xffff_ffff)
}

/// The commit time a bookmark names, checked to belong to the database `tag`.
pub(crate) fn parse(bookmark: &str, tag: &str) -> Result<u64, TimeTravelError> {
    let malformed = || TimeTravelError::MalformedBookmark(bookmark.to_owned());
    let groups: Vec<&str> = bookmark.split('-').collect();
    let widths_ok = groups.len() == 4
        && groups.iter().zip([8, 8, 8, 32]).all(|(g, w)| {
            g.len() == w && g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
    if !widths_ok || groups[0] != "00000000" {
        return Err(malformed());
    }
    if groups[3] != tag {
        return Err(TimeTravelError::ForeignBookmark(bookmark.to_owned()));
    }
    let high = u64::from_str_radix(groups[1], 16).map_err(|_| malformed())?;
    let low = u64::from_str_radix(groups[2], 16).map_err(|_| malformed())?;
    Ok(high << 32 | low)
}

/// A Time Travel timestamp in µs since the epoch: Unix seconds (what wrangler sends for
/// a number) or RFC 3339 / ISO 8601 with an offset (what it sends for a date).
pub fn parse_timestamp(text: &str) -> Result<u64, TimeTravelError> {
    let malformed = || TimeTravelError::MalformedTimestamp(text.to_owned());
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = text.parse().map_err(|_| malformed())?;
        return secs.checked_mul(1_000_000).ok_or_else(malformed);
    }
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| malformed())?;
    u64::try_from(at.unix_timestamp_nanos() / 1000).map_err(|_| malformed())
}

/// `at` (µs since the epoch) in RFC 3339, for messages.
pub(crate) fn rfc3339(at: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_micros(at);
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{at} µs after the epoch"))
}

/// Now, in µs since the epoch.
pub(crate) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn bookmarks_round_trip_and_sort_by_time() {
        let (a, b) = (1_700_000_000_000_000, 1_700_000_000_000_001);
        assert_eq!(parse(&format(a, TAG), TAG), Ok(a));
        assert!(format(a, TAG) < format(b, TAG));
        assert!(format(0xffff_ffff, TAG) < format(0x1_0000_0000, TAG));
    }

    #[test]
    fn malformed_and_foreign_bookmarks_are_refused() {
        for bad in [
            "",
            "x",
            "00000000-0000000g-00000000-0123456789abcdef0123456789abcdef",
            "00000000-00000000-00000000",
            "00000001-00000000-00000000-0123456789abcdef0123456789abcdef",
            "00000000-00000000-00000000-0123456789ABCDEF0123456789abcdef",
        ] {
            assert!(
                matches!(parse(bad, TAG), Err(TimeTravelError::MalformedBookmark(_))),
                "{bad}"
            );
        }
        let other = format(5, "fedcba9876543210fedcba9876543210");
        assert!(matches!(
            parse(&other, TAG),
            Err(TimeTravelError::ForeignBookmark(_))
        ));
    }

    #[test]
    fn timestamps_are_unix_seconds_or_rfc3339() {
        assert_eq!(parse_timestamp("1735689600"), Ok(1_735_689_600_000_000));
        assert_eq!(
            parse_timestamp("2025-01-01T00:00:00Z"),
            Ok(1_735_689_600_000_000)
        );
        assert_eq!(
            parse_timestamp("2025-01-01T01:00:00.5+01:00"),
            Ok(1_735_689_600_500_000)
        );
        for bad in ["", "yesterday", "2025-01-01", "-5", "99999999999999999999"] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }
}
