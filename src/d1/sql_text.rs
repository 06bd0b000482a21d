//! Lexical helpers over SQL text that must agree with SQLite's tokenizer on where
//! strings, identifiers and comments begin and end.

/// How many statements a SQL text holds, as far as a lexical scan can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Only blanks, comments and semicolons.
    Blank,
    /// At most one statement, optionally followed by `;` and blanks or comments.
    Single,
    /// A `;` outside strings, quoted identifiers and comments is followed by more text.
    /// Conservative on purpose: a trigger body (`BEGIN ...; END`) lands here, and the
    /// caller then lets SQLite itself split the text. Calling a text `Single` that is
    /// not would run it only in part, so that direction must never happen.
    Several,
}

/// Classifies `sql` in one pass.
pub fn shape(sql: &str) -> Shape {
    let mut tokens = Scanner::new(sql);
    let mut seen_text = false;
    while let Some(token) = tokens.next_token() {
        match token {
            Token::Other => seen_text = true,
            Token::Semicolon if seen_text => {
                return if tokens.any(|t| t == Token::Other) {
                    Shape::Several
                } else {
                    Shape::Single
                };
            }
            Token::Semicolon => {}
        }
    }
    if seen_text {
        Shape::Single
    } else {
        Shape::Blank
    }
}

/// Splits a script into its statements at the semicolons where SQLite's own
/// `sqlite3_complete` says a statement ends (so trigger bodies stay whole). Blank
/// pieces are dropped; each piece keeps its terminating `;`.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut scanner = Scanner::new(sql);
    while let Some(token) = scanner.next_token() {
        if token == Token::Semicolon && is_complete(&sql[start..scanner.pos]) {
            let piece = &sql[start..scanner.pos];
            if shape(piece) != Shape::Blank {
                pieces.push(trim_sql(piece));
            }
            start = scanner.pos;
        }
    }
    let rest = &sql[start..];
    if shape(rest) != Shape::Blank {
        pieces.push(trim_sql(rest));
    }
    pieces
}

/// Trims what SQLite's tokenizer calls blank; not Rust's `trim`, which also strips
/// characters (vertical tab, Unicode spaces) that SQLite treats as text.
fn trim_sql(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c'))
}

fn is_complete(sql: &str) -> bool {
    match std::ffi::CString::new(sql) {
        // SAFETY: `text` is a valid NUL-terminated string for the duration of the call.
        Ok(text) => unsafe { rusqlite::ffi::sqlite3_complete(text.as_ptr()) != 0 },
        // SQLite will reject the NUL itself; cut here so the error names this piece.
        Err(_) => true,
    }
}

/// The lines `exec()` sends, as the binding splits them: the input is trimmed and
/// cut at every `\n`; each line is a query of its own. Yields `(line number, text)`.
pub fn exec_lines(sql: &str) -> impl Iterator<Item = (usize, &str)> {
    sql.trim()
        .split('\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Semicolon,
    /// Any other text that is not a blank or a comment.
    Other,
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(sql: &'a str) -> Self {
        Scanner {
            bytes: sql.as_bytes(),
            pos: 0,
        }
    }

    fn next_token(&mut self) -> Option<Token> {
        loop {
            let b = *self.bytes.get(self.pos)?;
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => self.pos += 1,
                b'-' if self.bytes.get(self.pos + 1) == Some(&b'-') => {
                    self.skip_until(b"\n");
                }
                b'/' if self.bytes.get(self.pos + 1) == Some(&b'*') => {
                    self.pos += 2;
                    self.skip_until(b"*/");
                }
                b';' => {
                    self.pos += 1;
                    return Some(Token::Semicolon);
                }
                b'\'' | b'"' | b'`' => {
                    self.skip_quoted(b);
                    return Some(Token::Other);
                }
                b'[' => {
                    self.pos += 1;
                    self.skip_until(b"]");
                    return Some(Token::Other);
                }
                _ => {
                    self.pos += 1;
                    return Some(Token::Other);
                }
            }
        }
    }

    /// Skips past the next occurrence of `end`, or to the end of input.
    fn skip_until(&mut self, end: &[u8]) {
        let rest = &self.bytes[self.pos..];
        self.pos += rest
            .windows(end.len())
            .position(|w| w == end)
            .map_or(rest.len(), |i| i + end.len());
    }

    /// Skips a quoted string or identifier, where a doubled quote is an escaped one.
    fn skip_quoted(&mut self, quote: u8) {
        self.pos += 1;
        while let Some(&b) = self.bytes.get(self.pos) {
            self.pos += 1;
            if b == quote {
                if self.bytes.get(self.pos) == Some(&quote) {
                    self.pos += 1;
                } else {
                    return;
                }
            }
        }
    }
}

impl Iterator for Scanner<'_> {
    type Item = Token;
    fn next(&mut self) -> Option<Token> {
        self.next_token()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_statements_stay_on_the_fast_path() {
        for sql in [
            "SELECT 1",
            "SELECT 1;",
            "SELECT 1; -- done",
            "SELECT 1; /* done */  ",
            "SELECT ';' AS a",
            "SELECT \"a;b\" FROM t",
            "SELECT [x;y] FROM t",
            "SELECT 'it''s; fine'",
            "; SELECT 1",
        ] {
            assert_eq!(shape(sql), Shape::Single, "{sql}");
        }
    }

    #[test]
    fn several_statements_are_detected() {
        for sql in [
            "SELECT 1; SELECT 2",
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE b SET x = 1; END",
            "SELECT '';SELECT 2",
            "SELECT 1 /* ; */; SELECT 2",
        ] {
            assert_eq!(shape(sql), Shape::Several, "{sql}");
        }
    }

    #[test]
    fn blank_text() {
        assert_eq!(shape("  -- nothing\n /* at all */ ; "), Shape::Blank);
        assert_eq!(shape(""), Shape::Blank);
        assert_eq!(shape("-- x\nSELECT 1"), Shape::Single);
    }

    #[test]
    fn scripts_split_where_sqlite_says_statements_end() {
        let script = "CREATE TABLE a(x);\nCREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET x = 1; SELECT ';';\nEND;\n-- tail\nINSERT INTO a VALUES (';')";
        assert_eq!(
            split_statements(script),
            vec![
                "CREATE TABLE a(x);",
                "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET x = 1; SELECT ';';\nEND;",
                "-- tail\nINSERT INTO a VALUES (';')",
            ]
        );
        assert!(split_statements(" ; -- nothing").is_empty());
        // Found by the fuzzer: a vertical tab is text to SQLite, so it must stay.
        assert_eq!(split_statements("\x0b ;\x07"), vec!["\x0b ;", "\x07"]);
    }

    #[test]
    fn exec_splits_on_newlines_after_trimming() {
        let lines: Vec<_> = exec_lines("\n SELECT 1;\nSELECT 2;\n").collect();
        assert_eq!(lines, vec![(1, "SELECT 1;"), (2, "SELECT 2;")]);
    }
}
