//! Provisioning on start: the D1 databases (migrated), Vectorize indexes and R2 buckets
//! that a wrangler configuration binds (`wrangler.toml`, `wrangler.json` or
//! `wrangler.jsonc`), or Metacogna's by default ([`crate::defaults`]). Every step is
//! idempotent, so a start interrupted halfway is completed by the next.
//!
//! wrangler's `vectorize` entries name an index only (its shape is given to
//! `wrangler vectorize create`), so tristore reads two extra keys there: `dimensions`
//! and `metric` (or `preset`); without them an index is made with 768 dimensions,
//! cosine, the shape of Metacogna's. Only top-level bindings are read, not `[env.*]`.

use std::path::Path;

use serde::Deserialize;

use crate::d1::migrations;
use crate::error::{Error, Result};
use crate::vectorize::{IndexConfig, Metric};
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

/// A `vectorize` entry (with tristore's `dimensions` / `metric` / `preset`).
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

/// Creates the database if missing and applies the migrations it lacks; returns
/// whether it was created and the migrations applied now.
pub fn ensure_database(
    store: &Store,
    name: &str,
    all: &[migrations::Migration],
    table: &str,
) -> Result<(bool, Vec<String>)> {
    let created = match store.d1().create(name) {
        Ok(_) => true,
        Err(Error::AlreadyExists { .. }) => false,
        Err(e) => return Err(e),
    };
    let applied = migrations::apply(&store.d1().database(name)?, all, table)?;
    Ok((created, applied))
}

/// Creates the bucket if missing; returns whether it did.
pub fn ensure_bucket(store: &Store, name: &str) -> Result<bool> {
    match store.r2().create_bucket(name) {
        Ok(_) => Ok(true),
        Err(e) if e.kind == crate::r2::R2ErrorKind::BucketAlreadyExists => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Creates the index if missing; returns whether it did. An existing index keeps its
/// shape.
pub fn ensure_index(
    store: &Store,
    name: &str,
    description: &str,
    config: IndexConfig,
) -> Result<bool> {
    if store.vectorize().list()?.iter().any(|i| i.name == name) {
        return Ok(false);
    }
    store.vectorize().create(name, description, config)?;
    Ok(true)
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

/// Provisions everything `config` binds; migrations directories are relative to
/// `base`. Returns one line per resource for the start banner.
pub fn provision(store: &Store, config: &WranglerConfig, base: &Path) -> Result<Vec<String>> {
    let mark = |created: bool| if created { " (created now)" } else { "" };
    let mut lines = Vec::new();
    for d in &config.d1_databases {
        let dir = base.join(d.migrations_dir.as_deref().unwrap_or("migrations"));
        let all = if dir.is_dir() {
            migrations::load_dir(&dir, d.migrations_pattern.as_deref())?
        } else {
            Vec::new()
        };
        let table = d
            .migrations_table
            .as_deref()
            .unwrap_or(migrations::DEFAULT_TABLE);
        let (created, applied) = ensure_database(store, &d.database_name, &all, table)?;
        let info = store.d1().get(&d.database_name)?;
        lines.push(format!(
            "D1 database   {} ({}, binding {}){}",
            d.database_name,
            info.uuid,
            d.binding,
            mark(created)
        ));
        lines.extend(applied.iter().map(|m| format!("  applied migration {m}")));
    }
    for v in &config.vectorize {
        let shape = index_config(v).map_err(|message| Error::Config {
            path: base.to_owned(),
            message: format!("vectorize index {}: {message}", v.index_name),
        })?;
        let created = ensure_index(store, &v.index_name, "", shape)?;
        let actual = store.vectorize().get(&v.index_name)?.config;
        lines.push(format!(
            "Vectorize     {} ({} dimensions, {:?}, binding {}){}",
            v.index_name,
            actual.dimensions,
            actual.metric,
            v.binding,
            mark(created)
        ));
    }
    for b in &config.r2_buckets {
        let created = ensure_bucket(store, &b.bucket_name)?;
        lines.push(format!(
            "R2 bucket     {} (binding {}){}",
            b.bucket_name,
            b.binding,
            mark(created)
        ));
    }
    Ok(lines)
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
[[r2_buckets]]
binding = "FILES"
bucket_name = "files"
"#;
        let jsonc = r#"{
  // the app
  "name": "app", /* block */
  "d1_databases": [{"binding": "DB", "database_name": "app-db", "migrations_dir": "db/migrations",},],
  "vectorize": [{"binding": "VEC", "index_name": "docs", "dimensions": 3, "metric": "euclidean"}],
  "r2_buckets": [{"binding": "FILES", "bucket_name": "files", "note": "a // not a comment, }"}],
}"#;
        for (text, is_toml) in [(toml, true), (jsonc, false)] {
            let c = WranglerConfig::parse(text, is_toml).unwrap();
            assert_eq!(c.d1_databases[0].database_name, "app-db");
            assert_eq!(c.vectorize[0].dimensions, Some(3));
            assert_eq!(c.r2_buckets[0].bucket_name, "files");
        }
    }
}
