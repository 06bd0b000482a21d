//! NDJSON vector bodies (REST insert/upsert, and the binding's wire format): one vector
//! object per line.

use super::error::{code, Op, Result, VectorizeError};
use super::types::VectorizeVector;

/// What to do with a line that is not a vector (`?unparsable-behavior=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unparsable {
    /// Fail the whole request (the default).
    #[default]
    Error,
    /// Skip the line.
    Discard,
}

/// Parses an NDJSON body. Blank lines are skipped; a bad line either fails the request,
/// naming the line, or is dropped, as `on_bad` says.
pub fn parse(op: Op, body: &[u8], on_bad: Unparsable) -> Result<Vec<VectorizeVector>> {
    let mut out = Vec::new();
    for (n, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<VectorizeVector>(line) {
            Ok(v) => out.push(v),
            Err(_) if on_bad == Unparsable::Discard => {}
            Err(e) => {
                return Err(VectorizeError::new(
                    op,
                    code::PARSE,
                    format!(
                        "line {}: not a vector ({e}); each line must be one JSON object with a string \"id\" and a \"values\" array, or pass unparsable-behavior=discard to skip such lines",
                        n + 1
                    ),
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_blank_lines_and_bad_lines() {
        let body = b"{\"id\":\"a\",\"values\":[1,2.5]}\r\n\n{\"id\":\"b\",\"values\":[0,0],\"namespace\":\"n\",\"metadata\":{\"k\":1}}\nnot json\n";
        let e = parse(Op::Insert, body, Unparsable::Error).unwrap_err();
        assert_eq!(e.code, code::PARSE);
        assert!(
            e.to_string()
                .starts_with("VECTOR_INSERT_ERROR (code = 40026): line 4:"),
            "{e}"
        );
        let got = parse(Op::Insert, body, Unparsable::Discard).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].values, vec![1.0, 2.5]);
        assert_eq!(got[1].namespace.as_deref(), Some("n"));
        // A missing id is a bad line too.
        assert!(parse(Op::Upsert, b"{\"values\":[1]}", Unparsable::Error).is_err());
    }
}
