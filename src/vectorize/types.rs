//! The shapes of the binding and the REST API (spec 3.2, 3.3, 4), with their JSON forms.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

pub use super::hnsw::Metric;

/// A vector as written and as returned by `getByIds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorizeVector {
    /// Up to 64 bytes.
    pub id: String,
    /// Exactly the index's dimensions. Stored as float32; JSON output widens each float32
    /// to the double it equals, as Vectorize does (`58.8` comes back as `58.79999923706055`).
    #[serde(serialize_with = "widen")]
    pub values: Vec<f32>,
    /// At most one namespace per vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Free-form metadata (keys without `.`, `"` or a leading `$`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl VectorizeVector {
    /// A vector with no namespace or metadata.
    pub fn new(id: impl Into<String>, values: Vec<f32>) -> Self {
        VectorizeVector {
            id: id.into(),
            values,
            namespace: None,
            metadata: None,
        }
    }

    /// Sets the namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Sets the metadata (a JSON object; anything else is ignored).
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata.as_object().cloned();
        self
    }
}

fn widen<S: Serializer>(values: &[f32], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(values.iter().map(|&v| f64::from(v)))
}

fn widen_opt<S: Serializer>(values: &Option<Vec<f32>>, s: S) -> Result<S::Ok, S::Error> {
    match values {
        Some(v) => widen(v, s),
        None => s.serialize_none(),
    }
}

/// Which metadata a query returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReturnMetadata {
    /// No metadata (the default).
    #[default]
    None,
    /// Only the indexed properties, strings cut to their indexed prefix.
    Indexed,
    /// All of it.
    All,
}

impl<'de> Deserialize<'de> for ReturnMetadata {
    /// `"none" | "indexed" | "all"`, and `true` for `"all"` as the binding maps it.
    /// `false` is refused, as the service refuses it.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(true) => Ok(ReturnMetadata::All),
            Value::String(s) if s == "none" => Ok(ReturnMetadata::None),
            Value::String(s) if s == "indexed" => Ok(ReturnMetadata::Indexed),
            Value::String(s) if s == "all" => Ok(ReturnMetadata::All),
            _ => Err(serde::de::Error::custom("returnMetadata: expected value")),
        }
    }
}

/// Options of `query` and `queryById` (spec 3.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryOptions {
    /// How many matches (default 5).
    #[serde(default = "default_top_k", deserialize_with = "whole_number")]
    pub top_k: usize,
    /// Restrict to one namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Return each match's values.
    #[serde(default)]
    pub return_values: bool,
    /// Which metadata to return.
    #[serde(default)]
    pub return_metadata: ReturnMetadata,
    /// A metadata filter (spec 3.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
}

fn default_top_k() -> usize {
    5
}

/// A count sent as a JSON number: `5` or `5.0` (the Python SDK types `topK` as float).
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = f64::deserialize(d)?;
    if n >= 0.0 && n.fract() == 0.0 && n <= u32::MAX as f64 {
        Ok(n as usize)
    } else {
        Err(serde::de::Error::custom(format!(
            "topK: expected a whole number, got {n}"
        )))
    }
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            top_k: default_top_k(),
            namespace: None,
            return_values: false,
            return_metadata: ReturnMetadata::None,
            filter: None,
        }
    }
}

/// One match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorizeMatch {
    /// The vector's id.
    pub id: String,
    /// Cosine similarity (higher is closer), Euclidean distance or negated dot product
    /// (lower is closer); see spec 3.6.
    pub score: f64,
    /// With `returnValues`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "widen_opt"
    )]
    pub values: Option<Vec<f32>>,
    /// Unless `returnMetadata` is `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The vector's namespace, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The result of a query: matches best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorizeMatches {
    /// `matches.len()`.
    pub count: usize,
    /// Best first.
    pub matches: Vec<VectorizeMatch>,
}

/// The result of a mutation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VectorizeAsyncMutation {
    /// A UUID; `describe` reports the last one applied.
    pub mutation_id: String,
}

/// What `describe()` and REST `info` return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VectorizeIndexInfo {
    /// Live vectors.
    pub vector_count: usize,
    /// The index's dimensions.
    pub dimensions: usize,
    /// When the last mutation was applied (ISO 8601), `null` before the first.
    pub processed_up_to_datetime: Option<String>,
    /// The last mutation applied, `null` before the first.
    pub processed_up_to_mutation: Option<String>,
}

/// An index's fixed configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexConfig {
    /// 1 to 1,536.
    pub dimensions: usize,
    /// The distance metric.
    pub metric: Metric,
}

impl IndexConfig {
    /// The configuration a preset stands for (spec 4). Vectorize does not document the
    /// metric a preset implies; tristore uses cosine, which these models are trained for.
    pub fn preset(name: &str) -> Option<IndexConfig> {
        let dimensions = match name {
            "@cf/baai/bge-small-en-v1.5" => 384,
            "@cf/baai/bge-base-en-v1.5" | "cohere/embed-multilingual-v2.0" => 768,
            "@cf/baai/bge-large-en-v1.5" => 1024,
            "openai/text-embedding-ada-002" => 1536,
            _ => return None,
        };
        Some(IndexConfig {
            dimensions,
            metric: Metric::Cosine,
        })
    }
}

/// An index as the REST API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDescription {
    /// Its name.
    pub name: String,
    /// Free text given at creation.
    #[serde(default)]
    pub description: String,
    /// Dimensions and metric.
    pub config: IndexConfig,
    /// ISO 8601.
    pub created_on: String,
    /// ISO 8601 (the configuration is immutable, so equal to `created_on`).
    pub modified_on: String,
}

/// One page of vector ids (REST `list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VectorList {
    /// Ids on this page.
    pub count: usize,
    /// Live vectors in the index.
    pub total_count: usize,
    /// Whether more pages follow.
    pub is_truncated: bool,
    /// Pass to the next call; `null` on the last page.
    pub next_cursor: Option<String>,
    /// tristore's cursors do not expire: `null`.
    pub cursor_expiration_timestamp: Option<String>,
    /// The ids.
    pub vectors: Vec<VectorId>,
}

/// `{id}` in a [`VectorList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorId {
    /// The vector's id.
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The five presets of the Vectorize docs (cloudflare-surface, "Presets") with their
    /// dimensions, all cosine (tristore's choice: the docs name no metric); any other
    /// name, including a near miss, is no preset.
    #[test]
    fn presets_map_to_their_models_dimensions_and_cosine() {
        for (name, dimensions) in [
            ("@cf/baai/bge-small-en-v1.5", 384),
            ("@cf/baai/bge-base-en-v1.5", 768),
            ("@cf/baai/bge-large-en-v1.5", 1024),
            ("openai/text-embedding-ada-002", 1536),
            ("cohere/embed-multilingual-v2.0", 768),
        ] {
            assert_eq!(
                IndexConfig::preset(name),
                Some(IndexConfig {
                    dimensions,
                    metric: Metric::Cosine
                }),
                "{name}"
            );
        }
        for name in [
            "",
            "@cf/baai/bge-base-en-v1",
            "@CF/BAAI/BGE-BASE-EN-V1.5",
            "bge-base",
        ] {
            assert_eq!(IndexConfig::preset(name), None, "{name:?}");
        }
    }
}
