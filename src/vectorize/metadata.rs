//! Vector metadata: the key rules, and metadata indexes, which are what filters read.
//!
//! As in Vectorize, a filter sees a property only through a metadata index, and an index
//! covers only vectors written after it was created: each vector keeps the values that
//! were indexed when it was written ([`IndexedValues`]), and each index keeps postings
//! from value to slots.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{code, Op, Result, VectorizeError};
use super::Limits;

/// The type of a metadata index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetadataIndexType {
    /// Strings, indexed on their first 64 bytes.
    String,
    /// Numbers, as float64.
    Number,
    /// Booleans.
    Boolean,
}

/// A metadata index: which property, which type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataIndex {
    /// The property; a dot addresses a nested one.
    pub property_name: String,
    /// What values it indexes.
    pub index_type: MetadataIndexType,
}

/// One indexed value. Ordered so that a range over one type is a contiguous range of
/// keys: booleans, then numbers (by `total_cmp`), then strings (bytewise).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Indexed {
    /// A boolean.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string's indexed prefix.
    Str(String),
}

impl Indexed {
    fn rank(&self) -> u8 {
        match self {
            Indexed::Bool(_) => 0,
            Indexed::Num(_) => 1,
            Indexed::Str(_) => 2,
        }
    }

    /// The indexed form of a JSON scalar for an index of `ty`, if that index takes it.
    pub(crate) fn of(
        value: &Value,
        ty: MetadataIndexType,
        max_string_bytes: usize,
    ) -> Option<Self> {
        match (value, ty) {
            (Value::Bool(b), MetadataIndexType::Boolean) => Some(Indexed::Bool(*b)),
            (Value::Number(n), MetadataIndexType::Number) => n.as_f64().map(Indexed::Num),
            (Value::String(s), MetadataIndexType::String) => {
                Some(Indexed::Str(truncate_utf8(s, max_string_bytes).to_owned()))
            }
            _ => None,
        }
    }
}

impl PartialEq for Indexed {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Indexed {}
impl Ord for Indexed {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Indexed::Bool(a), Indexed::Bool(b)) => a.cmp(b),
            (Indexed::Num(a), Indexed::Num(b)) => a.total_cmp(b),
            (Indexed::Str(a), Indexed::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}
impl PartialOrd for Indexed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The longest prefix of `s` of at most `max` bytes that is whole UTF-8 characters.
pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The values one vector had indexed when it was written: (property, value) pairs.
pub type IndexedValues = Vec<(String, Indexed)>;

/// Checks metadata against Vectorize's rules: keys non-empty, without `.` or `"`, not
/// starting with `$`, at any depth; compact JSON at most `limits.max_metadata_bytes`.
pub(crate) fn validate(
    op: Op,
    id: &str,
    metadata: &Map<String, Value>,
    limits: &Limits,
) -> Result<()> {
    fn keys(op: Op, id: &str, map: &Map<String, Value>) -> Result<()> {
        for (k, v) in map {
            if k.is_empty() || k.contains('.') || k.contains('"') || k.starts_with('$') {
                return Err(VectorizeError::new(
                    op,
                    code::INVALID_METADATA,
                    format!(
                        "invalid metadata for id=\"{id}\": key {k:?} is not allowed; keys must be non-empty, must not contain '.' or '\"', and must not start with '$'"
                    ),
                ));
            }
            if let Value::Object(inner) = v {
                keys(op, id, inner)?;
            }
        }
        Ok(())
    }
    keys(op, id, metadata)?;
    let size = serde_json::to_vec(metadata)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > limits.max_metadata_bytes {
        return Err(VectorizeError::new(
            op,
            code::INVALID_METADATA,
            format!(
                "invalid metadata for id=\"{id}\": metadata is {size} bytes, over the limit of {} bytes",
                limits.max_metadata_bytes
            ),
        ));
    }
    Ok(())
}

/// Looks up a dotted property (`a.b` is `{"a": {"b": ...}}`).
pub(crate) fn lookup<'m>(metadata: &'m Map<String, Value>, property: &str) -> Option<&'m Value> {
    let mut parts = property.split('.');
    let mut value = metadata.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// Postings: for each metadata index, which slots hold which value.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Postings {
    indexes: Vec<(MetadataIndex, BTreeMap<Indexed, Vec<u32>>)>,
}

impl Postings {
    /// The indexes, in creation order.
    pub fn indexes(&self) -> impl Iterator<Item = &MetadataIndex> {
        self.indexes.iter().map(|(i, _)| i)
    }

    /// Adds an index (it starts empty: no backfill, as in Vectorize).
    pub(crate) fn create(&mut self, index: MetadataIndex) {
        self.indexes.push((index, BTreeMap::new()));
    }

    /// Drops an index; returns whether it existed.
    pub(crate) fn delete(&mut self, property: &str) -> bool {
        let before = self.indexes.len();
        self.indexes.retain(|(i, _)| i.property_name != property);
        before != self.indexes.len()
    }

    /// The values of `metadata` each current index takes; a string array gives one value
    /// per element.
    pub(crate) fn extract(
        &self,
        metadata: Option<&Map<String, Value>>,
        max_string_bytes: usize,
    ) -> IndexedValues {
        let Some(metadata) = metadata else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (index, _) in &self.indexes {
            let Some(value) = lookup(metadata, &index.property_name) else {
                continue;
            };
            let elements: &[Value] = match value {
                Value::Array(items) => items,
                single => std::slice::from_ref(single),
            };
            for v in elements {
                if let Some(x) = Indexed::of(v, index.index_type, max_string_bytes) {
                    out.push((index.property_name.clone(), x));
                }
            }
        }
        out
    }

    /// Records `slot` under its values.
    pub(crate) fn add(&mut self, slot: u32, values: &IndexedValues) {
        for (property, value) in values {
            if let Some(map) = self.map_mut(property) {
                map.entry(value.clone()).or_default().push(slot);
            }
        }
    }

    /// Forgets `slot` (its values as recorded by [`Postings::add`]).
    pub(crate) fn remove(&mut self, slot: u32, values: &IndexedValues) {
        for (property, value) in values {
            if let Some(map) = self.map_mut(property) {
                if let Some(list) = map.get_mut(value) {
                    if let Some(pos) = list.iter().position(|&s| s == slot) {
                        list.swap_remove(pos);
                    }
                    if list.is_empty() {
                        map.remove(value);
                    }
                }
            }
        }
    }

    fn map_mut(&mut self, property: &str) -> Option<&mut BTreeMap<Indexed, Vec<u32>>> {
        self.indexes
            .iter_mut()
            .find(|(i, _)| i.property_name == property)
            .map(|(_, m)| m)
    }

    /// The postings of `property`, if it is indexed.
    pub(crate) fn map(&self, property: &str) -> Option<&BTreeMap<Indexed, Vec<u32>>> {
        self.indexes
            .iter()
            .find(|(i, _)| i.property_name == property)
            .map(|(_, m)| m)
    }

    /// The subset of `metadata` that is indexed (for `returnMetadata: "indexed"`), with
    /// strings cut to their indexed prefix.
    pub(crate) fn indexed_view(values: &IndexedValues) -> Map<String, Value> {
        let mut out = Map::new();
        for (property, value) in values {
            let v = match value {
                Indexed::Bool(b) => Value::Bool(*b),
                Indexed::Num(n) => {
                    serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
                }
                Indexed::Str(s) => Value::String(s.clone()),
            };
            match out.get_mut(property) {
                None => {
                    out.insert(property.clone(), v);
                }
                Some(Value::Array(items)) => items.push(v),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, v]);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_cut_at_a_character_boundary() {
        assert_eq!(truncate_utf8("abc", 64), "abc");
        let s = "é".repeat(40); // 80 bytes
        assert_eq!(truncate_utf8(&s, 64).len(), 64);
        assert_eq!(truncate_utf8(&format!("a{s}"), 64).len(), 63);
    }

    #[test]
    fn ordering_keeps_each_type_contiguous() {
        let mut v = vec![
            Indexed::Str("b".into()),
            Indexed::Num(2.0),
            Indexed::Bool(true),
            Indexed::Num(-1.0),
            Indexed::Str("a".into()),
            Indexed::Bool(false),
        ];
        v.sort();
        assert_eq!(
            v,
            vec![
                Indexed::Bool(false),
                Indexed::Bool(true),
                Indexed::Num(-1.0),
                Indexed::Num(2.0),
                Indexed::Str("a".into()),
                Indexed::Str("b".into()),
            ]
        );
    }
}
