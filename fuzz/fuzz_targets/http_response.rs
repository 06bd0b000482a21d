//! The HTTP/1.1 answers `tristore pull` / `push` read from a remote (and the bench
//! client too): `transfer::http::read_response`.
//!
//! 1. Any bytes parse or fail with an error (never a panic), and a body is never
//!    longer than the bytes sent: sizes a server announces are not trusted.
//! 2. A well-formed answer built from fuzzed parts (status, headers, body; with
//!    Content-Length or chunked in fuzzed chunk sizes, or to the end of the stream)
//!    parses back to exactly those parts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristore::transfer::http::read_response;

type Input<'a> = (&'a [u8], u16, Vec<(String, String)>, &'a [u8], u8, u16);

fuzz_target!(|input: Input<'_>| {
    let (data, status, headers, body, framing, chunk) = input;

    // 1. Arbitrary bytes.
    for method in ["GET", "HEAD"] {
        if let Ok((response, _)) = read_response(&mut &data[..], method) {
            assert!(response.body.len() <= data.len());
        }
    }

    // 2. A well-formed answer.
    let status = 200 + status % 300;
    if status == 204 || status == 304 {
        return;
    }
    let headers: Vec<(String, String)> = headers
        .into_iter()
        .take(8)
        .filter_map(|(k, v)| {
            let k: String = k.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            let v: String = v.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').collect();
            let v = v.trim().to_owned();
            let framing = ["content-length", "transfer-encoding", "connection"];
            (!k.is_empty() && !framing.contains(&k.to_ascii_lowercase().as_str())).then_some((k, v))
        })
        .collect();
    let mut text = format!("HTTP/1.1 {status} Whatever\r\n").into_bytes();
    for (k, v) in &headers {
        text.extend(format!("{k}: {v}\r\n").as_bytes());
    }
    match framing % 3 {
        0 => {
            text.extend(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            text.extend(body);
        }
        1 => {
            text.extend(b"Transfer-Encoding: chunked\r\n\r\n");
            for part in body.chunks(usize::from(chunk % 1000) + 1) {
                text.extend(format!("{:x}\r\n", part.len()).as_bytes());
                text.extend(part);
                text.extend(b"\r\n");
            }
            text.extend(b"0\r\n\r\n");
        }
        _ => {
            text.extend(b"Connection: close\r\n\r\n");
            text.extend(body);
        }
    }
    let (response, close) = read_response(&mut &text[..], "GET").expect("a well-formed answer");
    assert_eq!(response.status, status);
    assert_eq!(response.body, body);
    assert_eq!(close, framing % 3 == 2);
    for (k, v) in &headers {
        assert!(response.headers.iter().any(|(rk, rv)| rk == k && rv == v), "{k}: {v} lost");
    }
});
