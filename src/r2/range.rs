//! `R2Range` and the HTTP `Range` header, resolved against an object's size (spec 5.5).

use super::error::{R2Error, R2ErrorKind};
use super::object::ReturnedRange;

/// A range to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum R2Range {
    /// `{offset, length?}`: from `offset`, `length` bytes or to the end.
    Offset {
        /// First byte.
        offset: u64,
        /// Bytes wanted; clamped to the end.
        length: Option<u64>,
    },
    /// `{length}` with no offset: the first `length` bytes.
    Prefix(u64),
    /// `{suffix}`: the last `suffix` bytes, clamped to the size.
    Suffix(u64),
}

impl R2Range {
    /// The bytes this range selects from an object of `size` bytes, with R2's clamping;
    /// `InvalidRange` when it selects nothing.
    pub fn resolve(self, size: u64) -> Result<ReturnedRange, R2Error> {
        let invalid = || {
            R2Error::new(
                "get",
                R2ErrorKind::InvalidRange,
                "The requested range is not satisfiable",
            )
        };
        match self {
            R2Range::Offset { offset, length } => {
                if offset > size || length == Some(0) || (offset == size && size > 0) {
                    return Err(invalid());
                }
                let length = length.map_or(size - offset, |l| l.min(size - offset));
                Ok(ReturnedRange { offset, length })
            }
            R2Range::Prefix(length) => {
                if length == 0 {
                    return Err(invalid());
                }
                Ok(ReturnedRange {
                    offset: 0,
                    length: length.min(size),
                })
            }
            R2Range::Suffix(suffix) => {
                if suffix == 0 {
                    return Err(invalid());
                }
                let length = suffix.min(size);
                Ok(ReturnedRange {
                    offset: size - length,
                    length,
                })
            }
        }
    }

    /// Parses `bytes=a-b`, `bytes=a-` or `bytes=-n`. `Ok(None)` for forms R2 answers
    /// with the whole object (several ranges, other units); `Err` for malformed ones.
    pub fn from_header(value: &str) -> Result<Option<R2Range>, R2Error> {
        let invalid = || {
            R2Error::new(
                "get",
                R2ErrorKind::InvalidRange,
                format!("Invalid Range header: {value:?}"),
            )
        };
        let Some(spec) = value.trim().strip_prefix("bytes=") else {
            return Ok(None);
        };
        if spec.contains(',') {
            return Ok(None);
        }
        let (first, last) = spec.trim().split_once('-').ok_or_else(invalid)?;
        let num = |s: &str| byte_pos(s).ok_or_else(invalid);
        match (first.trim(), last.trim()) {
            ("", n) => Ok(Some(R2Range::Suffix(num(n)?))),
            (a, "") => Ok(Some(R2Range::Offset {
                offset: num(a)?,
                length: None,
            })),
            (a, b) => {
                let (a, b) = (num(a)?, num(b)?);
                if b < a {
                    return Err(invalid());
                }
                // Only `bytes=0-18446744073709551615` has no length in a u64; it asks for
                // the whole object, as any last byte past the end asks for the rest.
                Ok(Some(R2Range::Offset {
                    offset: a,
                    length: (b - a).checked_add(1),
                }))
            }
        }
    }
}

/// A byte position of a `Range` header: ASCII digits. One past `u64::MAX` saturates,
/// which resolves as any position past the end does: the rest of the object for a last
/// byte or a suffix (RFC 9110 14.1.1), unsatisfiable for a first byte.
pub(crate) fn byte_pos(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamping_and_invalid_ranges() {
        let r = |range: R2Range| range.resolve(11).map(|x| (x.offset, x.length));
        assert_eq!(
            r(R2Range::Offset {
                offset: 6,
                length: Some(5)
            })
            .unwrap(),
            (6, 5)
        );
        assert_eq!(
            r(R2Range::Offset {
                offset: 6,
                length: Some(50)
            })
            .unwrap(),
            (6, 5)
        );
        assert_eq!(r(R2Range::Suffix(3)).unwrap(), (8, 3));
        assert_eq!(r(R2Range::Suffix(30)).unwrap(), (0, 11));
        assert_eq!(r(R2Range::Prefix(4)).unwrap(), (0, 4));
        for bad in [
            R2Range::Offset {
                offset: 12,
                length: None,
            },
            R2Range::Offset {
                offset: 0,
                length: Some(0),
            },
            R2Range::Suffix(0),
        ] {
            assert_eq!(
                r(bad).unwrap_err().kind,
                R2ErrorKind::InvalidRange,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn headers() {
        assert_eq!(
            R2Range::from_header("bytes=0-9").unwrap(),
            Some(R2Range::Offset {
                offset: 0,
                length: Some(10)
            })
        );
        assert_eq!(
            R2Range::from_header("bytes=5-").unwrap(),
            Some(R2Range::Offset {
                offset: 5,
                length: None
            })
        );
        assert_eq!(
            R2Range::from_header("bytes=-3").unwrap(),
            Some(R2Range::Suffix(3))
        );
        assert_eq!(R2Range::from_header("bytes=0-1,4-5").unwrap(), None);
        assert_eq!(R2Range::from_header("items=0-1").unwrap(), None);
        assert!(R2Range::from_header("bytes=9-1").is_err());
        for past_the_end in [
            "bytes=0-18446744073709551615",
            "bytes=0-99999999999999999999999",
        ] {
            let range = R2Range::from_header(past_the_end).unwrap().unwrap();
            let r = range.resolve(11).unwrap();
            assert_eq!((r.offset, r.length), (0, 11), "{past_the_end}");
        }
        let huge_suffix = R2Range::from_header("bytes=-99999999999999999999").unwrap();
        assert_eq!(huge_suffix.unwrap().resolve(11).unwrap().length, 11);
        let huge_start = R2Range::from_header("bytes=99999999999999999999-").unwrap();
        assert!(huge_start.unwrap().resolve(11).is_err());
        assert!(R2Range::from_header("bytes=a-").is_err());
        assert!(R2Range::from_header("bytes=-").is_err());
    }
}
