//! Which browsers and which host names may use the REST port.
//!
//! A developer's local server is reachable from every web page they open: a page can
//! send "simple" cross-site requests (a POST with `text/plain` or form data needs no
//! preflight), and DNS rebinding lets a page on `evil.example` read the answers by
//! pointing its own name at 127.0.0.1. Without an API token nothing else stands in the
//! way, so the REST port answers only requests that name it by a loopback name (or one
//! allowed with `--allow-host`), refuses browser requests from origins not named with
//! `--cors-origin` (answering CORS preflights for those that are), and refuses
//! `text/plain` bodies on the v4 API, which no client of it sends but which a page can.
//! Clients other than browsers (SDKs, curl, wrangler, Miniflare's proxy) send no
//! `Origin` and are unaffected.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, CONTENT_TYPE, HOST, ORIGIN, VARY,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::envelope::ApiError;

/// What the REST port accepts from browsers and in `Host`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrowserPolicy {
    /// Host names (without port) accepted besides the loopback ones.
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://app.example`) whose browser requests are served, with CORS.
    pub cors_origins: Vec<String>,
    /// Whether an API token guards the port; then any `Host` is accepted, since a page
    /// cannot know the token.
    pub token_required: bool,
    /// Whether the port serves HTTPS, which is then the scheme of same-origin pages.
    pub https: bool,
}

/// The middleware: refuses what the policy does not allow, answers CORS preflights and
/// adds CORS headers for allowed origins.
pub async fn check(policy: Arc<BrowserPolicy>, request: Request, next: Next) -> Response {
    if let Err(refusal) = admit(&policy, &request) {
        return refusal.into_response();
    }
    let origin = request.headers().get(ORIGIN).cloned();
    let allowed = origin
        .as_ref()
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| policy.cors_origins.iter().any(|c| c == o));
    if allowed && request.method() == Method::OPTIONS {
        return preflight(&request, origin.expect("checked above"));
    }
    let mut response = next.run(request).await;
    if let (true, Some(origin)) = (allowed, origin) {
        let h = response.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.append(VARY, HeaderValue::from_static("Origin"));
    }
    response
}

fn admit(policy: &BrowserPolicy, request: &Request) -> Result<(), ApiError> {
    let headers = request.headers();
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    if !policy.token_required {
        if let Some(host) = &host {
            let name = host_name(host);
            if !is_loopback(name)
                && !policy
                    .allowed_hosts
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(name))
            {
                return Err(ApiError::new(
                    403,
                    10000,
                    format!("Host {host} is not a loopback name, and without --api-token tristore answers only those (a web page could otherwise reach it by DNS rebinding): use 127.0.0.1 or localhost, pass --allow-host {name}, or set --api-token"),
                ));
            }
        }
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let scheme = if policy.https { "https" } else { "http" };
        let same = host.is_some_and(|h| origin == format!("{scheme}://{h}"));
        if !same && !policy.cors_origins.iter().any(|c| c == origin) {
            return Err(ApiError::new(
                403,
                10000,
                format!("a browser request from {origin} was refused: tristore's REST API answers web pages only from origins named with --cors-origin"),
            ));
        }
    } else if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return Err(ApiError::new(
            403,
            10000,
            "a cross-site browser request was refused: name its origin with --cors-origin",
        ));
    }
    let writes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let text = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/plain")
        });
    if writes && text && request.uri().path().starts_with("/client/v4/") {
        return Err(ApiError::new(
            415,
            10001,
            "Content-Type text/plain is refused on the API (web pages can send it cross-site without asking): send application/json",
        ));
    }
    Ok(())
}

/// `localhost:8790` → `localhost`, `[::1]:8790` → `::1`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
}

fn is_loopback(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn preflight(request: &Request, origin: HeaderValue) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
    );
    let asked = request
        .headers()
        .get(ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or(HeaderValue::from_static("authorization, content-type"));
    h.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked);
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    h.insert(VARY, HeaderValue::from_static("Origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_with_and_without_ports() {
        for host in [
            "localhost",
            "LOCALHOST:8790",
            "app.localhost:1",
            "127.0.0.1:8790",
            "127.3.4.5",
            "[::1]:8790",
            "localhost.",
        ] {
            assert!(is_loopback(host_name(host)), "{host}");
        }
        for host in [
            "evil.example:8790",
            "0.0.0.0",
            "192.168.1.2:80",
            "localhost.evil.example",
            "[::]:1",
        ] {
            assert!(!is_loopback(host_name(host)), "{host}");
        }
    }
}
