//! The embedded default: Metacogna's storage (`shared/seed/storage-architecture.md`).

use crate::d1::migrations::{self, Migration};
use crate::error::Result;
use crate::provision;
use crate::Store;

/// The D1 database Metacogna binds as `DB`.
pub const METACOGNA_DATABASE: &str = "metacogna";

/// The R2 bucket Metacogna binds as `metacogna_vault`.
pub const METACOGNA_BUCKET: &str = "metacogna-vault";

/// The Vectorize index Metacogna binds as `VECTOR_INDEX`: 768 dimensions (BGE base),
/// cosine.
pub const METACOGNA_INDEX: &str = "metacogna-index";

/// Metadata properties of Metacogna's chunks that get a metadata index, so that its
/// retrieval can filter by document (`docId`) and position (`chunkIndex`).
pub const METACOGNA_METADATA_INDEXES: [(&str, crate::vectorize::MetadataIndexType); 2] = [
    ("docId", crate::vectorize::MetadataIndexType::String),
    ("chunkIndex", crate::vectorize::MetadataIndexType::Number),
];

/// `db/migrations/`, compiled into the binary.
pub fn metacogna_migrations() -> Vec<Migration> {
    vec![Migration {
        name: "0001_initial.sql".into(),
        sql: include_str!("../db/migrations/0001_initial.sql").into(),
    }]
}

/// What [`provision_metacogna`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// Whether the database was created now.
    pub created: bool,
    /// Migrations applied now.
    pub applied: Vec<String>,
    /// Whether the bucket was created now.
    pub bucket_created: bool,
    /// Whether the Vectorize index was created now.
    pub index_created: bool,
}

/// Creates the `metacogna` database if it is missing and applies the embedded
/// migrations it lacks, creates the `metacogna-vault` bucket and the `metacogna-index`
/// index (with its metadata indexes) if they are missing. Safe to call on every start.
pub fn provision_metacogna(store: &Store) -> Result<Provisioned> {
    let (created, applied) = provision::ensure_database(
        store,
        METACOGNA_DATABASE,
        &metacogna_migrations(),
        migrations::DEFAULT_TABLE,
    )?;
    let bucket_created = provision::ensure_bucket(store, METACOGNA_BUCKET)?;
    let config = crate::vectorize::IndexConfig {
        dimensions: 768,
        metric: crate::vectorize::Metric::Cosine,
    };
    let index_created =
        provision::ensure_index(store, METACOGNA_INDEX, "Metacogna document chunks", config)?;
    // Checked one by one, so that a start interrupted halfway is completed.
    let index = store.vectorize().index(METACOGNA_INDEX)?;
    let existing = index.list_metadata_indexes();
    for (property, kind) in METACOGNA_METADATA_INDEXES {
        if !existing.iter().any(|i| i.property_name == property) {
            index.create_metadata_index(property, kind)?;
        }
    }
    Ok(Provisioned {
        created,
        applied,
        bucket_created,
        index_created,
    })
}
