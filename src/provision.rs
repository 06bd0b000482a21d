//! Provisioning: the D1 databases (migrated), Vectorize indexes (with their metadata
//! indexes) and R2 buckets that a Worker binds, created on start, emptied on reset, and
//! the map from each binding name to its resource.
//!
//! A [`Plan`] comes from a wrangler configuration (`wrangler.toml`, `wrangler.json` or
//! `wrangler.jsonc`) or from Metacogna's defaults ([`crate::defaults`]). Every step is
//! idempotent, so a start interrupted halfway is completed by the next.
//!
//! wrangler's `vectorize` entries name an index only (its shape is given to
//! `wrangler vectorize create`), so tristore reads three extra keys there: `dimensions`
//! and `metric` (or `preset`), and `metadata_indexes` (`[{"propertyName": "docId",
//! "indexType": "string"}]`, the body of the REST call that creates one). wrangler
//! warns about keys it does not know and otherwise ignores them. Without a shape an
//! index is made with 768 dimensions, cosine, the shape of Metacogna's. Only top-level
//! bindings are read, not `[env.*]`.

use std::path::Path;

use serde::Deserialize;

use crate::d1::migrations::{self, Migration};
use crate::error::{Error, Result};
use crate::vectorize::{IndexConfig, MetadataIndex, Metric};
use crate::Store;

/// The parts of a wrangler configuration that name storage.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WranglerConfig {
    /// `[[d1_databases]]`.
    #[serde(default)]
    pub d1_databases: Vec<D1Binding>,
    /// `[[vectorize]]`.
    #[serde(default)]
    pub vectorize: Vec<VectorizeBinding>,
    /// `[[r2_buckets]]`.
    #[serde(default)]
    pub r2_buckets: Vec<R2Binding>,
}

/// A `d1_databases` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct D1Binding {
    /// The Worker's binding name.
    pub binding: String,
    /// The database to create.
    pub database_name: String,
    /// Relative to the configuration file; wrangler's default is `migrations`.
    #[serde(default)]
    pub migrations_dir: Option<String>,
    /// Default `d1_migrations`.
    #[serde(default)]
    pub migrations_table: Option<String>,
    /// Default `*.sql`.
    #[serde(default)]
    pub migrations_pattern: Option<String>,
}

/// A `vectorize` entry (with tristore's `dimensions` / `metric` / `preset` /
/// `metadata_indexes`).
#[derive(Debug, Clone, Deserialize)]
pub struct VectorizeBinding {
    /// The Worker's binding name.
    pub binding: String,
    /// The index to create.
    pub index_name: String,
    /// 1 to 1,536; default 768.
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// `cosine` (default), `euclidean` or `dot-product`.
    #[serde(default)]
    pub metric: Option<String>,
    /// A model preset such as `@cf/baai/bge-base-en-v1.5`, instead of the two above.
    #[serde(default)]
    pub preset: Option<String>,
    /// Metadata indexes to create with the index, so that filters work from the first
    /// write (Vectorize indexes only what is written after an index exists).
    #[serde(default)]
    pub metadata_indexes: Vec<MetadataIndex>,
}

/// An `r2_buckets` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct R2Binding {
    /// The Worker's binding name.
    pub binding: String,
    /// The bucket to create.
    pub bucket_name: String,
}

impl WranglerConfig {
    /// Reads `wrangler.toml`, or JSON with comments and trailing commas otherwise.
    pub fn load(path: &Path) -> Result<WranglerConfig> {
        let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        WranglerConfig::parse(&text, is_toml).map_err(|message| Error::Config {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses configuration text (TOML, or JSON with comments).
    pub fn parse(text: &str, is_toml: bool) -> std::result::Result<WranglerConfig, String> {
        if is_toml {
            toml::from_str(text).map_err(|e| e.to_string())
        } else {
            serde_json::from_str(&strip_jsonc(text)).map_err(|e| e.to_string())
        }
    }
}

/// JSON with comments (`//`, `/* */`) and trailing commas made plain JSON, leaving
/// strings untouched.
pub fn strip_jsonc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => out.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => while chars.next_if(|&n| n != '\n').is_some() {},
            ('/', Some('*')) => {
                chars.next();
                let mut last = ' ';
                for n in chars.by_ref() {
                    if last == '*' && n == '/' {
                        break;
                    }
                    last = n;
                }
            }
            (']' | '}', _) => {
                // A comma with only whitespace after it, before a closer, goes.
                let trimmed = out.trim_end().len();
                if out[..trimmed].ends_with(',') {
                    out.truncate(trimmed - 1);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// A D1 database to provision.
#[derive(Debug, Clone)]
pub struct PlannedDatabase {
    /// The Worker's binding name.
    pub binding: String,
    /// The database.
    pub name: String,
    /// Every migration, in order.
    pub migrations: Vec<Migration>,
    /// The bookkeeping table.
    pub migrations_table: String,
}

/// A Vectorize index to provision.
#[derive(Debug, Clone)]
pub struct PlannedIndex {
    /// The Worker's binding name.
    pub binding: String,
    /// The index.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its shape (kept by an index that exists already).
    pub config: IndexConfig,
    /// Metadata indexes it must have.
    pub metadata_indexes: Vec<MetadataIndex>,
}

/// An R2 bucket to provision.
#[derive(Debug, Clone)]
pub struct PlannedBucket {
    /// The Worker's binding name.
    pub binding: String,
    /// The bucket.
    pub name: String,
}

/// What a Worker binds: the resources to create, and which binding names which.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// D1 databases.
    pub databases: Vec<PlannedDatabase>,
    /// Vectorize indexes.
    pub indexes: Vec<PlannedIndex>,
    /// R2 buckets.
    pub buckets: Vec<PlannedBucket>,
}

impl Plan {
    /// The plan of a wrangler configuration; migrations directories are relative to
    /// `base` and read now.
    pub fn from_config(config: &WranglerConfig, base: &Path) -> Result<Plan> {
        let databases = config
            .d1_databases
            .iter()
            .map(|d| {
                let dir = base.join(d.migrations_dir.as_deref().unwrap_or("migrations"));
                let migrations = if dir.is_dir() {
                    migrations::load_dir(&dir, d.migrations_pattern.as_deref())?
                } else {
                    Vec::new()
                };
                Ok(PlannedDatabase {
                    binding: d.binding.clone(),
                    name: d.database_name.clone(),
                    migrations,
                    migrations_table: d
                        .migrations_table
                        .clone()
                        .unwrap_or_else(|| migrations::DEFAULT_TABLE.into()),
                })
            })
            .collect::<Result<_>>()?;
        let indexes = config
            .vectorize
            .iter()
            .map(|v| {
                Ok(PlannedIndex {
                    binding: v.binding.clone(),
                    name: v.index_name.clone(),
                    description: String::new(),
                    config: index_config(v).map_err(|message| Error::Config {
                        path: base.to_owned(),
                        message: format!("vectorize index {}: {message}", v.index_name),
                    })?,
                    metadata_indexes: v.metadata_indexes.clone(),
                })
            })
            .collect::<Result<_>>()?;
        let buckets = config
            .r2_buckets
            .iter()
            .map(|b| PlannedBucket {
                binding: b.binding.clone(),
                name: b.bucket_name.clone(),
            })
            .collect();
        Ok(Plan {
            databases,
            indexes,
            buckets,
        })
    }

    /// The database the binding `binding` names.
    pub fn database_for(&self, binding: &str) -> Option<&str> {
        let d = self.databases.iter().find(|d| d.binding == binding)?;
        Some(&d.name)
    }

    /// The index the binding `binding` names.
    pub fn index_for(&self, binding: &str) -> Option<&str> {
        let i = self.indexes.iter().find(|i| i.binding == binding)?;
        Some(&i.name)
    }

    /// The bucket the binding `binding` names.
    pub fn bucket_for(&self, binding: &str) -> Option<&str> {
        let b = self.buckets.iter().find(|b| b.binding == binding)?;
        Some(&b.name)
    }

    /// Creates what is missing: databases (then applies the migrations they lack),
    /// indexes (then the metadata indexes they lack) and buckets.
    pub fn apply(&self, store: &Store) -> Result<Provisioned> {
        let mut done = Provisioned::default();
        for d in &self.databases {
            let created = match store.d1().create(&d.name) {
                Ok(_) => true,
                Err(Error::AlreadyExists { .. }) => false,
                Err(e) => return Err(e),
            };
            let db = store.d1().database(&d.name)?;
            let applied = migrations::apply(&db, &d.migrations, &d.migrations_table)?;
            done.databases.push(Done {
                applied,
                ..Done::new(&d.name, created)
            });
        }
        for i in &self.indexes {
            let created = !store.vectorize().list()?.iter().any(|x| x.name == i.name);
            if created {
                store
                    .vectorize()
                    .create(&i.name, &i.description, i.config)?;
            }
            // Checked one by one, so that a start interrupted halfway is completed.
            let index = store.vectorize().index(&i.name)?;
            let existing = index.list_metadata_indexes();
            for m in &i.metadata_indexes {
                if !existing.iter().any(|e| e.property_name == m.property_name) {
                    index.create_metadata_index(&m.property_name, m.index_type)?;
                }
            }
            done.indexes.push(Done::new(&i.name, created));
        }
        for b in &self.buckets {
            let created = match store.r2().create_bucket(&b.name) {
                Ok(_) => true,
                Err(e) if e.kind == crate::r2::R2ErrorKind::BucketAlreadyExists => false,
                Err(e) => return Err(e.into()),
            };
            done.buckets.push(Done::new(&b.name, created));
        }
        Ok(done)
    }

    /// Empties every resource of the plan and provisions it again: databases lose their
    /// tables and are migrated anew (keeping their ids), indexes are recreated with
    /// their metadata indexes, buckets lose their objects and unfinished uploads.
    pub fn reset(&self, store: &Store) -> Result<Provisioned> {
        for d in &self.databases {
            if let Ok(db) = store.d1().database(&d.name) {
                db.clear()?;
            }
        }
        for i in &self.indexes {
            match store.vectorize().delete(&i.name) {
                Ok(()) => {}
                Err(e) if e.code == crate::vectorize::error::code::INDEX_NOT_FOUND => {}
                Err(e) => return Err(e.into()),
            }
        }
        for b in &self.buckets {
            if let Ok(bucket) = store.r2().bucket(&b.name) {
                bucket.clear()?;
            }
        }
        self.apply(store)
    }

    /// One line per resource, for the start banner.
    pub fn describe(&self, store: &Store, done: &Provisioned) -> Result<Vec<String>> {
        let mark = |created: bool| if created { " (created now)" } else { "" };
        let mut lines = Vec::new();
        for (d, done) in self.databases.iter().zip(&done.databases) {
            let info = store.d1().get(&d.name)?;
            lines.push(format!(
                "D1 database   {} ({}, {} tables, binding {}){}",
                d.name,
                info.uuid,
                info.num_tables,
                d.binding,
                mark(done.created)
            ));
            lines.extend(
                done.applied
                    .iter()
                    .map(|m| format!("  applied migration {m}")),
            );
        }
        for (i, done) in self.indexes.iter().zip(&done.indexes) {
            let actual = store.vectorize().get(&i.name)?.config;
            lines.push(format!(
                "Vectorize     {} ({} dimensions, {:?}, binding {}){}",
                i.name,
                actual.dimensions,
                actual.metric,
                i.binding,
                mark(done.created)
            ));
        }
        for (b, done) in self.buckets.iter().zip(&done.buckets) {
            lines.push(format!(
                "R2 bucket     {} (binding {}){}",
                b.name,
                b.binding,
                mark(done.created)
            ));
        }
        Ok(lines)
    }
}

/// What [`Plan::apply`] did, resource by resource in the plan's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Provisioned {
    /// The databases.
    pub databases: Vec<Done>,
    /// The indexes.
    pub indexes: Vec<Done>,
    /// The buckets.
    pub buckets: Vec<Done>,
}

/// What provisioning did to one resource.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Done {
    /// The resource's name.
    pub name: String,
    /// Whether it was created now.
    pub created: bool,
    /// Migrations applied now (databases only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub applied: Vec<String>,
}

impl Done {
    fn new(name: &str, created: bool) -> Done {
        Done {
            name: name.to_owned(),
            created,
            applied: Vec::new(),
        }
    }
}

fn index_config(v: &VectorizeBinding) -> std::result::Result<IndexConfig, String> {
    if let Some(preset) = &v.preset {
        return IndexConfig::preset(preset).ok_or_else(|| format!("unknown preset {preset:?}"));
    }
    let metric = match v.metric.as_deref().unwrap_or("cosine") {
        "cosine" => Metric::Cosine,
        "euclidean" => Metric::Euclidean,
        "dot-product" => Metric::DotProduct,
        other => {
            return Err(format!(
                "unknown metric {other:?}: use cosine, euclidean or dot-product"
            ))
        }
    };
    Ok(IndexConfig {
        dimensions: v.dimensions.unwrap_or(768),
        metric,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_toml_and_jsonc_alike() {
        let toml = r#"
name = "app"
[[d1_databases]]
binding = "DB"
database_name = "app-db"
database_id = "x"
migrations_dir = "db/migrations"
[[vectorize]]
binding = "VEC"
index_name = "docs"
dimensions = 3
metric = "euclidean"
metadata_indexes = [{propertyName = "docId", indexType = "string"}]
[[r2_buckets]]
binding = "FILES"
bucket_name = "files"
"#;
        let jsonc = r#"{
  // the app
  "name": "app", /* block */
  "d1_databases": [{"binding": "DB", "database_name": "app-db", "migrations_dir": "db/migrations",},],
  "vectorize": [{"binding": "VEC", "index_name": "docs", "dimensions": 3, "metric": "euclidean",
                 "metadata_indexes": [{"propertyName": "docId", "indexType": "string"}]}],
  "r2_buckets": [{"binding": "FILES", "bucket_name": "files", "note": "a // not a comment, }"}],
}"#;
        for (text, is_toml) in [(toml, true), (jsonc, false)] {
            let c = WranglerConfig::parse(text, is_toml).unwrap();
            assert_eq!(c.d1_databases[0].database_name, "app-db");
            assert_eq!(c.vectorize[0].dimensions, Some(3));
            assert_eq!(c.vectorize[0].metadata_indexes[0].property_name, "docId");
            assert_eq!(c.r2_buckets[0].bucket_name, "files");
        }
    }
}
