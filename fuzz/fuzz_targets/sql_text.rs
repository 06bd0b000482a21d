//! `exec()` line splitting and statement splitting: no panic on any text, and the
//! lexical classification never calls a multi-statement text a single statement.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristore::d1::sql_text::{exec_lines, shape, split_statements, Shape};

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let pieces = split_statements(sql);
    match shape(sql) {
        Shape::Blank => assert!(pieces.is_empty(), "blank text split into {pieces:?}"),
        // SQLite's own sqlite3_complete may see more statements than the lexer in a
        // trigger body, never fewer: a Single text is at most one piece.
        Shape::Single => assert!(pieces.len() <= 1, "single text split into {pieces:?}"),
        Shape::Several => {}
    }
    for piece in &pieces {
        assert!(sql.contains(piece));
        assert_ne!(shape(piece), Shape::Blank);
    }
    let mut last = 0;
    for (n, line) in exec_lines(sql) {
        assert_eq!(n, last + 1);
        assert!(!line.contains('\n'));
        last = n;
    }
});
