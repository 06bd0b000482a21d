//! `onlyIf`: R2's conditional reads and writes (spec 5.4), from options or HTTP headers.

use super::error::{R2Error, R2ErrorKind};

/// One entry of an `etagMatches` / `etagDoesNotMatch` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagCondition {
    /// `*`: any existing object.
    Any,
    /// A strong etag (unquoted).
    Strong(String),
    /// `W/"..."`: matches only under weak comparison.
    Weak(String),
}

/// `R2Conditional`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct R2Conditional {
    /// Passes when the object's etag is one of these (strong comparison).
    pub etag_matches: Option<Vec<EtagCondition>>,
    /// Passes when the object's etag is none of these (weak comparison).
    pub etag_does_not_match: Option<Vec<EtagCondition>>,
    /// Passes when uploaded strictly before this time (ms since the epoch).
    pub uploaded_before: Option<i64>,
    /// Passes when uploaded strictly after this time (ms since the epoch).
    pub uploaded_after: Option<i64>,
    /// Compare times truncated to whole seconds.
    pub seconds_granularity: bool,
}

impl R2Conditional {
    /// `etagMatches` from an unquoted etag (or `*`); quoted ones are refused as R2 does.
    pub fn etag_matches(etag: &str) -> Result<Self, R2Error> {
        Ok(R2Conditional {
            etag_matches: Some(vec![option_etag(etag)?]),
            ..Default::default()
        })
    }

    /// `etagDoesNotMatch` from an unquoted etag (or `*`: "only if absent").
    pub fn etag_does_not_match(etag: &str) -> Result<Self, R2Error> {
        Ok(R2Conditional {
            etag_does_not_match: Some(vec![option_etag(etag)?]),
            ..Default::default()
        })
    }

    /// Reads `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since` from
    /// header (name, value) pairs, with RFC 9110's meaning. The header form always
    /// compares whole seconds.
    pub fn from_headers<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, R2Error> {
        let mut c = R2Conditional {
            seconds_granularity: true,
            ..Default::default()
        };
        for (name, value) in headers {
            match name.to_ascii_lowercase().as_str() {
                "if-match" => c.etag_matches = Some(parse_etag_list(value)?),
                "if-none-match" => c.etag_does_not_match = Some(parse_etag_list(value)?),
                // RFC 9110 (13.1.3, 13.1.4): a date that does not parse is ignored.
                "if-modified-since" => c.uploaded_after = parse_http_date(value),
                // The header passes when the object was not modified after the date, and
                // `uploadedBefore` is strict: at whole seconds, the bound is the next one.
                "if-unmodified-since" => {
                    c.uploaded_before = parse_http_date(value).map(|ms| ms + 1000)
                }
                _ => {}
            }
        }
        Ok(c)
    }

    /// Whether the conditions hold for an object with `etag` uploaded at `uploaded`
    /// (ms), or for a missing object when `current` is `None`.
    pub fn passes(&self, current: Option<(&str, i64)>) -> bool {
        let Some((etag, uploaded)) = current else {
            return self.etag_matches.is_none() && self.uploaded_after.is_none();
        };
        let truncate = |ms: i64| {
            if self.seconds_granularity {
                ms.div_euclid(1000) * 1000
            } else {
                ms
            }
        };
        let matches = self.etag_matches.as_ref().map(|list| {
            list.iter().any(|c| match c {
                EtagCondition::Any => true,
                EtagCondition::Strong(e) => e == etag,
                EtagCondition::Weak(_) => false,
            })
        });
        let none_match = self.etag_does_not_match.as_ref().map(|list| {
            !list.iter().any(|c| match c {
                EtagCondition::Any => true,
                EtagCondition::Strong(e) | EtagCondition::Weak(e) => e == etag,
            })
        });
        if matches == Some(false) || none_match == Some(false) {
            return false;
        }
        // RFC 7232 precedence: a passing etag check makes the date check moot.
        if let Some(after) = self.uploaded_after {
            if none_match != Some(true) && truncate(uploaded) <= truncate(after) {
                return false;
            }
        }
        if let Some(before) = self.uploaded_before {
            if matches != Some(true) && truncate(uploaded) >= truncate(before) {
                return false;
            }
        }
        true
    }
}

fn option_etag(etag: &str) -> Result<EtagCondition, R2Error> {
    if etag == "*" {
        return Ok(EtagCondition::Any);
    }
    if etag.starts_with('"') || etag.ends_with('"') {
        return Err(R2Error::new(
            "get",
            R2ErrorKind::InvalidArgument,
            format!("Conditional ETag should not be wrapped in quotes ({etag})."),
        ));
    }
    Ok(EtagCondition::Strong(etag.to_owned()))
}

/// An `If-Match` / `If-None-Match` value: `*`, or a comma list of `"etag"` / `W/"etag"`.
/// Bare (unquoted) etags are accepted too, as R2 does.
pub fn parse_etag_list(value: &str) -> Result<Vec<EtagCondition>, R2Error> {
    let invalid = || {
        R2Error::new(
            "get",
            R2ErrorKind::InvalidArgument,
            format!("Invalid ETag list: {value:?}"),
        )
    };
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (weak, rest) = match item.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, item),
        };
        let tag = if rest == "*" && !weak {
            out.push(EtagCondition::Any);
            continue;
        } else if let Some(inner) = rest.strip_prefix('"') {
            inner.strip_suffix('"').ok_or_else(invalid)?
        } else if weak {
            return Err(invalid());
        } else {
            rest
        };
        if tag.contains('"') {
            return Err(invalid());
        }
        out.push(if weak {
            EtagCondition::Weak(tag.to_owned())
        } else {
            EtagCondition::Strong(tag.to_owned())
        });
    }
    if out.is_empty() {
        return Err(invalid());
    }
    Ok(out)
}

/// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`: the format HTTP dates are sent in.
const HTTP_DATE: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);
/// RFC 850's obsolete format, e.g. `Sunday, 06-Nov-94 08:49:37 GMT`.
const RFC850_DATE: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:long], [day]-[month repr:short]-[year repr:last_two] [hour]:[minute]:[second] GMT"
);
/// C's `asctime()` format, e.g. `Sun Nov  6 08:49:37 1994`.
const ASCTIME_DATE: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
);

/// An HTTP date in ms, in any of the three formats RFC 9110 (5.6.7) has recipients
/// accept; `None` if it is none of them.
pub fn parse_http_date(value: &str) -> Option<i64> {
    let value = value.trim();
    let at = time::PrimitiveDateTime::parse(value, HTTP_DATE)
        .or_else(|_| time::PrimitiveDateTime::parse(value, ASCTIME_DATE))
        .ok()
        .or_else(|| parse_rfc850_date(value))?;
    Some((at.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
}

fn parse_rfc850_date(value: &str) -> Option<time::PrimitiveDateTime> {
    let mut parsed = time::parsing::Parsed::new();
    let rest = parsed.parse_items(value.as_bytes(), RFC850_DATE).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let this_year = time::OffsetDateTime::now_utc().year();
    let year = rfc850_year(parsed.year_last_two()?, this_year);
    time::PrimitiveDateTime::try_from(parsed.with_year(year)?).ok()
}

/// The year of an RFC 850 date's two digits: within 50 years of `this_year`, as RFC 9110
/// has a year "more than 50 years in the future" read as the last such year past.
fn rfc850_year(last_two: u8, this_year: i32) -> i32 {
    let year = this_year - this_year.rem_euclid(100) + i32::from(last_two);
    if year > this_year + 50 {
        year - 100
    } else if year <= this_year - 50 {
        year + 100
    } else {
        year
    }
}

/// Milliseconds since the epoch as an HTTP date (whole seconds, as HTTP has them).
pub fn format_http_date(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(HTTP_DATE)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(headers: &[(&str, &str)]) -> R2Conditional {
        R2Conditional::from_headers(headers.iter().copied()).unwrap()
    }

    #[test]
    fn etag_lists() {
        assert_eq!(
            parse_etag_list(r#""a", W/"b", c"#).unwrap(),
            vec![
                EtagCondition::Strong("a".into()),
                EtagCondition::Weak("b".into()),
                EtagCondition::Strong("c".into())
            ]
        );
        assert_eq!(parse_etag_list("*").unwrap(), vec![EtagCondition::Any]);
        assert!(parse_etag_list(r#""unterminated"#).is_err());
        assert!(parse_etag_list("").is_err());
    }

    #[test]
    fn rules_of_spec_5_4() {
        let obj = Some(("e1", 10_500));
        assert!(cond(&[("If-Match", "\"e1\"")]).passes(obj));
        assert!(
            !cond(&[("If-Match", "W/\"e1\"")]).passes(obj),
            "If-Match compares strongly"
        );
        assert!(!cond(&[("If-Match", "*")]).passes(None));
        assert!(
            !cond(&[("If-None-Match", "W/\"e1\"")]).passes(obj),
            "If-None-Match compares weakly"
        );
        assert!(!cond(&[("If-None-Match", "*")]).passes(obj));
        assert!(cond(&[("If-None-Match", "*")]).passes(None));
        // 10.5 s vs 10 s: equal at second granularity, so not "after".
        let since = "Thu, 01 Jan 1970 00:00:10 GMT";
        assert!(!cond(&[("If-Modified-Since", since)]).passes(obj));
        assert!(cond(&[("If-Modified-Since", since), ("If-None-Match", "\"other\"")]).passes(obj));
        assert!(cond(&[("If-Unmodified-Since", since), ("If-Match", "\"e1\"")]).passes(obj));
        assert!(cond(&[("If-Unmodified-Since", since)]).passes(None));
        let before = R2Conditional {
            uploaded_before: Some(10_000),
            seconds_granularity: true,
            ..Default::default()
        };
        assert!(
            !before.passes(obj),
            "the binding's uploadedBefore is strict"
        );
        let ms = R2Conditional {
            uploaded_after: Some(10_000),
            ..Default::default()
        };
        assert!(
            ms.passes(obj),
            "millisecond granularity by default in the binding"
        );
    }

    #[test]
    fn http_dates_follow_rfc_9110() {
        let ms = 784_111_777_000;
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(date), Some(ms), "{date}");
        }
        // A two-digit year more than 50 years ahead is the last such year past.
        assert_eq!(rfc850_year(94, 2026), 1994);
        assert_eq!(rfc850_year(30, 2026), 2030);
        assert_eq!(rfc850_year(76, 2026), 2076);
        assert_eq!(rfc850_year(77, 2026), 1977);
        for bad in [
            "not a date",
            "",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 32 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
        assert_eq!(parse_http_date(&format_http_date(ms + 999)), Some(ms));
    }

    #[test]
    fn header_conditions_follow_rfc_9110() {
        let obj = Some(("e1", 10_500));
        let at = "Thu, 01 Jan 1970 00:00:10 GMT";
        assert!(
            cond(&[("If-Unmodified-Since", at)]).passes(obj),
            "not modified after the date"
        );
        assert!(!cond(&[("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:09 GMT")]).passes(obj));
        for name in ["If-Modified-Since", "If-Unmodified-Since"] {
            let c = cond(&[(name, "Sunday, 32-Nov-94 08:49:37 GMT")]);
            assert_eq!(c, cond(&[]), "an invalid {name} is ignored");
        }
    }
}
