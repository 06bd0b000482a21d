//! The XML request bodies (DeleteObjects, CompleteMultipartUpload, CreateBucket): any
//! bytes parse or give MalformedXML, never a panic; what parses round-trips its keys
//! through the response writer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristore::server::s3::xml::{
    self, CompleteMultipartUpload, CreateBucketConfiguration, Delete, Xml,
};

fuzz_target!(|data: &[u8]| {
    match xml::parse::<Delete>(data) {
        Ok(d) => {
            let mut out = Xml::new("DeleteResult");
            for o in &d.objects {
                out.open("Deleted").leaf("Key", &o.key).close();
            }
            let text = out.finish();
            let back: Result<Delete, _> = xml::parse(
                text.replace("DeleteResult", "Delete")
                    .replace("Deleted", "Object")
                    .as_bytes(),
            );
            let keys: Vec<_> = back
                .expect("our own XML parses")
                .objects
                .into_iter()
                .map(|o| o.key)
                .collect();
            let sent: Vec<_> = d.objects.into_iter().map(|o| o.key).collect();
            // XML normalises line ends in text; everything else comes back as written.
            let norm = |k: &String| k.replace("\r\n", "\n").replace('\r', "\n");
            assert_eq!(
                keys.iter().map(norm).collect::<Vec<_>>(),
                sent.iter().map(norm).collect::<Vec<_>>()
            );
        }
        Err(e) => assert_eq!(e.code, "MalformedXML"),
    }
    if let Err(e) = xml::parse::<CompleteMultipartUpload>(data) {
        assert_eq!(e.code, "MalformedXML");
    }
    if let Err(e) = xml::parse::<CreateBucketConfiguration>(data) {
        assert_eq!(e.code, "MalformedXML");
    }
});
