//! Metadata filters (spec 3.4): parsing the JSON, and resolving a filter to the set of
//! slots it matches through the metadata indexes' postings.
//!
//! Semantics where Vectorize's docs are silent (recorded in `docs/compatibility.md`):
//! a vector matches `$eq`/`$in` when any of its indexed values for the property is equal
//! (string arrays index each element); `$ne`/`$nin` match exactly the vectors `$eq`/`$in`
//! do not, including vectors without the property; `{"$eq": null}` matches vectors with
//! no indexed value for the property; a range matches values of the bound's type only.
//! A property without a metadata index has no indexed values.

use std::ops::Bound;

use serde_json::{Map, Value};

use super::bitset::Bitset;
use super::error::{code, Op, Result, VectorizeError};
use super::metadata::{truncate_utf8, Indexed, Postings};
use super::Limits;

/// A filter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// `null`: "no value".
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
}

/// The condition on one property.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `$eq` (or a bare value).
    Eq(Scalar),
    /// `$ne`.
    Ne(Scalar),
    /// `$in`.
    In(Vec<Scalar>),
    /// `$nin`.
    Nin(Vec<Scalar>),
    /// `$gt`/`$gte` and/or `$lt`/`$lte`: (value, inclusive).
    Range {
        /// The lower bound.
        lower: Option<(Scalar, bool)>,
        /// The upper bound.
        upper: Option<(Scalar, bool)>,
    },
}

/// A parsed filter: every clause must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// (dotted property, condition), in the filter's order.
    pub clauses: Vec<(String, Condition)>,
}

fn invalid(message: impl Into<String>) -> VectorizeError {
    VectorizeError::new(Op::Query, code::INVALID_FILTER, message)
}

impl Filter {
    /// Parses and checks a filter: a non-empty object under the size limit whose keys
    /// follow the rules and whose values are scalars or one operator object.
    pub fn parse(json: &Value, limits: &Limits) -> Result<Filter> {
        let Value::Object(map) = json else {
            return Err(invalid("filter must be a JSON object"));
        };
        if map.is_empty() {
            return Err(invalid("filter must not be empty"));
        }
        let size = serde_json::to_vec(json).map_or(usize::MAX, |v| v.len());
        if size >= limits.max_filter_bytes {
            return Err(invalid(format!(
                "filter is {size} bytes of JSON; it must be under {} bytes",
                limits.max_filter_bytes
            )));
        }
        let mut clauses = Vec::with_capacity(map.len());
        for (key, value) in map {
            if key.is_empty()
                || key.chars().count() > 512
                || key.contains('"')
                || key.starts_with('$')
            {
                return Err(invalid(format!(
                    "invalid filter key {key:?}: keys must be 1 to 512 characters, must not contain '\"' and must not start with '$'"
                )));
            }
            clauses.push((key.clone(), condition(key, value)?));
        }
        Ok(Filter { clauses })
    }

    /// The slots among `universe` that match, reading values through `postings`.
    pub(crate) fn matching(
        &self,
        postings: &Postings,
        universe: &Bitset,
        max_string_bytes: usize,
    ) -> Bitset {
        let mut result = universe.clone();
        for (property, condition) in &self.clauses {
            let hits = |values: &[Scalar]| {
                let mut set = Bitset::new(universe.len());
                let Some(map) = postings.map(property) else {
                    return set;
                };
                for v in values {
                    match v {
                        Scalar::Null => {
                            // "no value": everything minus the slots with any value.
                            let mut any = Bitset::new(universe.len());
                            map.values().flatten().for_each(|&s| any.insert(s));
                            let mut none = universe.clone();
                            none.subtract(&any);
                            set.union(&none);
                        }
                        other => {
                            if let Some(slots) =
                                key(other, max_string_bytes).and_then(|k| map.get(&k))
                            {
                                slots.iter().for_each(|&s| set.insert(s));
                            }
                        }
                    }
                }
                set
            };
            match condition {
                Condition::Eq(v) => result.intersect(&hits(std::slice::from_ref(v))),
                Condition::In(vs) => result.intersect(&hits(vs)),
                Condition::Ne(v) => result.subtract(&hits(std::slice::from_ref(v))),
                Condition::Nin(vs) => result.subtract(&hits(vs)),
                Condition::Range { lower, upper } => {
                    let mut set = Bitset::new(universe.len());
                    if let Some(map) = postings.map(property) {
                        let (lo, hi) = range_bounds(lower, upper, max_string_bytes);
                        for slots in map.range((lo, hi)).map(|(_, s)| s) {
                            slots.iter().for_each(|&s| set.insert(s));
                        }
                    }
                    result.intersect(&set);
                }
            }
        }
        result
    }
}

/// The index key a filter scalar looks up (strings cut as the index cuts them).
fn key(v: &Scalar, max_string_bytes: usize) -> Option<Indexed> {
    match v {
        Scalar::Null => None,
        Scalar::Bool(b) => Some(Indexed::Bool(*b)),
        Scalar::Num(n) => Some(Indexed::Num(*n)),
        Scalar::Str(s) => Some(Indexed::Str(truncate_utf8(s, max_string_bytes).to_owned())),
    }
}

/// Key bounds for a range; an open side stops at the edge of the bound's type so that a
/// number range never reaches strings and vice versa.
fn range_bounds(
    lower: &Option<(Scalar, bool)>,
    upper: &Option<(Scalar, bool)>,
    max_string_bytes: usize,
) -> (Bound<Indexed>, Bound<Indexed>) {
    let bound = |b: &Option<(Scalar, bool)>| {
        b.as_ref().and_then(|(v, inclusive)| {
            key(v, max_string_bytes).map(|k| {
                if *inclusive {
                    Bound::Included(k)
                } else {
                    Bound::Excluded(k)
                }
            })
        })
    };
    let is_num = matches!(lower.as_ref().or(upper.as_ref()), Some((Scalar::Num(_), _)));
    let lo = bound(lower).unwrap_or(if is_num {
        Bound::Included(Indexed::Num(f64::NEG_INFINITY))
    } else {
        Bound::Included(Indexed::Str(String::new()))
    });
    let hi = bound(upper).unwrap_or(if is_num {
        Bound::Included(Indexed::Num(f64::INFINITY))
    } else {
        Bound::Unbounded
    });
    (lo, hi)
}

fn scalar(key: &str, v: &Value) -> Result<Scalar> {
    Ok(match v {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => Scalar::Num(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Scalar::Str(s.clone()),
        _ => {
            return Err(invalid(format!(
                "invalid filter value for {key:?}: expected a string, number, boolean or null"
            )))
        }
    })
}

fn condition(key: &str, value: &Value) -> Result<Condition> {
    let Value::Object(ops) = value else {
        return Ok(Condition::Eq(scalar(key, value)?));
    };
    if ops.is_empty() {
        return Err(invalid(format!("empty operator object for {key:?}")));
    }
    let list = |op: &str, v: &Value| -> Result<Vec<Scalar>> {
        match v {
            Value::Array(items) => items.iter().map(|i| scalar(key, i)).collect(),
            _ => Err(invalid(format!("{op} on {key:?} takes an array"))),
        }
    };
    let bound = |op: &str, v: &Value| -> Result<Scalar> {
        match v {
            Value::Number(_) | Value::String(_) => scalar(key, v),
            _ => Err(invalid(format!(
                "{op} on {key:?} takes a string or a number"
            ))),
        }
    };
    if ops.len() == 1 {
        let (op, v) = ops.iter().next().expect("one entry");
        return Ok(match op.as_str() {
            "$eq" => Condition::Eq(scalar(key, v)?),
            "$ne" => Condition::Ne(scalar(key, v)?),
            "$in" => Condition::In(list(op, v)?),
            "$nin" => Condition::Nin(list(op, v)?),
            "$gt" | "$gte" => Condition::Range {
                lower: Some((bound(op, v)?, op == "$gte")),
                upper: None,
            },
            "$lt" | "$lte" => Condition::Range {
                lower: None,
                upper: Some((bound(op, v)?, op == "$lte")),
            },
            other => return Err(unknown_operator(key, other)),
        });
    }
    range_pair(key, ops, bound)
}

/// Two operators on one key: only one lower bound with one upper bound, of one type.
fn range_pair(
    key: &str,
    ops: &Map<String, Value>,
    bound: impl Fn(&str, &Value) -> Result<Scalar>,
) -> Result<Condition> {
    let (mut lower, mut upper) = (None, None);
    for (op, v) in ops {
        let slot = match op.as_str() {
            "$gt" | "$gte" => &mut lower,
            "$lt" | "$lte" => &mut upper,
            "$eq" | "$ne" | "$in" | "$nin" => {
                return Err(invalid(format!(
                    "{op} on {key:?} cannot be combined with other operators; only one lower bound ($gt/$gte) and one upper bound ($lt/$lte) may be combined"
                )))
            }
            other => return Err(unknown_operator(key, other)),
        };
        if slot.is_some() {
            return Err(invalid(format!(
                "{key:?} has two lower or two upper bounds; use one of each at most"
            )));
        }
        *slot = Some((bound(op, v)?, op.ends_with('e')));
    }
    if ops.len() > 2 {
        return Err(invalid(format!(
            "{key:?} has more than two range operators"
        )));
    }
    let same_type = matches!(
        (&lower, &upper),
        (Some((Scalar::Num(_), _)), Some((Scalar::Num(_), _)))
            | (Some((Scalar::Str(_), _)), Some((Scalar::Str(_), _)))
    );
    if !same_type {
        return Err(invalid(format!(
            "the bounds on {key:?} must both be numbers or both be strings"
        )));
    }
    Ok(Condition::Range { lower, upper })
}

fn unknown_operator(key: &str, op: &str) -> VectorizeError {
    invalid(format!(
        "unknown operator {op:?} on {key:?}; supported: $eq, $ne, $in, $nin, $lt, $lte, $gt, $gte"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Filter> {
        Filter::parse(&v, &Limits::default())
    }

    #[test]
    fn every_operator_parses() {
        let f = parse(json!({
            "a": "x", "b": {"$ne": 1}, "c": {"$in": ["x", null]}, "d": {"$nin": [true]},
            "e": {"$gte": "net", "$lt": "neu"}, "f.g": {"$lte": 3}
        }))
        .unwrap();
        assert_eq!(f.clauses.len(), 6);
        assert_eq!(
            f.clauses[0],
            ("a".into(), Condition::Eq(Scalar::Str("x".into())))
        );
        assert_eq!(
            f.clauses[4].1,
            Condition::Range {
                lower: Some((Scalar::Str("net".into()), true)),
                upper: Some((Scalar::Str("neu".into()), false))
            }
        );
    }

    #[test]
    fn malformed_filters_are_refused_with_a_reason() {
        for (bad, why) in [
            (json!([]), "JSON object"),
            (json!({}), "not be empty"),
            (json!({"$a": 1}), "must not start"),
            (json!({"a": {"$gt": 1, "$gte": 2}}), "two lower"),
            (json!({"a": {"$eq": 1, "$lt": 2}}), "cannot be combined"),
            (json!({"a": {"$regex": "x"}}), "unknown operator"),
            (json!({"a": {"$in": "x"}}), "takes an array"),
            (json!({"a": {"$gt": true}}), "string or a number"),
            (json!({"a": {"$gt": 1, "$lt": "z"}}), "both be numbers"),
            (json!({"a": [1]}), "expected a string"),
            (json!({"a": "x".repeat(2100)}), "under 2048"),
        ] {
            let e = parse(bad.clone()).unwrap_err();
            assert_eq!(e.code, code::INVALID_FILTER);
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
    }
}
