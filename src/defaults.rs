//! The embedded default: Metacogna's storage (`shared/seed/storage-architecture.md`).

use crate::d1::migrations::{self, Migration};
use crate::error::Result;
use crate::provision::{Plan, PlannedBucket, PlannedDatabase, PlannedIndex, Provisioned};
use crate::vectorize::{IndexConfig, MetadataIndex, Metric};
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

/// Metacogna's bindings: `DB`, `VECTOR_INDEX` (768 dimensions, BGE base, cosine, with
/// the metadata indexes its retrieval filters on) and `metacogna_vault`.
pub fn metacogna_plan() -> Plan {
    Plan {
        databases: vec![PlannedDatabase {
            binding: "DB".into(),
            name: METACOGNA_DATABASE.into(),
            migrations: metacogna_migrations(),
            migrations_table: migrations::DEFAULT_TABLE.into(),
        }],
        indexes: vec![PlannedIndex {
            binding: "VECTOR_INDEX".into(),
            name: METACOGNA_INDEX.into(),
            description: "Metacogna document chunks".into(),
            config: IndexConfig {
                dimensions: 768,
                metric: Metric::Cosine,
            },
            metadata_indexes: METACOGNA_METADATA_INDEXES
                .iter()
                .map(|&(property, kind)| MetadataIndex {
                    property_name: property.into(),
                    index_type: kind,
                })
                .collect(),
        }],
        buckets: vec![PlannedBucket {
            binding: "metacogna_vault".into(),
            name: METACOGNA_BUCKET.into(),
        }],
    }
}

/// Creates the `metacogna` database if it is missing and applies the embedded
/// migrations it lacks, creates the `metacogna-vault` bucket and the `metacogna-index`
/// index (with its metadata indexes) if they are missing. Safe to call on every start.
pub fn provision_metacogna(store: &Store) -> Result<Provisioned> {
    metacogna_plan().apply(store)
}
