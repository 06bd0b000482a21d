//! HTTPS for both ports: a rustls server configuration from PEM files, or from a
//! certificate for localhost that tristore makes itself and keeps in the data directory
//! (so a client told to trust it once keeps trusting it across restarts).
//!
//! The crypto provider is *ring*: it builds with a C compiler alone, where aws-lc-rs
//! needs cmake (see docs/design.md).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// The names the self-signed certificate is valid for: loopback, by name and address,
/// and the virtual-host bucket names under `localhost`.
const SELF_SIGNED_NAMES: [&str; 4] = ["localhost", "*.localhost", "127.0.0.1", "::1"];

/// A server configuration for the certificate chain in `cert` and the private key in
/// `key` (both PEM), offering HTTP/2 and HTTP/1.1.
pub fn config_from_pem(cert: &Path, key: &Path) -> io::Result<Arc<ServerConfig>> {
    let bad = |path: &Path, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: {e}", path.display()),
        )
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(cert, &e))?;
    if chain.is_empty() {
        return Err(bad(cert, &"no CERTIFICATE block"));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| bad(key, &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Where [`self_signed`] keeps its certificate and key.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// The certificate (PEM): what clients are told to trust.
    pub cert: PathBuf,
    /// Its private key (PEM, readable by the owner only).
    pub key: PathBuf,
}

/// The certificate for localhost in `data_dir/tls/`, made on first use and reused after.
pub fn self_signed(data_dir: &Path) -> io::Result<SelfSigned> {
    let dir = data_dir.join("tls");
    let files = SelfSigned {
        cert: dir.join("localhost.pem"),
        key: dir.join("localhost-key.pem"),
    };
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    std::fs::create_dir_all(&dir)?;
    let names = SELF_SIGNED_NAMES.map(String::from).to_vec();
    let made = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
    // The key first: a certificate on disk means its key is there too. No fsync: a
    // certificate lost to a crash is simply made again.
    write_private(&files.key, made.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&files.cert, made.cert.pem())?;
    Ok(files)
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}
