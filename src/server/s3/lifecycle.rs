//! Put/Get/DeleteBucketLifecycleConfiguration (`?lifecycle` on a bucket), in R2's
//! subset: expiration and transition to STANDARD_IA by days or date, aborting
//! incomplete multipart uploads, prefix filters. Tag and size filters and the rules
//! for noncurrent versions (R2 keeps none) are refused with 501 rather than dropped, as
//! dropping a filter would widen what a rule deletes.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::body::{self, BodyPlan};
use super::error::S3Error;
use super::headers::s3_storage_class;
use super::objects::xml_response;
use super::xml::{self, malformed, Xml};
use super::{blocking, Ctx};
use crate::r2::lifecycle::{PrefixStyle, StorageClassTransition};
use crate::r2::{iso8601_millis, LifecycleAge, LifecycleRule};

#[derive(Deserialize)]
struct LifecycleConfiguration {
    #[serde(rename = "Rule", default)]
    rules: Vec<RuleXml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleXml {
    #[serde(rename = "ID")]
    id: Option<String>,
    #[serde(rename = "Prefix")]
    prefix: Option<String>,
    #[serde(rename = "Filter")]
    filter: Option<FilterXml>,
    #[serde(rename = "Status")]
    status: String,
    #[serde(rename = "Expiration")]
    expiration: Option<ExpirationXml>,
    #[serde(rename = "Transition", default)]
    transitions: Vec<TransitionXml>,
    #[serde(rename = "AbortIncompleteMultipartUpload")]
    abort: Option<AbortXml>,
    #[serde(rename = "NoncurrentVersionExpiration")]
    noncurrent_expiration: Option<IgnoredAny>,
    #[serde(rename = "NoncurrentVersionTransition", default)]
    noncurrent_transitions: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterXml {
    #[serde(rename = "Prefix")]
    prefix: Option<String>,
    #[serde(rename = "Tag")]
    tag: Option<IgnoredAny>,
    #[serde(rename = "And")]
    and: Option<IgnoredAny>,
    #[serde(rename = "ObjectSizeGreaterThan")]
    larger: Option<IgnoredAny>,
    #[serde(rename = "ObjectSizeLessThan")]
    smaller: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpirationXml {
    #[serde(rename = "Days")]
    days: Option<u32>,
    #[serde(rename = "Date")]
    date: Option<String>,
    #[serde(rename = "ExpiredObjectDeleteMarker")]
    delete_marker: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionXml {
    #[serde(rename = "Days")]
    days: Option<u32>,
    #[serde(rename = "Date")]
    date: Option<String>,
    #[serde(rename = "StorageClass")]
    storage_class: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AbortXml {
    #[serde(rename = "DaysAfterInitiation")]
    days: u32,
}

/// Put/Get/DeleteBucketLifecycleConfiguration.
pub(crate) async fn configure(ctx: Ctx, body: Body) -> Result<Response, S3Error> {
    let (store, name) = (ctx.store.clone(), ctx.bucket_name().to_owned());
    match ctx.method {
        Method::GET => {
            let rules = blocking(move || Ok(Ctx::open_bucket(&store, &name)?.lifecycle()?)).await?;
            if rules.is_empty() {
                return Err(S3Error::new(
                    404,
                    "NoSuchLifecycleConfiguration",
                    "The lifecycle configuration does not exist",
                )
                .with("BucketName", ctx.bucket_name()));
            }
            Ok(xml_response(to_xml(&rules)))
        }
        Method::PUT => {
            let plan = BodyPlan::from_request(&ctx.headers, &ctx.verified)?;
            let bytes = body::read_all(body, plan, 1 << 20).await?;
            let rules = parse(&bytes)?;
            blocking(move || Ok(Ctx::open_bucket(&store, &name)?.set_lifecycle(rules)?)).await?;
            Ok(StatusCode::OK.into_response())
        }
        Method::DELETE => {
            blocking(move || Ok(Ctx::open_bucket(&store, &name)?.set_lifecycle(Vec::new())?))
                .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        other => Err(S3Error::new(
            405,
            "MethodNotAllowed",
            format!("The specified method {other} is not allowed against ?lifecycle."),
        )),
    }
}

/// A PutBucketLifecycleConfiguration body: its rules (not yet validated: see
/// `validate_lifecycle`), or the S3 error that refuses it.
pub fn parse(bytes: &[u8]) -> Result<Vec<LifecycleRule>, S3Error> {
    let config: LifecycleConfiguration = xml::parse(bytes)?;
    if config.rules.is_empty() {
        return Err(malformed());
    }
    config.rules.into_iter().map(rule).collect()
}

fn rule(r: RuleXml) -> Result<LifecycleRule, S3Error> {
    let enabled = match r.status.as_str() {
        "Enabled" => true,
        "Disabled" => false,
        _ => return Err(malformed()),
    };
    if r.noncurrent_expiration.is_some() || !r.noncurrent_transitions.is_empty() {
        return Err(S3Error::not_implemented(
            "NoncurrentVersionExpiration and NoncurrentVersionTransition (R2 keeps no object versions)",
        ));
    }
    let (prefix, prefix_style) = match (r.prefix, r.filter) {
        (Some(_), Some(_)) => return Err(malformed()),
        (Some(p), None) => (p, PrefixStyle::Rule),
        (None, Some(f)) => {
            if f.tag.is_some() || f.and.is_some() || f.larger.is_some() || f.smaller.is_some() {
                return Err(S3Error::not_implemented(
                    "Lifecycle filters on tags or object size (R2 filters by key prefix)",
                ));
            }
            (f.prefix.unwrap_or_default(), PrefixStyle::Filter)
        }
        (None, None) => (String::new(), PrefixStyle::Filter),
    };
    let (expiration, expired_object_delete_marker) = match r.expiration {
        None => (None, false),
        Some(e) => match (e.days, e.date, e.delete_marker) {
            (Some(days), None, None) => (Some(LifecycleAge::Days(days)), false),
            (None, Some(date), None) => (Some(LifecycleAge::Date(parse_date(&date)?)), false),
            (None, None, Some(marker)) => (None, marker),
            _ => return Err(malformed()),
        },
    };
    let transitions = r
        .transitions
        .into_iter()
        .map(|t| {
            let after = match (t.days, t.date) {
                (Some(days), None) => LifecycleAge::Days(days),
                (None, Some(date)) => LifecycleAge::Date(parse_date(&date)?),
                _ => return Err(malformed()),
            };
            Ok(StorageClassTransition {
                after,
                storage_class: r2_storage_class(&t.storage_class)?,
            })
        })
        .collect::<Result<_, S3Error>>()?;
    Ok(LifecycleRule {
        id: r.id.unwrap_or_default(),
        enabled,
        prefix,
        prefix_style,
        expiration,
        transitions,
        abort_multipart_days: r.abort.map(|a| a.days),
        expired_object_delete_marker,
    })
}

/// An ISO 8601 date (`2026-01-01`) or date-time (`2026-01-01T00:00:00Z`, what SDKs
/// send), in milliseconds since the epoch; whether it is a midnight is the store's check.
fn parse_date(text: &str) -> Result<i64, S3Error> {
    use time::format_description::well_known::Rfc3339;
    let invalid = || {
        S3Error::invalid_argument(format!(
            "Invalid date {text:?}: use ISO 8601, at midnight GMT (2026-01-01T00:00:00Z)"
        ))
    };
    let at = match time::OffsetDateTime::parse(text, &Rfc3339) {
        Ok(t) => t,
        Err(_) => time::Date::parse(
            text,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map_err(|_| invalid())?
        .midnight()
        .assume_utc(),
    };
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).map_err(|_| invalid())
}

/// The R2 storage class a transition's S3 `StorageClass` names.
fn r2_storage_class(s3: &str) -> Result<String, S3Error> {
    match s3 {
        "STANDARD_IA" => Ok("InfrequentAccess".into()),
        "STANDARD" => Ok("Standard".into()),
        other => Err(S3Error::new(
            400,
            "InvalidStorageClass",
            format!("The storage class you specified is not valid: {other}. R2 moves objects to STANDARD_IA only."),
        )),
    }
}

fn age(xml: &mut Xml, age: LifecycleAge) {
    match age {
        LifecycleAge::Days(days) => xml.leaf("Days", days),
        LifecycleAge::Date(ms) => xml.leaf("Date", iso8601_millis(ms)),
    };
}

/// The GetBucketLifecycleConfiguration answer for `rules`.
pub fn to_xml(rules: &[LifecycleRule]) -> String {
    let mut xml = Xml::new("LifecycleConfiguration");
    for r in rules {
        xml.open("Rule").leaf("ID", &r.id);
        match r.prefix_style {
            PrefixStyle::Rule => {
                xml.leaf("Prefix", &r.prefix);
            }
            PrefixStyle::Filter => {
                xml.open("Filter").leaf("Prefix", &r.prefix).close();
            }
        }
        xml.leaf("Status", if r.enabled { "Enabled" } else { "Disabled" });
        if let Some(expiration) = r.expiration {
            xml.open("Expiration");
            age(&mut xml, expiration);
            xml.close();
        } else if r.expired_object_delete_marker {
            xml.open("Expiration")
                .leaf("ExpiredObjectDeleteMarker", true)
                .close();
        }
        for t in &r.transitions {
            xml.open("Transition");
            age(&mut xml, t.after);
            xml.leaf("StorageClass", s3_storage_class(&t.storage_class))
                .close();
        }
        if let Some(days) = r.abort_multipart_days {
            xml.open("AbortIncompleteMultipartUpload")
                .leaf("DaysAfterInitiation", days)
                .close();
        }
        xml.close();
    }
    xml.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_back_as_they_were_written() {
        let body = br#"<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ID>old</ID><Prefix>test1/</Prefix><Status>Enabled</Status><Expiration><Days>31</Days></Expiration></Rule><Rule><Filter><Prefix>logs/</Prefix></Filter><Status>Disabled</Status><Transition><Date>2026-01-01T00:00:00Z</Date><StorageClass>STANDARD_IA</StorageClass></Transition><AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule></LifecycleConfiguration>"#;
        let mut rules = parse(body).unwrap();
        assert_eq!(rules[0].prefix_style, PrefixStyle::Rule);
        assert_eq!(
            rules[1].transitions[0].after,
            LifecycleAge::Date(1_767_225_600_000)
        );
        rules[1].id = "new".into();
        let xml = to_xml(&rules);
        assert!(xml.contains("<Rule><ID>old</ID><Prefix>test1/</Prefix><Status>Enabled</Status><Expiration><Days>31</Days></Expiration></Rule>"), "{xml}");
        assert!(xml.contains("<Filter><Prefix>logs/</Prefix></Filter><Status>Disabled</Status><Transition><Date>2026-01-01T00:00:00.000Z</Date><StorageClass>STANDARD_IA</StorageClass></Transition><AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation></AbortIncompleteMultipartUpload>"), "{xml}");
        assert_eq!(parse(xml.as_bytes()).unwrap(), rules);
    }

    #[test]
    fn what_r2_does_not_do_is_refused_and_malformed_rules_are_malformed() {
        let refuse = |rule: &str| {
            let body =
                format!("<LifecycleConfiguration><Rule>{rule}</Rule></LifecycleConfiguration>");
            let e = parse(body.as_bytes()).unwrap_err();
            (e.status, e.code)
        };
        let status = "<Status>Enabled</Status>";
        let days = "<Expiration><Days>1</Days></Expiration>";
        assert_eq!(
            refuse(&format!(
                "<Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter>{status}{days}"
            )),
            (501, "NotImplemented")
        );
        assert_eq!(refuse(&format!("{status}<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays></NoncurrentVersionExpiration>")), (501, "NotImplemented"));
        assert_eq!(
            refuse(&format!("<Status>enabled</Status>{days}")),
            (400, "MalformedXML")
        );
        assert_eq!(
            refuse(&format!(
                "<Prefix>a</Prefix><Filter><Prefix>b</Prefix></Filter>{status}{days}"
            )),
            (400, "MalformedXML")
        );
        assert_eq!(
            refuse(&format!(
                "{status}<Expiration><Days>1</Days><Date>2026-01-01</Date></Expiration>"
            )),
            (400, "MalformedXML")
        );
        assert_eq!(
            refuse(&format!(
                "{status}<Expiration><Date>20200101</Date></Expiration>"
            )),
            (400, "InvalidArgument")
        );
        assert_eq!(refuse(&format!("{status}<Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>")), (400, "InvalidStorageClass"));
        assert_eq!(
            refuse(&format!("{status}{days}<Unknown/>")),
            (400, "MalformedXML")
        );
    }
}
