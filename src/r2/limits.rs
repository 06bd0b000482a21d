//! R2's limits (spec 5.8), configurable.

/// Limits every bucket enforces; defaults are R2's published values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct R2Limits {
    /// Bytes in a key (1,024).
    pub max_key_bytes: usize,
    /// Bytes of custom metadata, keys plus values (8,192).
    pub max_custom_metadata_bytes: usize,
    /// Bytes in one put or one part (5 GiB − 5 MiB).
    pub max_upload_bytes: u64,
    /// Smallest part other than the last (5 MiB).
    pub min_part_bytes: u64,
    /// Parts per multipart upload (10,000).
    pub max_parts: u32,
}

impl Default for R2Limits {
    fn default() -> Self {
        R2Limits {
            max_key_bytes: 1024,
            max_custom_metadata_bytes: 8192,
            max_upload_bytes: 5 * 1024 * 1024 * 1024 - 5 * 1024 * 1024,
            min_part_bytes: 5 * 1024 * 1024,
            max_parts: 10_000,
        }
    }
}
