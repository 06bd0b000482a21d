//! S3's XML: a small writer for responses, and the request bodies tristore reads
//! (DeleteObjects, CompleteMultipartUpload, CreateBucket; the CORS and lifecycle
//! configurations are read in their own modules).

use std::fmt::Display;

use serde::Deserialize;

use super::error::S3Error;

const NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// A response document being written, element by element.
pub struct Xml {
    out: String,
    open: Vec<&'static str>,
}

impl Xml {
    /// A document whose root carries S3's namespace.
    pub fn new(root: &'static str) -> Self {
        let mut xml = Xml {
            out: String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#),
            open: vec![root],
        };
        xml.out
            .push_str(&format!(r#"<{root} xmlns="{NAMESPACE}">"#));
        xml
    }

    /// A document whose root has no namespace (`<Error>`).
    pub fn bare(root: &'static str) -> Self {
        Xml {
            out: format!(r#"<?xml version="1.0" encoding="UTF-8"?><{root}>"#),
            open: vec![root],
        }
    }

    /// Opens `<name>`; [`close`](Self::close) ends it.
    pub fn open(&mut self, name: &'static str) -> &mut Self {
        self.out.push_str(&format!("<{name}>"));
        self.open.push(name);
        self
    }

    /// Closes the innermost open element.
    pub fn close(&mut self) -> &mut Self {
        if let Some(name) = self.open.pop() {
            self.out.push_str(&format!("</{name}>"));
        }
        self
    }

    /// `<name>value</name>`, with the value escaped.
    pub fn leaf(&mut self, name: &str, value: impl Display) -> &mut Self {
        let value = value.to_string();
        self.out
            .push_str(&format!("<{name}>{}</{name}>", escape(&value)));
        self
    }

    /// Escaped text inside the current element.
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.out.push_str(&escape(value));
        self
    }

    /// `leaf` when there is a value.
    pub fn leaf_opt(&mut self, name: &str, value: Option<impl Display>) -> &mut Self {
        if let Some(v) = value {
            self.leaf(name, v);
        }
        self
    }

    /// The finished document, every open element closed.
    pub fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.close();
        }
        self.out
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry literally (keys may hold them), and CR,
            // which a parser would turn into LF.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n') => {
                out.push_str(&format!("&#x{:X};", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// DeleteObjects' body.
#[derive(Debug, Deserialize)]
pub struct Delete {
    /// The keys.
    #[serde(rename = "Object", default)]
    pub objects: Vec<ObjectIdentifier>,
    /// Report only failures.
    #[serde(rename = "Quiet", default)]
    pub quiet: bool,
}

/// One key of a DeleteObjects body.
#[derive(Debug, Deserialize)]
pub struct ObjectIdentifier {
    /// The key.
    #[serde(rename = "Key")]
    pub key: String,
}

/// CompleteMultipartUpload's body.
#[derive(Debug, Deserialize)]
pub struct CompleteMultipartUpload {
    /// The parts, in order.
    #[serde(rename = "Part", default)]
    pub parts: Vec<CompletedPart>,
}

/// One part of a CompleteMultipartUpload body.
#[derive(Debug, Deserialize)]
pub struct CompletedPart {
    /// 1..=10000.
    #[serde(rename = "PartNumber")]
    pub part_number: u32,
    /// The part's ETag, quoted or not.
    #[serde(rename = "ETag")]
    pub etag: String,
}

/// CreateBucket's optional body.
#[derive(Debug, Deserialize)]
pub struct CreateBucketConfiguration {
    /// `auto` (or `us-east-1`, or empty) for R2.
    #[serde(rename = "LocationConstraint", default)]
    pub location_constraint: Option<String>,
}

/// Parses a request body, answering S3's `MalformedXML` when it does not fit.
pub fn parse<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, S3Error> {
    let text = std::str::from_utf8(body).map_err(|_| malformed())?;
    quick_xml::de::from_str(text).map_err(|_| malformed())
}

/// 400 `MalformedXML`: a body that does not fit the operation's schema.
pub fn malformed() -> S3Error {
    S3Error::new(
        400,
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_escaped_nested_documents() {
        let mut xml = Xml::new("ListBucketResult");
        xml.leaf("Name", "b")
            .open("Contents")
            .leaf("Key", "a<&>\u{1}b");
        assert_eq!(
            xml.finish(),
            r#"<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Contents><Key>a&lt;&amp;&gt;&#x1;b</Key></Contents></ListBucketResult>"#
        );
    }

    #[test]
    fn reads_the_bodies_sdks_send() {
        let d: Delete = parse(br#"<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a&amp;b</Key></Object><Object><Key>c</Key><VersionId>x</VersionId></Object><Quiet>true</Quiet></Delete>"#).unwrap();
        assert_eq!(d.objects.len(), 2);
        assert_eq!(d.objects[0].key, "a&b");
        assert!(d.quiet);
        let c: CompleteMultipartUpload = parse(br#"<CompleteMultipartUpload><Part><ETag>"e1"</ETag><PartNumber>1</PartNumber></Part><Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part></CompleteMultipartUpload>"#).unwrap();
        assert_eq!(c.parts[1].part_number, 2);
        assert_eq!(c.parts[1].etag, "\"e2\"");
        assert_eq!(
            parse::<Delete>(b"<Delete><Object>").unwrap_err().code,
            "MalformedXML"
        );
    }
}
