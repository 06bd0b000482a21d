//! Calls to the v4 REST API with an API token, unwrapping Cloudflare's
//! `{success, errors, result}` envelope into a clear error.

use std::sync::Mutex;

use serde_json::Value;

use super::http::{BaseUrl, Connection, Response};
use super::{Result, TransferError};

/// The remote's v4 REST API for one account.
pub struct Api {
    base: BaseUrl,
    account: String,
    token: String,
    connection: Mutex<Option<Connection>>,
}

impl Api {
    /// The API at `base` (e.g. `https://api.cloudflare.com/client/v4`) for `account`,
    /// authenticated with `token`.
    pub fn new(base: &str, account: &str, token: &str) -> Result<Api> {
        let base = BaseUrl::parse(base).map_err(|e| TransferError(format!("--api-base: {e}")))?;
        Ok(Api {
            base,
            account: account.to_owned(),
            token: token.to_owned(),
            connection: Mutex::new(None),
        })
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}://{}{}/accounts/{}{path}",
            if self.base.https { "https" } else { "http" },
            self.base.authority,
            self.base.path,
            self.account
        )
    }

    /// Sends `method path` (under `/accounts/{account}`) with `body` and returns the
    /// envelope's `result`.
    pub fn call(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Result<Value> {
        let target = format!("{}/accounts/{}{path}", self.base.path, self.account);
        let auth = format!("Bearer {}", self.token);
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", content_type),
        ];
        let response = self.send(method, &target, &headers, body)?;
        envelope(&self.url(path), &response)
    }

    /// `GET path`'s result, or `None` when the remote answers 404 (no such thing).
    pub fn find(&self, path: &str) -> Result<Option<Value>> {
        let target = format!("{}/accounts/{}{path}", self.base.path, self.account);
        let auth = format!("Bearer {}", self.token);
        let response = self.send("GET", &target, &[("Authorization", auth.as_str())], &[])?;
        if response.status == 404 {
            return Ok(None);
        }
        envelope(&self.url(path), &response).map(Some)
    }

    /// [`call`](Self::call) with a JSON body (or none, for `GET` and `DELETE`).
    pub fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.call(method, path, "application/json", &bytes)
    }

    /// One request on the kept connection; a connection the server closed while idle is
    /// reopened once.
    fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response> {
        let mut slot = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        let reused = slot.is_some();
        for attempt in 0..2 {
            if slot.is_none() {
                *slot = Some(self.base.connect().map_err(|e| self.unreachable(&e))?);
            }
            match slot
                .as_mut()
                .expect("set above")
                .send(method, target, headers, body)
            {
                Ok(r) => return Ok(r),
                Err(_) if attempt == 0 && reused => *slot = None,
                Err(e) => {
                    *slot = None;
                    return Err(self.unreachable(&e));
                }
            }
        }
        unreachable!("the second attempt returns")
    }

    fn unreachable(&self, e: &std::io::Error) -> TransferError {
        TransferError(format!(
            "cannot reach the remote API at {}://{}{}: {e} (check --api-base and the network)",
            if self.base.https { "https" } else { "http" },
            self.base.authority,
            self.base.path
        ))
    }
}

/// Downloads or uploads a transfer file at a full URL the API handed out (D1's signed
/// export and import URLs), without the API token: the URL is the capability.
pub fn fetch_url(method: &str, url: &str, body: &[u8]) -> Result<Response> {
    let base = BaseUrl::parse(url).map_err(TransferError)?;
    let target = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
        .unwrap_or_else(|| "/".to_owned());
    let fail = |e: std::io::Error| TransferError(format!("{method} {url}: {e}"));
    let mut connection = base.connect().map_err(fail)?;
    let response = connection.send(method, &target, &[], body).map_err(fail)?;
    if response.status >= 300 {
        return Err(TransferError(format!(
            "{method} {url} answered {}: {}",
            response.status,
            response.text()
        )));
    }
    Ok(response)
}

/// The `result` of a successful envelope, or an error quoting Cloudflare's.
fn envelope(url: &str, response: &Response) -> Result<Value> {
    let parsed: Option<Value> = serde_json::from_slice(&response.body).ok();
    let success = parsed
        .as_ref()
        .and_then(|v| v["success"].as_bool())
        .unwrap_or(false);
    if (200..300).contains(&response.status) && success {
        return Ok(parsed
            .map(|mut v| v["result"].take())
            .unwrap_or(Value::Null));
    }
    let message = parsed
        .as_ref()
        .and_then(|v| v["errors"].as_array())
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    format!(
                        "{} (code {})",
                        e["message"].as_str().unwrap_or("?"),
                        e["code"]
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| response.text().chars().take(300).collect());
    let hint = match response.status {
        401 | 403 => " (check --api-token / CLOUDFLARE_API_TOKEN and that it may use this account)",
        _ => "",
    };
    Err(TransferError(format!(
        "the remote answered {} to {url}: {message}{hint}",
        response.status
    )))
}
