//! Bucket CORS on the S3 port: Put/Get/DeleteBucketCors, preflight `OPTIONS` requests,
//! and the `Access-Control-*` headers on requests from an allowed origin.
//!
//! A browser sends a preflight without credentials, so it is answered from the bucket's
//! rules alone, before (and without) signature verification; it reveals only what the
//! rules allow. The answers follow S3's, as R2 documents none: a preflight without
//! `Origin` or `Access-Control-Request-Method` is 400, one that no rule allows is 403.

use axum::body::Body;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::body::{self, BodyPlan};
use super::error::S3Error;
use super::objects::xml_response;
use super::xml::{self, Xml};
use super::{blocking, Ctx};
use crate::r2::cors::find_cors_rule;
use crate::r2::CorsRule;
use crate::Store;

#[derive(Deserialize)]
struct CorsConfiguration {
    #[serde(rename = "CORSRule", default)]
    rules: Vec<CorsRuleXml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorsRuleXml {
    #[serde(rename = "ID")]
    id: Option<String>,
    #[serde(rename = "AllowedHeader", default)]
    allowed_headers: Vec<String>,
    #[serde(rename = "AllowedMethod", default)]
    allowed_methods: Vec<String>,
    #[serde(rename = "AllowedOrigin", default)]
    allowed_origins: Vec<String>,
    #[serde(rename = "ExposeHeader", default)]
    expose_headers: Vec<String>,
    #[serde(rename = "MaxAgeSeconds")]
    max_age_seconds: Option<u32>,
}

/// Put/Get/DeleteBucketCors (`?cors` on a bucket).
pub(crate) async fn configure(ctx: Ctx, body: Body) -> Result<Response, S3Error> {
    let (store, name) = (ctx.store.clone(), ctx.bucket_name().to_owned());
    match ctx.method {
        Method::GET => {
            let rules = blocking(move || Ok(Ctx::open_bucket(&store, &name)?.cors()?)).await?;
            let rules = rules.ok_or_else(|| {
                S3Error::new(
                    404,
                    "NoSuchCORSConfiguration",
                    "The CORS configuration does not exist",
                )
                .with("BucketName", ctx.bucket_name())
            })?;
            Ok(xml_response(to_xml(&rules)))
        }
        Method::PUT => {
            let plan = BodyPlan::from_request(&ctx.headers, &ctx.verified)?;
            let bytes = body::read_all(body, plan, 64 * 1024).await?;
            let rules = parse(&bytes)?;
            blocking(move || Ok(Ctx::open_bucket(&store, &name)?.set_cors(&rules)?)).await?;
            Ok(StatusCode::OK.into_response())
        }
        Method::DELETE => {
            blocking(move || Ok(Ctx::open_bucket(&store, &name)?.set_cors(&[])?)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        other => Err(S3Error::new(
            405,
            "MethodNotAllowed",
            format!("The specified method {other} is not allowed against ?cors."),
        )),
    }
}

/// A PutBucketCors body: its rules (not yet validated: see `validate_cors`), or the
/// S3 error that refuses it.
pub fn parse(bytes: &[u8]) -> Result<Vec<CorsRule>, S3Error> {
    let config: CorsConfiguration = xml::parse(bytes)?;
    // S3's schema requires a rule, and an origin and a method in each.
    let complete = |r: &CorsRuleXml| !r.allowed_origins.is_empty() && !r.allowed_methods.is_empty();
    if config.rules.is_empty() || !config.rules.iter().all(complete) {
        return Err(xml::malformed());
    }
    Ok(config
        .rules
        .into_iter()
        .map(|r| CorsRule {
            id: r.id,
            allowed_origins: r.allowed_origins,
            allowed_methods: r.allowed_methods,
            allowed_headers: r.allowed_headers,
            expose_headers: r.expose_headers,
            max_age_seconds: r.max_age_seconds,
        })
        .collect())
}

/// The GetBucketCors answer for `rules`.
pub fn to_xml(rules: &[CorsRule]) -> String {
    let mut xml = Xml::new("CORSConfiguration");
    for r in rules {
        xml.open("CORSRule").leaf_opt("ID", r.id.as_deref());
        for (name, values) in [
            ("AllowedHeader", &r.allowed_headers),
            ("AllowedMethod", &r.allowed_methods),
            ("AllowedOrigin", &r.allowed_origins),
            ("ExposeHeader", &r.expose_headers),
        ] {
            for v in values {
                xml.leaf(name, v);
            }
        }
        xml.leaf_opt("MaxAgeSeconds", r.max_age_seconds).close();
    }
    xml.finish()
}

/// The rules of `bucket`, `Ok(None)` when it has none.
async fn rules(
    store: &std::sync::Arc<Store>,
    bucket: &str,
) -> Result<Option<Vec<CorsRule>>, S3Error> {
    let (store, name) = (store.clone(), bucket.to_owned());
    blocking(move || Ok(Ctx::open_bucket(&store, &name)?.cors()?)).await
}

/// Answers a preflight `OPTIONS` request for `bucket` from its rules.
pub(crate) async fn preflight(
    store: &std::sync::Arc<Store>,
    bucket: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, S3Error> {
    let bad = |message: &str| S3Error::new(400, "BadRequest", message);
    let origin = headers
        .get(ORIGIN)
        .ok_or_else(|| bad("Insufficient information. Origin request header needed."))?;
    let method = headers
        .get(ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| m.to_str().ok())
        .ok_or_else(|| bad("A CORS preflight needs an Access-Control-Request-Method header"))?;
    let bucket = bucket.ok_or_else(|| bad("A CORS preflight must name a bucket"))?;
    let forbidden = |message: &str| S3Error::new(403, "AccessForbidden", message);
    let rules = rules(store, bucket)
        .await?
        .ok_or_else(|| forbidden("CORSResponse: CORS is not enabled for this bucket."))?;
    let requested: Vec<&str> = headers
        .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    let origin_text = origin.to_str().unwrap_or("");
    let rule = find_cors_rule(&rules, origin_text, method, &requested).ok_or_else(|| {
        forbidden("CORSResponse: This CORS request is not allowed. This is usually because the evaluation of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers is not allowed by the bucket's CORS rules.")
    })?;
    let mut response = StatusCode::OK.into_response();
    let out = response.headers_mut();
    allow(out, rule, origin);
    if !requested.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&requested.join(", ")) {
            out.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
    }
    if let Some(age) = rule.max_age_seconds {
        out.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
    }
    out.append(
        VARY,
        HeaderValue::from_static("Access-Control-Request-Headers, Access-Control-Request-Method"),
    );
    Ok(response)
}

/// Adds the `Access-Control-*` headers to `response` when a rule of `bucket` allows
/// `origin` to use `method`; a request no rule allows is answered as it was, and the
/// browser then withholds the answer from the page.
pub(crate) async fn decorate(
    store: &std::sync::Arc<Store>,
    bucket: &str,
    origin: &HeaderValue,
    method: &Method,
    response: &mut Response,
) {
    let Ok(Some(rules)) = rules(store, bucket).await else {
        return;
    };
    let origin_text = origin.to_str().unwrap_or("");
    if let Some(rule) = find_cors_rule(&rules, origin_text, method.as_str(), &[]) {
        allow(response.headers_mut(), rule, origin);
    }
}

/// The headers every allowed CORS answer carries.
fn allow(out: &mut HeaderMap, rule: &CorsRule, origin: &HeaderValue) {
    if rule.any_origin() {
        out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    } else {
        out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    let join = |values: &[String]| HeaderValue::from_str(&values.join(", ")).ok();
    if let Some(v) = join(&rule.allowed_methods) {
        out.insert(ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    if let Some(v) = join(&rule.expose_headers).filter(|_| !rule.expose_headers.is_empty()) {
        out.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
    out.append(VARY, HeaderValue::from_static("Origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a Get writes, a Put reads back to the same rules (SDKs compare the two), down
    /// to empty elements, which the XML reader must not turn into absent ones.
    #[test]
    fn rules_read_back_as_they_were_written() {
        let body = br#"<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><CORSRule><ID></ID><AllowedHeader></AllowedHeader><AllowedMethod>PUT</AllowedMethod><AllowedOrigin>https://app.example</AllowedOrigin><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>600</MaxAgeSeconds></CORSRule><CORSRule><AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin></CORSRule></CORSConfiguration>"#;
        let rules = parse(body).unwrap();
        assert_eq!(rules[0].max_age_seconds, Some(600));
        assert_eq!(rules[1].id, None);
        let written = to_xml(&rules);
        assert_eq!(parse(written.as_bytes()).unwrap(), rules, "{written}");
    }

    #[test]
    fn a_rule_without_an_origin_or_a_method_is_malformed() {
        for rule in [
            "<AllowedMethod>GET</AllowedMethod>",
            "<AllowedOrigin>*</AllowedOrigin>",
            "<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><Unknown/>",
        ] {
            let body =
                format!("<CORSConfiguration><CORSRule>{rule}</CORSRule></CORSConfiguration>");
            assert_eq!(
                parse(body.as_bytes()).unwrap_err().code,
                "MalformedXML",
                "{rule}"
            );
        }
        assert_eq!(
            parse(b"<CORSConfiguration/>").unwrap_err().code,
            "MalformedXML"
        );
    }
}
