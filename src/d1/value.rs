//! Values crossing the D1 boundary, with the Worker binding's conversions.
//!
//! In: a JavaScript value given to `bind()` (here: a JSON value, or a Rust value
//! through `From`). Out: SQLite's five storage classes, with BLOBs rendered as
//! arrays of byte numbers as D1 does.

use rusqlite::types::{ToSqlOutput, ValueRef};
use serde::ser::{Serialize, Serializer};
use serde_json::Value as Json;

use super::error::D1Error;

/// One SQLite value, as D1 binds and returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum D1Value {
    /// SQL NULL; JSON `null`.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A double.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes; serialised as an array of numbers 0..=255, as D1 returns BLOBs.
    Blob(Vec<u8>),
}

impl D1Value {
    /// Converts a JSON value the way `D1PreparedStatement.bind` converts a JavaScript one:
    /// integral numbers bind as INTEGER (as production does), fractional ones as REAL,
    /// booleans as 1 / 0, an array whose every element is a byte number as a BLOB; any
    /// other object is a `D1_TYPE_ERROR`.
    pub fn from_json(value: &Json) -> Result<Self, D1Error> {
        Ok(match value {
            Json::Null => D1Value::Null,
            Json::Bool(b) => D1Value::Integer(i64::from(*b)),
            Json::Number(n) => match n.as_i64() {
                Some(i) => D1Value::Integer(i),
                None => D1Value::from(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => D1Value::Text(s.clone()),
            Json::Array(items) => match items.iter().map(byte_of).collect::<Option<Vec<u8>>>() {
                Some(bytes) => D1Value::Blob(bytes),
                None => return Err(type_error(value)),
            },
            Json::Object(_) => return Err(type_error(value)),
        })
    }

    /// The JSON form D1 returns: numbers, strings, `null`, and BLOBs as byte arrays.
    pub fn to_json(&self) -> Json {
        match self {
            D1Value::Null => Json::Null,
            D1Value::Integer(i) => Json::from(*i),
            D1Value::Real(f) => match js_integral(*f) {
                Some(i) => Json::from(i),
                None => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            },
            D1Value::Text(s) => Json::String(s.clone()),
            D1Value::Blob(b) => Json::Array(b.iter().map(|&x| Json::from(x)).collect()),
        }
    }

    /// Bytes of this value's JSON, as [`Serialize`] writes it (a REAL is counted at its
    /// longest, 24): what the result-size limit counts.
    pub(crate) fn json_len(&self) -> u64 {
        fn digits(n: u64) -> u64 {
            u64::from(n.checked_ilog10().unwrap_or(0)) + 1
        }
        let len = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        match self {
            D1Value::Null => 4,
            D1Value::Integer(i) => digits(i.unsigned_abs()) + u64::from(*i < 0),
            D1Value::Real(_) => 24,
            D1Value::Text(t) => {
                let escapes: u64 = t
                    .bytes()
                    .map(|b| match b {
                        b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
                        0..=0x1f => 5,
                        _ => 0,
                    })
                    .sum();
                len(t.len()) + 2 + escapes
            }
            // Brackets, commas, and each byte's digits.
            D1Value::Blob(b) => {
                2 + len(b.len().saturating_sub(1))
                    + b.iter().map(|&x| digits(u64::from(x))).sum::<u64>()
            }
        }
    }

    pub(crate) fn from_ref(value: ValueRef<'_>) -> Self {
        match value {
            ValueRef::Null => D1Value::Null,
            ValueRef::Integer(i) => D1Value::Integer(i),
            ValueRef::Real(f) => D1Value::Real(f),
            ValueRef::Text(t) => D1Value::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => D1Value::Blob(b.to_vec()),
        }
    }
}

/// A double JavaScript would print without a fraction (`24950`, not `24950.0`), as an
/// integer, so that JSON written by tristore reads like JSON written by D1.
fn js_integral(f: f64) -> Option<i64> {
    const SAFE: f64 = 9_007_199_254_740_991.0; // 2^53 - 1
    (f.fract() == 0.0 && f.abs() <= SAFE).then_some(f as i64)
}

fn byte_of(item: &Json) -> Option<u8> {
    let f = item.as_f64()?;
    (f.fract() == 0.0 && (0.0..=255.0).contains(&f)).then_some(f as u8)
}

fn type_error(value: &Json) -> D1Error {
    D1Error::Type {
        type_name: "object".into(),
        value: js_string(value),
    }
}

/// JavaScript's `String(value)`, which the binding uses in its type error.
fn js_string(value: &Json) -> String {
    match value {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => s.clone(),
        // Array.prototype.toString joins elements, printing null as the empty string.
        Json::Array(items) => items
            .iter()
            .map(|i| {
                if i.is_null() {
                    String::new()
                } else {
                    js_string(i)
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        Json::Object(_) => "[object Object]".into(),
    }
}

impl Serialize for D1Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            D1Value::Null => s.serialize_unit(),
            D1Value::Integer(i) => s.serialize_i64(*i),
            D1Value::Real(f) => match js_integral(*f) {
                Some(i) => s.serialize_i64(i),
                None if f.is_finite() => s.serialize_f64(*f),
                None => s.serialize_unit(),
            },
            D1Value::Text(t) => s.serialize_str(t),
            D1Value::Blob(b) => s.collect_seq(b.iter()),
        }
    }
}

impl rusqlite::ToSql for D1Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            D1Value::Null => ValueRef::Null,
            D1Value::Integer(i) => ValueRef::Integer(*i),
            D1Value::Real(f) => ValueRef::Real(*f),
            D1Value::Text(t) => ValueRef::Text(t.as_bytes()),
            D1Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// A JavaScript number: integral finite values become INTEGER (production D1 binds
/// them so), others REAL, and NaN / ±Infinity NULL (what JSON transport makes of them).
impl From<f64> for D1Value {
    fn from(f: f64) -> Self {
        const TWO_63: f64 = 9_223_372_036_854_775_808.0;
        if !f.is_finite() {
            D1Value::Null
        } else if f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) {
            D1Value::Integer(f as i64)
        } else {
            D1Value::Real(f)
        }
    }
}

macro_rules! integer_from {
    ($($t:ty),*) => {$(
        impl From<$t> for D1Value {
            fn from(v: $t) -> Self { D1Value::Integer(i64::from(v)) }
        }
    )*};
}
integer_from!(i8, i16, i32, i64, u8, u16, u32, bool);

impl From<&str> for D1Value {
    fn from(v: &str) -> Self {
        D1Value::Text(v.to_owned())
    }
}
impl From<String> for D1Value {
    fn from(v: String) -> Self {
        D1Value::Text(v)
    }
}
impl From<Vec<u8>> for D1Value {
    fn from(v: Vec<u8>) -> Self {
        D1Value::Blob(v)
    }
}
impl From<&[u8]> for D1Value {
    fn from(v: &[u8]) -> Self {
        D1Value::Blob(v.to_vec())
    }
}
impl<T: Into<D1Value>> From<Option<T>> for D1Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(D1Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_numbers_bind_like_production() {
        assert_eq!(D1Value::from_json(&json!(7)).unwrap(), D1Value::Integer(7));
        assert_eq!(
            D1Value::from_json(&json!(1.0)).unwrap(),
            D1Value::Integer(1)
        );
        assert_eq!(D1Value::from_json(&json!(0.5)).unwrap(), D1Value::Real(0.5));
        assert_eq!(
            D1Value::from_json(&json!(true)).unwrap(),
            D1Value::Integer(1)
        );
        assert_eq!(
            D1Value::from_json(&json!(false)).unwrap(),
            D1Value::Integer(0)
        );
        assert_eq!(D1Value::from(f64::NAN), D1Value::Null);
    }

    #[test]
    fn byte_arrays_are_blobs_and_other_objects_are_type_errors() {
        assert_eq!(
            D1Value::from_json(&json!([1, 2, 255])).unwrap(),
            D1Value::Blob(vec![1, 2, 255])
        );
        assert_eq!(
            D1Value::from_json(&json!([])).unwrap(),
            D1Value::Blob(vec![])
        );
        let cases = [
            (
                json!({"a": 1}),
                "D1_TYPE_ERROR: Type 'object' not supported for value '[object Object]'",
            ),
            (
                json!([1, "a", null]),
                "D1_TYPE_ERROR: Type 'object' not supported for value '1,a,'",
            ),
            (
                json!([256]),
                "D1_TYPE_ERROR: Type 'object' not supported for value '256'",
            ),
        ];
        for (input, text) in cases {
            assert_eq!(D1Value::from_json(&input).unwrap_err().to_string(), text);
        }
    }

    #[test]
    fn json_len_counts_what_serialisation_writes() {
        for value in [
            D1Value::Null,
            D1Value::Integer(0),
            D1Value::Integer(-907),
            D1Value::Integer(i64::MIN),
            D1Value::Integer(i64::MAX),
            D1Value::Text("a\"b\\c\n\u{1}é".into()),
            D1Value::Blob(vec![]),
            D1Value::Blob(vec![0, 9, 10, 99, 100, 255]),
        ] {
            let written = serde_json::to_vec(&value).unwrap().len() as u64;
            assert_eq!(value.json_len(), written, "{value:?}");
        }
        let real = D1Value::Real(-1.7976931348623157e308);
        assert!(serde_json::to_vec(&real).unwrap().len() as u64 <= real.json_len());
    }

    #[test]
    fn blobs_come_back_as_byte_arrays() {
        assert_eq!(
            serde_json::to_value(D1Value::Blob(vec![0, 9])).unwrap(),
            json!([0, 9])
        );
        assert_eq!(D1Value::Blob(vec![0, 9]).to_json(), json!([0, 9]));
    }
}
