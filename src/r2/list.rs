//! `list`: keys in UTF-8 byte order, with prefix, delimiter, cursor and startAfter.

use std::ops::Bound;

use base64::Engine;

use super::bucket::R2Bucket;
use super::catalog::{objects_table, OrR2};
use super::error::{R2Error, R2ErrorKind};
use super::object::{ObjectRecord, R2Object};

/// `R2ListOptions`.
#[derive(Debug, Clone, Default)]
pub struct R2ListOptions {
    /// 1..=1000; default 1000.
    pub limit: Option<u32>,
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// The `cursor` of the previous page.
    pub cursor: Option<String>,
    /// Roll keys up to the first occurrence of this after the prefix.
    pub delimiter: Option<String>,
    /// Only keys after this one.
    pub start_after: Option<String>,
    /// Return `httpMetadata` on each object.
    pub include_http_metadata: bool,
    /// Return `customMetadata` on each object.
    pub include_custom_metadata: bool,
}

/// `R2Objects`: one page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct R2Objects {
    /// Objects in key order.
    pub objects: Vec<R2Object>,
    /// Rolled-up prefixes, each ending with the delimiter.
    pub delimited_prefixes: Vec<String>,
    /// Whether more follow.
    pub truncated: bool,
    /// Pass back to get the next page; present only when `truncated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Where a page resumes: after a key, or after every key under a rolled-up prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// Resume after this key.
    AfterKey(Vec<u8>),
    /// Resume after every key starting with this prefix.
    AfterPrefix(Vec<u8>),
}

impl Cursor {
    /// The opaque text form handed to callers.
    pub fn encode(&self) -> String {
        let (tag, bytes) = match self {
            Cursor::AfterKey(k) => (b'k', k),
            Cursor::AfterPrefix(p) => (b'p', p),
        };
        let mut raw = Vec::with_capacity(bytes.len() + 1);
        raw.push(tag);
        raw.extend_from_slice(bytes);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// Parses a cursor made by [`Cursor::encode`]; anything else is `InvalidArgument`.
    pub fn decode(text: &str) -> Result<Cursor, R2Error> {
        let invalid = || {
            R2Error::new(
                "list",
                R2ErrorKind::InvalidArgument,
                "Invalid cursor: pass back the cursor of the previous page unchanged",
            )
        };
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| invalid())?;
        match raw.split_first() {
            Some((b'k', rest)) => Ok(Cursor::AfterKey(rest.to_vec())),
            Some((b'p', rest)) => Ok(Cursor::AfterPrefix(rest.to_vec())),
            _ => Err(invalid()),
        }
    }

    /// The first key this cursor lets through, as a lower bound.
    fn lower_bound(&self) -> Bound<Vec<u8>> {
        match self {
            Cursor::AfterKey(k) => Bound::Excluded(k.clone()),
            Cursor::AfterPrefix(p) => match prefix_successor(p) {
                Some(next) => Bound::Included(next),
                None => Bound::Excluded(vec![0xff; 1025]),
            },
        }
    }
}

/// The smallest byte string greater than every string starting with `prefix`, if any.
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < 0xff {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

fn later(a: Bound<Vec<u8>>, b: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    use Bound::*;
    match (&a, &b) {
        (Unbounded, _) => b,
        (_, Unbounded) => a,
        (Included(x) | Excluded(x), Included(y) | Excluded(y)) => {
            if x > y || (x == y && matches!(a, Excluded(_))) {
                a
            } else {
                b
            }
        }
    }
}

impl R2Bucket {
    /// One page of keys, in UTF-8 byte order.
    pub fn list(&self, options: &R2ListOptions) -> Result<R2Objects, R2Error> {
        const OP: &str = "list";
        let limit = options.limit.unwrap_or(1000);
        if !(1..=1000).contains(&limit) {
            return Err(R2Error::new(
                OP,
                R2ErrorKind::InvalidMaxKeys,
                "MaxKeys params must be positive integer <= 1000.",
            ));
        }
        let prefix = options.prefix.as_deref().unwrap_or("").as_bytes();
        let delimiter = options
            .delimiter
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(str::as_bytes);
        let mut lower = Bound::Included(prefix.to_vec());
        if let Some(after) = &options.start_after {
            lower = later(lower, Bound::Excluded(after.as_bytes().to_vec()));
        }
        if let Some(cursor) = &options.cursor {
            lower = later(lower, Cursor::decode(cursor)?.lower_bound());
        }

        let txn = self.inner.catalog.begin_read().or_r2(OP)?;
        let table = txn.open_table(objects_table(&self.table)).or_r2(OP)?;
        let mut page = R2Objects {
            objects: Vec::new(),
            delimited_prefixes: Vec::new(),
            truncated: false,
            cursor: None,
        };
        let mut last: Option<Cursor> = None;
        'scan: loop {
            let range = table
                .range::<&[u8]>((bound_ref(&lower), Bound::Unbounded))
                .or_r2(OP)?;
            for entry in range {
                let (key, value) = entry.or_r2(OP)?;
                let key = key.value();
                if !key.starts_with(prefix) {
                    break 'scan;
                }
                let rolled = delimiter.and_then(|d| {
                    let rest = &key[prefix.len()..];
                    find(rest, d).map(|i| key[..prefix.len() + i + d.len()].to_vec())
                });
                if page.objects.len() + page.delimited_prefixes.len() == limit as usize {
                    page.truncated = true;
                    page.cursor = last.as_ref().map(Cursor::encode);
                    break 'scan;
                }
                if let Some(common) = rolled {
                    page.delimited_prefixes
                        .push(String::from_utf8_lossy(&common).into_owned());
                    // Seek past every key under this prefix instead of walking them.
                    lower = Cursor::AfterPrefix(common.clone()).lower_bound();
                    last = Some(Cursor::AfterPrefix(common));
                    continue 'scan;
                }
                let (record, _) = ObjectRecord::decode_borrowed(OP, value.value())?;
                let key_text = String::from_utf8_lossy(key).into_owned();
                let mut object = record.to_object(&key_text);
                if !options.include_http_metadata {
                    object.http_metadata = None;
                }
                if !options.include_custom_metadata {
                    object.custom_metadata = None;
                }
                page.objects.push(object);
                last = Some(Cursor::AfterKey(key.to_vec()));
            }
            break;
        }
        Ok(page)
    }
}

fn bound_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for c in [
            Cursor::AfterKey(b"a/b".to_vec()),
            Cursor::AfterPrefix("é/".as_bytes().to_vec()),
        ] {
            assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        }
        assert!(Cursor::decode("!!").is_err());
        assert!(Cursor::decode("").is_err());
    }

    #[test]
    fn successor() {
        assert_eq!(prefix_successor(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_successor(&[b'a', 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(&[0xff]), None);
    }
}
