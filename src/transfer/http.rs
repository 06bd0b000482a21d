//! A small blocking HTTP/1.1 client with keep-alive and TLS: what `pull` and `push` talk
//! to a remote with, and what `tristore bench http` loads the emulator with (so a bench
//! measures the server, not a client library). Bodies are read whole; callers that move
//! large objects do it in parts.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// An answer: status, headers and body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Header (name, value) pairs as sent, names in any case.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A byte stream to a server: plain TCP or TLS over it.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// How long a silent server is waited for before the request fails.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// A keep-alive HTTP/1.1 connection to one server, reopened after an error.
pub struct Connection {
    addr: SocketAddr,
    host: String,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    stream: Option<BufReader<Box<dyn Stream>>>,
}

impl Connection {
    /// A connection to `addr`, sending `Host: host`; over TLS when `tls` is given, checking
    /// the certificate against `server_name`.
    pub fn new(
        addr: SocketAddr,
        host: impl Into<String>,
        tls: Option<(
            Arc<rustls::ClientConfig>,
            rustls::pki_types::ServerName<'static>,
        )>,
    ) -> Connection {
        Connection {
            addr,
            host: host.into(),
            tls,
            stream: None,
        }
    }

    /// Sends one request (`target` is the path and query) and reads the answer.
    pub fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(10))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            let stream: Box<dyn Stream> = match &self.tls {
                Some((config, name)) => {
                    let tls = rustls::ClientConnection::new(config.clone(), name.clone())
                        .map_err(io::Error::other)?;
                    Box::new(rustls::StreamOwned::new(tls, s))
                }
                None => Box::new(s),
            };
            self.stream = Some(BufReader::new(stream));
        }
        let result = self.exchange(method, target, headers, body);
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn exchange(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let stream = self.stream.as_mut().expect("connected above");
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let out = stream.get_mut();
        out.write_all(head.as_bytes())?;
        out.write_all(body)?;
        out.flush()?;
        let (response, close) = read_response(stream, method)?;
        if close {
            self.stream = None;
        }
        Ok(response)
    }
}

/// Reads one answer to a `method` request; also says whether the server will close the
/// connection after it. A remote is not trusted: sizes it announces are not allocated
/// before the bytes arrive.
pub fn read_response(stream: &mut dyn BufRead, method: &str) -> io::Result<(Response, bool)> {
    let mut line = String::new();
    if read_line(stream, &mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection without answering",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    let mut headers = Vec::new();
    loop {
        line.clear();
        if read_line(stream, &mut line)? == 0 {
            return Err(truncated());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = Some(
                    v.parse::<u64>()
                        .map_err(|_| io::Error::other(format!("bad Content-Length {v:?}")))?,
                );
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
            } else if k.eq_ignore_ascii_case("connection") {
                close = v.eq_ignore_ascii_case("close");
            }
            headers.push((k.to_owned(), v.to_owned()));
        }
    }
    let mut body = Vec::new();
    if method == "HEAD" || status == 204 || status == 304 {
    } else if chunked {
        loop {
            line.clear();
            read_line(stream, &mut line)?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::other("bad chunk size"))?;
            if size == 0 {
                // Trailers, if any, up to the blank line.
                loop {
                    line.clear();
                    if read_line(stream, &mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            read_exactly(stream, size, &mut body)?;
            line.clear();
            read_line(stream, &mut line)?;
        }
    } else if let Some(n) = length {
        read_exactly(stream, n, &mut body)?;
    } else {
        stream.read_to_end(&mut body)?;
        close = true;
    }
    Ok((
        Response {
            status,
            headers,
            body,
        },
        close,
    ))
}

/// Longest status or header line read: a remote that sends an endless one fails
/// instead of filling memory.
const MAX_LINE: u64 = 64 * 1024;

fn read_line(stream: &mut dyn BufRead, line: &mut String) -> io::Result<usize> {
    let n = Read::take(&mut *stream, MAX_LINE).read_line(line)?;
    if n as u64 == MAX_LINE && !line.ends_with('\n') {
        return Err(io::Error::other(
            "a line of the answer is longer than 64 KiB",
        ));
    }
    Ok(n)
}

fn truncated() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the answer ended early")
}

/// Appends exactly `n` bytes of `stream` to `out`, growing it as they arrive.
fn read_exactly(stream: &mut dyn BufRead, n: u64, out: &mut Vec<u8>) -> io::Result<()> {
    let before = out.len() as u64;
    stream.take(n).read_to_end(out)?;
    if out.len() as u64 - before != n {
        return Err(truncated());
    }
    Ok(())
}

/// A parsed `http://` or `https://` base URL: where to connect and what path to prefix.
#[derive(Debug, Clone)]
pub struct BaseUrl {
    /// `https` or `http`.
    pub https: bool,
    /// `host` or `host:port`, as the `Host` header carries it.
    pub authority: String,
    /// The host name alone.
    pub host: String,
    /// The port, 443 or 80 unless given.
    pub port: u16,
    /// The path prefix, without a trailing slash (may be empty).
    pub path: String,
}

impl BaseUrl {
    /// Parses `url`; an error says what is wrong with it.
    pub fn parse(url: &str) -> Result<BaseUrl, String> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("{url:?} is not an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        // `[::1]:8790`: the brackets and the port are not part of the host.
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && (!h.starts_with('[') || h.ends_with(']')) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("{url:?} has a bad port {p:?}"))?,
            ),
            _ => (authority, if https { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{url:?} names no host"));
        }
        Ok(BaseUrl {
            https,
            authority: authority.to_owned(),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// A connection to this server: the host name resolved, TLS checked against the
    /// system's trusted certificates.
    pub fn connect(&self) -> io::Result<Connection> {
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::other(format!("{} resolves to no address", self.host)))?;
        let tls = if self.https {
            let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                .map_err(io::Error::other)?;
            Some((system_tls()?, name))
        } else {
            None
        };
        Ok(Connection::new(addr, self.authority.clone(), tls))
    }
}

/// A TLS configuration trusting the system's certificate authorities.
fn system_tls() -> io::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        // A certificate the store cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(io::Error::other(
            "no trusted certificate authorities found on this system (install ca-certificates, or set SSL_CERT_FILE)",
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let u = BaseUrl::parse("https://api.cloudflare.com/client/v4/").unwrap();
        assert!(u.https);
        assert_eq!((u.host.as_str(), u.port), ("api.cloudflare.com", 443));
        assert_eq!(u.path, "/client/v4");
        let u = BaseUrl::parse("http://127.0.0.1:8791").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1:8791", 8791, "")
        );
        assert!(BaseUrl::parse("ftp://x").is_err());
        assert!(BaseUrl::parse("http://:80").is_err());
        assert!(BaseUrl::parse("http://h:port").is_err());
        let u = BaseUrl::parse("http://[::1]:8790/client/v4").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.authority.as_str()),
            ("::1", 8790, "[::1]:8790")
        );
    }
}
