//! R2 buckets over S3: objects listed on both sides and compared by size and ETag, then
//! those that differ copied, each a unit (a PUT, or a multipart upload for one larger
//! than [`PART_SIZE`]; a pull streams a large object in ranges into one local write).
//! An interrupted copy resumes object by object: the rerun skips the objects already
//! equal. A multipart ETag (`md5-of-part-md5s-N`) depends on where the parts were cut,
//! so when one side has one, the other side's bytes are hashed with the same cuts
//! (part 1's size, from a HEAD with `partNumber=1`) before they are called different.

use std::collections::BTreeMap;
use std::io::Read;

use md5::Digest;

use super::s3::{Listed, S3};
use super::{Counts, Direction, Options, Result, TransferError};
use crate::r2::{HttpMetadata, R2Bucket, R2GetOptions, R2ListOptions, R2Object, R2PutOptions};
use crate::Store;

/// Bytes per part of a multipart upload, and per range of a large download; objects up
/// to this size go in one request. R2 wants parts of at least 5 MiB (but the last).
pub const PART_SIZE: u64 = 8 << 20;

/// Copies bucket `name` in `direction`.
pub fn copy(
    store: &Store,
    s3: &S3,
    direction: Direction,
    name: &str,
    options: &Options,
    counts: &mut Counts,
    progress: &dyn Fn(&str),
) -> Result<()> {
    let local = match direction {
        Direction::Pull => {
            if !store.r2().list_buckets()?.iter().any(|b| b.name == name) {
                store.r2().create_bucket(name)?;
            }
            store.r2().bucket(name)?
        }
        Direction::Push => {
            let bucket = store.r2().bucket(name)?;
            if s3.ensure_bucket(name)? {
                progress(&format!("r2 {name}: bucket created on the remote"));
            }
            bucket
        }
    };
    let remote: BTreeMap<String, Listed> = s3
        .list(name)?
        .into_iter()
        .map(|o| (o.key.clone(), o))
        .collect();
    let local_objects = list_local(&local)?;
    let (mut copied, mut skipped) = (0u64, 0u64);
    match direction {
        Direction::Pull => {
            for (key, theirs) in &remote {
                if equal(s3, &local, name, local_objects.get(key), theirs)? {
                    skipped += 1;
                    continue;
                }
                pull_object(s3, &local, name, theirs)?;
                copied += 1;
                counts.bytes += theirs.size;
                progress(&format!("r2 {name}/{key}: pulled {} bytes", theirs.size));
            }
        }
        Direction::Push => {
            for (key, ours) in &local_objects {
                let theirs = remote.get(key);
                if let Some(theirs) = theirs {
                    if equal(s3, &local, name, Some(ours), theirs)? {
                        skipped += 1;
                        continue;
                    }
                }
                push_object(s3, &local, name, ours)?;
                copied += 1;
                counts.bytes += ours.size;
                progress(&format!("r2 {name}/{key}: pushed {} bytes", ours.size));
            }
        }
    }
    counts.copied += copied;
    counts.skipped += skipped;
    let extra: Vec<&str> = match direction {
        Direction::Pull => local_objects
            .keys()
            .filter(|k| !remote.contains_key(*k))
            .map(String::as_str)
            .collect(),
        Direction::Push => remote
            .keys()
            .filter(|k| !local_objects.contains_key(*k))
            .map(String::as_str)
            .collect(),
    };
    if options.delete {
        for key in &extra {
            match direction {
                Direction::Pull => local.delete(&[key])?,
                Direction::Push => s3.delete(name, key)?,
            }
        }
        counts.deleted += extra.len() as u64;
    }
    progress(&format!(
        "r2 {name}: {copied} objects copied, {skipped} equal, {}",
        if options.delete {
            format!("{} deleted", extra.len())
        } else {
            format!(
                "{} only on the destination (kept; --delete removes them)",
                extra.len()
            )
        }
    ));
    Ok(())
}

fn list_local(bucket: &R2Bucket) -> Result<BTreeMap<String, R2Object>> {
    let mut out = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = bucket.list(&R2ListOptions {
            limit: Some(1000),
            cursor: cursor.take(),
            include_http_metadata: true,
            include_custom_metadata: true,
            ..Default::default()
        })?;
        out.extend(page.objects.into_iter().map(|o| (o.key.clone(), o)));
        if !page.truncated {
            return Ok(out);
        }
        cursor = page.cursor;
    }
}

/// Whether the local object holds the same bytes as the remote one, by size and ETag.
fn equal(
    s3: &S3,
    bucket: &R2Bucket,
    name: &str,
    ours: Option<&R2Object>,
    theirs: &Listed,
) -> Result<bool> {
    let Some(ours) = ours else {
        return Ok(false);
    };
    if ours.size != theirs.size {
        return Ok(false);
    }
    if ours.etag == theirs.etag {
        return Ok(true);
    }
    // Same size, ETags of different shapes: hash our bytes the way theirs was made.
    let part = if theirs.etag.contains('-') {
        s3.first_part_size(name, &theirs.key)?
    } else {
        u64::MAX
    };
    Ok(local_etag(bucket, &ours.key, part)? == theirs.etag)
}

/// The ETag the local object's bytes would have if uploaded in parts of `part` bytes
/// (`u64::MAX`: in one piece, the plain MD5).
fn local_etag(bucket: &R2Bucket, key: &str, part: u64) -> Result<String> {
    let body = bucket
        .get(key, &R2GetOptions::default())?
        .and_then(|b| b.body)
        .ok_or_else(|| TransferError(format!("local R2: {key} vanished while copying")))?;
    let mut reader = body;
    let mut digests = Vec::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let mut md5 = md5::Md5::new();
        let mut taken = (&mut reader).take(part);
        let mut n = 0u64;
        loop {
            let got = taken
                .read(&mut buffer)
                .map_err(|e| TransferError(format!("local R2: reading {key}: {e}")))?;
            if got == 0 {
                break;
            }
            md5.update(&buffer[..got]);
            n += got as u64;
        }
        if n == 0 && !digests.is_empty() {
            break;
        }
        digests.push(md5.finalize());
        if n < part {
            break;
        }
    }
    if part == u64::MAX {
        return Ok(hex::encode(digests[0]));
    }
    let mut whole = md5::Md5::new();
    for d in &digests {
        whole.update(d);
    }
    Ok(format!(
        "{}-{}",
        hex::encode(whole.finalize()),
        digests.len()
    ))
}

/// The headers that carry an object's metadata over S3.
fn metadata_headers(object: &R2Object) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(http) = &object.http_metadata {
        let fields = [
            ("content-type", &http.content_type),
            ("content-language", &http.content_language),
            ("content-disposition", &http.content_disposition),
            ("content-encoding", &http.content_encoding),
            ("cache-control", &http.cache_control),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                out.push((name.to_owned(), v.clone()));
            }
        }
    }
    for (k, v) in object.custom_metadata.iter().flatten() {
        out.push((format!("x-amz-meta-{k}"), v.clone()));
    }
    out
}

/// The metadata a GET's headers carry, as a local put's options.
fn put_options(response: &super::http::Response) -> R2PutOptions {
    let get = |name: &str| response.header(name).map(str::to_owned);
    R2PutOptions {
        http_metadata: HttpMetadata {
            content_type: get("content-type"),
            content_language: get("content-language"),
            content_disposition: get("content-disposition"),
            content_encoding: get("content-encoding"),
            cache_control: get("cache-control"),
            ..Default::default()
        },
        custom_metadata: response
            .headers
            .iter()
            .filter_map(|(k, v)| {
                let name = k.to_ascii_lowercase();
                Some((name.strip_prefix("x-amz-meta-")?.to_owned(), v.clone()))
            })
            .collect(),
        ..Default::default()
    }
}

fn push_object(s3: &S3, bucket: &R2Bucket, name: &str, object: &R2Object) -> Result<()> {
    let headers = metadata_headers(object);
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let body = bucket
        .get(&object.key, &R2GetOptions::default())?
        .and_then(|b| b.body)
        .ok_or_else(|| TransferError(format!("local R2: {} vanished while copying", object.key)))?;
    let mut body = body;
    let read_err =
        |e: std::io::Error| TransferError(format!("local R2: reading {}: {e}", object.key));
    if object.size <= PART_SIZE {
        let mut bytes = Vec::with_capacity(object.size as usize);
        body.read_to_end(&mut bytes).map_err(read_err)?;
        return s3.put(name, &object.key, &headers, &bytes);
    }
    let upload = s3.create_multipart(name, &object.key, &headers)?;
    let parts = (|| {
        let mut etags = Vec::new();
        let mut part = Vec::with_capacity(PART_SIZE as usize);
        loop {
            part.clear();
            (&mut body)
                .take(PART_SIZE)
                .read_to_end(&mut part)
                .map_err(read_err)?;
            if part.is_empty() {
                return Ok(etags);
            }
            etags.push(s3.upload_part(name, &object.key, &upload, etags.len() + 1, &part)?);
        }
    })();
    let finished =
        parts.and_then(|etags| s3.complete_multipart(name, &object.key, &upload, &etags));
    if let Err(e) = finished {
        // Best effort: a remote that failed may not take the abort either; R2 expires
        // abandoned uploads itself.
        let _ = s3.abort_multipart(name, &object.key, &upload);
        return Err(e);
    }
    Ok(())
}

/// A large remote object read range by range, so a pull's memory stays at one range.
struct Ranges<'a> {
    s3: &'a S3,
    bucket: &'a str,
    key: &'a str,
    size: u64,
    next: u64,
    buffer: std::io::Cursor<Vec<u8>>,
    error: Option<TransferError>,
}

impl Read for Ranges<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.buffer.read(out)?;
        if n > 0 || self.next >= self.size {
            return Ok(n);
        }
        let length = PART_SIZE.min(self.size - self.next);
        match self.s3.get_range(self.bucket, self.key, self.next, length) {
            Ok(r) if r.body.len() as u64 == length => {
                self.next += length;
                self.buffer = std::io::Cursor::new(r.body);
                self.buffer.read(out)
            }
            Ok(r) => {
                let message = format!(
                    "r2 {}/{}: asked for {length} bytes at {}, the remote sent {}",
                    self.bucket,
                    self.key,
                    self.next,
                    r.body.len()
                );
                self.error = Some(TransferError(message.clone()));
                Err(std::io::Error::other(message))
            }
            Err(e) => {
                let message = e.0.clone();
                self.error = Some(e);
                Err(std::io::Error::other(message))
            }
        }
    }
}

fn pull_object(s3: &S3, bucket: &R2Bucket, name: &str, object: &Listed) -> Result<()> {
    if object.size <= PART_SIZE {
        let response = s3.get(name, &object.key)?;
        bucket.put(&object.key, &response.body, &put_options(&response))?;
        return Ok(());
    }
    // The first range also brings the metadata headers.
    let first = s3.get_range(name, &object.key, 0, PART_SIZE)?;
    let options = put_options(&first);
    let mut ranges = Ranges {
        s3,
        bucket: name,
        key: &object.key,
        size: object.size,
        next: PART_SIZE,
        buffer: std::io::Cursor::new(first.body),
        error: None,
    };
    let stored = bucket.put_reader(&object.key, &mut ranges, object.size, &options);
    if let Some(e) = ranges.error {
        return Err(e);
    }
    stored?;
    Ok(())
}
