//! `exec()` line splitting and statement splitting: no panic on any text, the lexical
//! classification never calls a multi-statement text a single statement, and the
//! one-pass splitter cuts exactly where SQLite's own `sqlite3_complete` says a
//! statement ends.
#![no_main]

use std::ffi::{c_char, c_int, CString};

use libfuzzer_sys::fuzz_target;
use tristore::d1::sql_text::{exec_lines, shape, split_statements, Shape};

extern "C" {
    // Linked in with tristore's SQLite.
    fn sqlite3_complete(sql: *const c_char) -> c_int;
}

/// `None` when the text holds a NUL, where the splitter cuts at the next `;` instead.
fn complete(text: &str) -> Option<bool> {
    let text = CString::new(text).ok()?;
    // SAFETY: a valid NUL-terminated string for the duration of the call.
    Some(unsafe { sqlite3_complete(text.as_ptr()) } != 0)
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let pieces: Vec<&str> = split_statements(sql).collect();
    match shape(sql) {
        Shape::Blank => assert!(pieces.is_empty(), "blank text split into {pieces:?}"),
        // SQLite's own sqlite3_complete may see more statements than the lexer in a
        // trigger body, never fewer: a Single text is at most one piece.
        Shape::Single => assert!(pieces.len() <= 1, "single text split into {pieces:?}"),
        Shape::Several => {}
    }
    for (i, piece) in pieces.iter().enumerate() {
        assert!(sql.contains(piece));
        assert_ne!(shape(piece), Shape::Blank);
        // Every cut is where SQLite says a statement is complete...
        if i + 1 < pieces.len() {
            assert_ne!(complete(piece), Some(false), "cut too early: {piece:?}");
        }
        // ...and no earlier `;` of the piece was such a place.
        for (at, _) in piece
            .match_indices(';')
            .filter(|(at, _)| at + 1 < piece.len())
        {
            let prefix = &piece[..=at];
            assert_ne!(
                complete(prefix),
                Some(true),
                "missed a cut: {prefix:?} in {piece:?}"
            );
        }
    }
    let mut last = 0;
    for (n, line) in exec_lines(sql) {
        assert_eq!(n, last + 1);
        assert!(!line.contains('\n'));
        last = n;
    }
});
