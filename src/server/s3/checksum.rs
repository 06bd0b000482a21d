//! S3's flexible checksums (`x-amz-checksum-<algorithm>`): base64 of the digest.

use base64::Engine;
use sha1::Digest;

use super::error::S3Error;
use crate::r2::HashAlgorithm;

/// An algorithm an S3 client may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// CRC-32 (IEEE), what current SDKs send by default.
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl Algorithm {
    /// Every algorithm, for scanning headers.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Crc32,
        Algorithm::Crc32c,
        Algorithm::Sha1,
        Algorithm::Sha256,
    ];

    /// From a header name (`x-amz-checksum-crc32`) or an algorithm name (`CRC32`).
    /// CRC64NVME is refused as R2 refused it: not implemented.
    pub fn from_name(name: &str) -> Result<Algorithm, S3Error> {
        let lower = name.to_ascii_lowercase();
        let bare = lower.strip_prefix("x-amz-checksum-").unwrap_or(&lower);
        match bare {
            "crc32" => Ok(Algorithm::Crc32),
            "crc32c" => Ok(Algorithm::Crc32c),
            "sha1" => Ok(Algorithm::Sha1),
            "sha256" => Ok(Algorithm::Sha256),
            _ => Err(
                S3Error::not_implemented(&format!("Checksum algorithm '{name}' is"))
                    .with("Hint", "use CRC32, CRC32C, SHA1 or SHA256"),
            ),
        }
    }

    /// `x-amz-checksum-crc32`, ...
    pub fn header_name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The same digest as the store computes it while writing.
    pub fn stored(self) -> HashAlgorithm {
        match self {
            Algorithm::Crc32 => HashAlgorithm::Crc32,
            Algorithm::Crc32c => HashAlgorithm::Crc32c,
            Algorithm::Sha1 => HashAlgorithm::Sha1,
            Algorithm::Sha256 => HashAlgorithm::Sha256,
        }
    }

    /// Decodes a header's base64 value, checking its length.
    pub fn decode(self, value: &str) -> Result<Vec<u8>, S3Error> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()
            .filter(|b| b.len() == self.len());
        bytes.ok_or_else(|| {
            S3Error::invalid_request(format!(
                "Value for {} header is invalid.",
                self.header_name()
            ))
        })
    }

    fn len(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }
}

/// Base64 of a digest, as the headers carry it.
pub fn encode(digest: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// A running digest.
pub enum Hasher {
    /// CRC-32.
    Crc32(crc32fast::Hasher),
    /// CRC-32C.
    Crc32c(u32),
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// SHA-256.
    Sha256(sha2::Sha256),
}

impl Hasher {
    /// A fresh digest of `algorithm`.
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Crc32 => Hasher::Crc32(Default::default()),
            Algorithm::Crc32c => Hasher::Crc32c(0),
            Algorithm::Sha1 => Hasher::Sha1(Default::default()),
            Algorithm::Sha256 => Hasher::Sha256(Default::default()),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc32(h) => h.update(data),
            Hasher::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    /// The digest, big-endian for the CRCs.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            Hasher::Crc32c(c) => c.to_be_bytes().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let digest = |alg| {
            let mut h = Hasher::new(alg);
            h.update(b"Hello ");
            h.update(b"world");
            encode(&h.finish())
        };
        // The values the AWS SDKs put in x-amz-checksum-* for "Hello world".
        assert_eq!(digest(Algorithm::Crc32), "i9aeUg==");
        assert_eq!(digest(Algorithm::Crc32c), "crUfeA==");
        assert_eq!(digest(Algorithm::Sha1), "e1AsOh9IyGCa4hLN+2Od7jlnP14=");
        assert_eq!(Algorithm::from_name("CRC32C").unwrap(), Algorithm::Crc32c);
        assert_eq!(
            Algorithm::from_name("x-amz-checksum-crc64nvme")
                .unwrap_err()
                .status,
            501
        );
        assert!(Algorithm::Crc32.decode("AAA=").is_err());
    }
}
