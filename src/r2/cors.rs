//! A bucket's CORS rules (S3's `CORSConfiguration`, the REST API's `rules`) and how a
//! browser's request is matched against them.
//!
//! R2 documents the fields and that origins match exactly; the rest follows S3: the
//! first rule that allows the request's `Origin`, its method and every header a
//! preflight announces decides the answer, and an origin or header pattern may hold one
//! `*` wildcard.

use serde::{Deserialize, Serialize};

use super::bucket::R2Bucket;
use super::bucket_config::Kind;
use super::error::{R2Error, R2ErrorKind};

/// The methods a rule may allow (R2's list).
pub const CORS_METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

/// At most this many rules per bucket, as in S3.
pub const MAX_CORS_RULES: usize = 100;

/// One rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CorsRule {
    /// An optional name (at most 255 characters).
    pub id: Option<String>,
    /// `Origin` values allowed: exact, `*` for any, or with one `*` inside.
    pub allowed_origins: Vec<String>,
    /// Methods allowed, from [`CORS_METHODS`].
    pub allowed_methods: Vec<String>,
    /// Headers a preflight may announce (any case; one `*` wildcard each).
    pub allowed_headers: Vec<String>,
    /// Response headers the page's script may read.
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight's answer.
    pub max_age_seconds: Option<u32>,
}

impl CorsRule {
    /// Whether the rule lets a page at `origin` send `method` with `headers`.
    pub fn allows(&self, origin: &str, method: &str, headers: &[&str]) -> bool {
        self.allowed_origins
            .iter()
            .any(|o| wildcard(o, origin, false))
            && self.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| {
                self.allowed_headers
                    .iter()
                    .any(|allowed| wildcard(allowed, h, true))
            })
    }

    /// Whether the rule allows every origin, so that answers may say `*` rather than
    /// name the origin.
    pub fn any_origin(&self) -> bool {
        self.allowed_origins.iter().any(|o| o == "*")
    }
}

/// The rule that decides a request from `origin` using `method` and announcing
/// `headers`: the first one that allows all three.
pub fn find_cors_rule<'a>(
    rules: &'a [CorsRule],
    origin: &str,
    method: &str,
    headers: &[&str],
) -> Option<&'a CorsRule> {
    rules.iter().find(|r| r.allows(origin, method, headers))
}

/// `pattern`, which holds at most one `*`, against `value`.
fn wildcard(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let (pattern, value) = if ignore_case {
        (pattern.to_ascii_lowercase(), value.to_ascii_lowercase())
    } else {
        (pattern.to_owned(), value.to_owned())
    };
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.starts_with(head)
                && value.ends_with(tail)
        }
    }
}

/// Checks a whole configuration as S3 does before storing it.
pub fn validate_cors(rules: &[CorsRule]) -> Result<(), R2Error> {
    const OP: &str = "putBucketCors";
    let invalid = |message: String| R2Error::new(OP, R2ErrorKind::InvalidArgument, message);
    if rules.len() > MAX_CORS_RULES {
        return Err(invalid(format!(
            "A CORS configuration holds at most {MAX_CORS_RULES} rules, not {}",
            rules.len()
        )));
    }
    for rule in rules {
        if rule.id.as_ref().is_some_and(|id| id.chars().count() > 255) {
            return Err(invalid(
                "The ID of a CORS rule is at most 255 characters".into(),
            ));
        }
        if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
            return Err(invalid(
                "Every CORS rule needs at least one AllowedOrigin and one AllowedMethod".into(),
            ));
        }
        if let Some(m) = rule
            .allowed_methods
            .iter()
            .find(|m| !CORS_METHODS.contains(&m.as_str()))
        {
            return Err(invalid(format!(
                "Found unsupported HTTP method in CORS config. Unsupported method is {m}; use GET, PUT, POST, DELETE or HEAD"
            )));
        }
        let patterns = rule.allowed_origins.iter().chain(&rule.allowed_headers);
        if let Some(p) = patterns.into_iter().find(|p| p.matches('*').count() > 1) {
            return Err(invalid(format!(
                "{p:?} can not have more than one wildcard"
            )));
        }
    }
    Ok(())
}

impl R2Bucket {
    /// The bucket's CORS rules, or `None` when it has none.
    pub fn cors(&self) -> Result<Option<Vec<CorsRule>>, R2Error> {
        self.config("getBucketCors", Kind::Cors)
    }

    /// Replaces the bucket's CORS rules after [`validate_cors`]; an empty list removes
    /// them.
    pub fn set_cors(&self, rules: &[CorsRule]) -> Result<(), R2Error> {
        validate_cors(rules)?;
        let value = (!rules.is_empty()).then_some(rules);
        self.set_config("putBucketCors", Kind::Cors, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        CorsRule {
            allowed_origins: own(origins),
            allowed_methods: own(methods),
            allowed_headers: own(headers),
            ..Default::default()
        }
    }

    #[test]
    fn origins_match_exactly_or_around_one_wildcard() {
        let r = rule(
            &["https://app.example", "*.suffix", "start*end"],
            &["GET"],
            &[],
        );
        for origin in [
            "https://app.example",
            "foo.suffix",
            "startend",
            "start12end",
        ] {
            assert!(r.allows(origin, "GET", &[]), "{origin}");
        }
        for origin in [
            "https://APP.example",
            "https://app.example:8443",
            "foo.suffix.get",
            "0start12end",
            "stend",
        ] {
            assert!(!r.allows(origin, "GET", &[]), "{origin}");
        }
        assert!(!r.allows("foo.suffix", "PUT", &[]));
    }

    #[test]
    fn every_announced_header_must_be_allowed_in_any_case() {
        let r = rule(&["*"], &["PUT"], &["Content-Type", "x-amz-meta-*"]);
        assert!(r.allows("o", "PUT", &["content-type", "X-Amz-Meta-Doc"]));
        assert!(!r.allows("o", "PUT", &["content-type", "x-user-id"]));
        assert!(rule(&["*"], &["PUT"], &["*"]).allows("o", "PUT", &["anything"]));
        assert!(!rule(&["*"], &["PUT"], &[]).allows("o", "PUT", &["content-type"]));
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let rules = [
            rule(&["a"], &["GET"], &[]),
            rule(&["*"], &["GET", "PUT"], &[]),
        ];
        assert_eq!(find_cors_rule(&rules, "a", "GET", &[]), Some(&rules[0]));
        assert_eq!(find_cors_rule(&rules, "a", "PUT", &[]), Some(&rules[1]));
        assert!(rules[1].any_origin());
        assert_eq!(find_cors_rule(&rules, "a", "PATCH", &[]), None);
    }

    #[test]
    fn invalid_configurations_are_refused() {
        let bad = [
            rule(&["a"], &["PATCH"], &[]),
            rule(&[], &["GET"], &[]),
            rule(&["a"], &[], &[]),
            rule(&["*.a.*"], &["GET"], &[]),
            rule(&["a"], &["GET"], &["x-*-*"]),
        ];
        for r in bad {
            let e = validate_cors(std::slice::from_ref(&r)).unwrap_err();
            assert_eq!(e.kind, R2ErrorKind::InvalidArgument, "{r:?}");
        }
        let many = vec![rule(&["a"], &["GET"], &[]); MAX_CORS_RULES + 1];
        assert!(validate_cors(&many).is_err());
        assert!(validate_cors(&many[..MAX_CORS_RULES]).is_ok());
    }
}
