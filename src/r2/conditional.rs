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
    /// header (name, value) pairs. The header form always compares whole seconds.
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
                "if-modified-since" => c.uploaded_after = Some(parse_http_date(value)?),
                "if-unmodified-since" => c.uploaded_before = Some(parse_http_date(value)?),
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

/// RFC 7231's IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
const HTTP_DATE: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// An HTTP date (RFC 7231 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`) in ms.
pub fn parse_http_date(value: &str) -> Result<i64, R2Error> {
    time::PrimitiveDateTime::parse(value.trim(), HTTP_DATE)
        .map(|t| (t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            R2Error::new(
                "get",
                R2ErrorKind::InvalidArgument,
                format!("Invalid HTTP date: {value:?}"),
            )
        })
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
        assert!(
            !cond(&[("If-Unmodified-Since", since)]).passes(obj),
            "strictly before"
        );
        assert!(cond(&[("If-Unmodified-Since", since), ("If-Match", "\"e1\"")]).passes(obj));
        assert!(cond(&[("If-Unmodified-Since", since)]).passes(None));
        let ms = R2Conditional {
            uploaded_after: Some(10_000),
            ..Default::default()
        };
        assert!(
            ms.passes(obj),
            "millisecond granularity by default in the binding"
        );
    }
}
