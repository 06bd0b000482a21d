//! NDJSON vector bodies (REST insert/upsert, and the binding's wire format): one vector
//! object per line. It is also the format of [`export`] and [`import`], so an export
//! can go to `wrangler vectorize insert --file` or the REST API as it is.

use std::io::{BufRead, Write};

use super::error::{code, Op, Result, VectorizeError};
use super::types::VectorizeVector;
use super::VectorizeIndex;

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
            Err(e) => return Err(bad_line(op, n + 1, e)),
        }
    }
    Ok(out)
}

fn bad_line(op: Op, line: usize, e: serde_json::Error) -> VectorizeError {
    VectorizeError::new(
        op,
        code::PARSE,
        format!(
            "line {line}: not a vector ({e}); each line must be one JSON object with a string \"id\" and a \"values\" array, or pass unparsable-behavior=discard to skip such lines"
        ),
    )
}

/// Vectors read or written per call to the index.
const BATCH: usize = 1000;

/// Writes every vector of `index` (id, values, namespace, metadata), in id order, one per
/// line; returns how many.
pub fn export(index: &VectorizeIndex, out: &mut dyn Write) -> Result<usize> {
    let io = |e: std::io::Error| {
        VectorizeError::new(Op::Get, code::STORAGE, format!("writing the export: {e}"))
    };
    let mut written = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = index.list(Some(BATCH), cursor.as_deref())?;
        let ids: Vec<&str> = page.vectors.iter().map(|v| v.id.as_str()).collect();
        for vector in index.get_by_ids(&ids)? {
            serde_json::to_writer(&mut *out, &vector).map_err(|e| io(e.into()))?;
            out.write_all(b"\n").map_err(io)?;
            written += 1;
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(written),
        }
    }
}

/// Upserts the vectors of an NDJSON stream (as [`export`] writes it) into `index`, in
/// batches of 1,000; returns how many. A bad line stops the import there, naming the
/// line; the batches before it are in the index.
pub fn import(index: &VectorizeIndex, input: &mut dyn BufRead) -> Result<usize> {
    let mut batch = Vec::with_capacity(BATCH);
    let mut imported = 0;
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| {
            VectorizeError::new(
                Op::Upsert,
                code::PARSE,
                format!("reading line {}: {e}", n + 1),
            )
        })?;
        if line.trim().is_empty() {
            continue;
        }
        batch.push(serde_json::from_str(&line).map_err(|e| bad_line(Op::Upsert, n + 1, e))?);
        if batch.len() == BATCH {
            index.upsert(&batch)?;
            imported += batch.len();
            batch.clear();
        }
    }
    if !batch.is_empty() {
        index.upsert(&batch)?;
        imported += batch.len();
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_imports_into_another_index_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(dir.path()).unwrap();
        let config = crate::vectorize::IndexConfig {
            dimensions: 3,
            metric: crate::vectorize::Metric::Cosine,
        };
        for name in ["from", "to"] {
            store.vectorize().create(name, "", config).unwrap();
        }
        let from = store.vectorize().index("from").unwrap();
        let vectors: Vec<VectorizeVector> = (0..2500)
            .map(|i| {
                let mut v = VectorizeVector::new(format!("v{i:04}"), vec![i as f32, 0.1, 58.8]);
                v.namespace = (i % 3 == 0).then(|| "ns".to_owned());
                v.metadata = Some(
                    serde_json::json!({"docId": format!("d{}", i / 10)})
                        .as_object()
                        .unwrap()
                        .clone(),
                );
                v
            })
            .collect();
        for chunk in vectors.chunks(1000) {
            from.upsert(chunk).unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(export(&from, &mut out).unwrap(), 2500);
        let to = store.vectorize().index("to").unwrap();
        assert_eq!(import(&to, &mut out.as_slice()).unwrap(), 2500);
        let ids: Vec<String> = vectors.iter().map(|v| v.id.clone()).collect();
        for chunk in ids.chunks(1000) {
            assert_eq!(
                to.get_by_ids(chunk).unwrap(),
                from.get_by_ids(chunk).unwrap()
            );
        }
        let bad = b"{\"id\":\"x\",\"values\":[1,2,3]}\n\nnope\n";
        let e = import(&to, &mut bad.as_slice()).unwrap_err();
        assert!(e.message.starts_with("line 3:"), "{e}");
    }

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
