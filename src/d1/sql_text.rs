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
    // Without a `;` anywhere the text holds one statement at most, and its first token
    // says whether it holds one: the common case (a prepared statement) skips the scan.
    if !sql.contains(';') {
        return match Scanner::new(sql).next_token() {
            Some(_) => Shape::Single,
            None => Shape::Blank,
        };
    }
    let mut tokens = Scanner::new(sql);
    let mut seen_text = false;
    while let Some(token) = tokens.next_token() {
        match token {
            Token::Word | Token::Other => seen_text = true,
            Token::Semicolon if seen_text => {
                return if tokens.any(|t| t != Token::Semicolon) {
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
/// `sqlite3_complete` would say a statement ends (so trigger bodies stay whole). Blank
/// pieces are dropped; each piece keeps its terminating `;`.
///
/// One pass over the text, yielding each statement as soon as it is found: callers
/// run statements while the rest is still unsplit, under the request's time limit.
pub fn split_statements(sql: &str) -> impl Iterator<Item = &str> {
    Statements {
        sql,
        scanner: Scanner::new(sql),
        start: 0,
    }
}

struct Statements<'a> {
    sql: &'a str,
    scanner: Scanner<'a>,
    /// Where the next piece begins.
    start: usize,
}

impl<'a> Iterator for Statements<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let mut state = Completion::INVALID;
        let mut nul = false;
        while self.start < self.sql.len() {
            let before = self.scanner.pos;
            let token = self.scanner.next_token();
            let end = self.scanner.pos;
            nul |= self.sql.as_bytes()[before..end].contains(&0);
            let cut = match token {
                None => true,
                Some(token) => {
                    state = state.after(token, &self.sql[self.scanner.token_start..end]);
                    // SQLite will reject a NUL itself; cutting at the next `;` makes the
                    // error name this piece rather than swallow the rest of the script.
                    token == Token::Semicolon && (state == Completion::START || nul)
                }
            };
            if cut {
                let piece = &self.sql[self.start..end];
                self.start = end;
                if shape(piece) != Shape::Blank {
                    return Some(trim_sql(piece));
                }
                state = Completion::INVALID;
                nul = false;
            }
        }
        None
    }
}

/// `sqlite3_complete`'s state machine (SQLite's complete.c), which tells whether the
/// text so far ends a statement: a `;` ends one when it leads to `START`, and inside
/// `CREATE [TEMP] TRIGGER ... END` none does. Blanks and comments never change the
/// state (complete.c's whitespace column is the identity), so the scanner skips them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Completion(u8);

impl Completion {
    const INVALID: Completion = Completion(0);
    const START: Completion = Completion(1);

    /// complete.c's `trans`, states INVALID, START, NORMAL, EXPLAIN, CREATE, TRIGGER,
    /// SEMI, END by tokens `;`, other, EXPLAIN, CREATE, TEMP, TRIGGER, END.
    const TRANSITIONS: [[u8; 7]; 8] = [
        [1, 2, 3, 4, 2, 2, 2],
        [1, 2, 3, 4, 2, 2, 2],
        [1, 2, 2, 2, 2, 2, 2],
        [1, 3, 2, 4, 2, 2, 2],
        [1, 2, 2, 2, 4, 5, 2],
        [6, 5, 5, 5, 5, 5, 5],
        [6, 5, 5, 5, 5, 5, 7],
        [1, 5, 5, 5, 5, 5, 5],
    ];

    /// The state after `token`, whose text is `text`.
    fn after(self, token: Token, text: &str) -> Completion {
        let column = match token {
            Token::Semicolon => 0,
            Token::Other => 1,
            Token::Word => {
                let is = |k: &str| text.eq_ignore_ascii_case(k);
                if is("explain") {
                    2
                } else if is("create") {
                    3
                } else if is("temp") || is("temporary") {
                    4
                } else if is("trigger") {
                    5
                } else if is("end") {
                    6
                } else {
                    1
                }
            }
        };
        Completion(Self::TRANSITIONS[usize::from(self.0)][column])
    }
}

/// Trims what SQLite's tokenizer calls blank; not Rust's `trim`, which also strips
/// characters (vertical tab, Unicode spaces) that SQLite treats as text.
fn trim_sql(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c'))
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
    /// A keyword or unquoted identifier (a run of SQLite's identifier characters).
    Word,
    /// Any other text that is not a blank or a comment.
    Other,
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Where the last token began (after the blanks and comments before it).
    token_start: usize,
    /// Tokens read, for the test that the split is one pass.
    #[cfg(test)]
    tokens: usize,
}

/// SQLite's `IdChar`: letters, digits, `_`, `$` and every byte of a non-ASCII character.
fn is_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

impl<'a> Scanner<'a> {
    fn new(sql: &'a str) -> Self {
        Scanner {
            bytes: sql.as_bytes(),
            pos: 0,
            token_start: 0,
            #[cfg(test)]
            tokens: 0,
        }
    }

    fn next_token(&mut self) -> Option<Token> {
        #[cfg(test)]
        {
            self.tokens += 1;
        }
        loop {
            let b = *self.bytes.get(self.pos)?;
            self.token_start = self.pos;
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
                _ if is_id_char(b) => {
                    let run = self.bytes[self.pos..]
                        .iter()
                        .take_while(|&&c| is_id_char(c));
                    self.pos += run.count();
                    return Some(Token::Word);
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
        // Without a `;`, the short path decides.
        assert_eq!(
            shape(" \n-- only a comment\n /* and another */ "),
            Shape::Blank
        );
        assert_eq!(shape("/* never closed"), Shape::Blank);
        assert_eq!(shape("/* c */ SELECT 1"), Shape::Single);
    }

    #[test]
    fn scripts_split_where_sqlite_says_statements_end() {
        let script = "CREATE TABLE a(x);\nCREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET x = 1; SELECT ';';\nEND;\n-- tail\nINSERT INTO a VALUES (';')";
        assert_eq!(
            split(script),
            vec![
                "CREATE TABLE a(x);",
                "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET x = 1; SELECT ';';\nEND;",
                "-- tail\nINSERT INTO a VALUES (';')",
            ]
        );
        assert!(split(" ; -- nothing").is_empty());
        // Found by the fuzzer: a vertical tab is text to SQLite, so it must stay.
        assert_eq!(split("\x0b ;\x07"), vec!["\x0b ;", "\x07"]);
    }

    fn split(sql: &str) -> Vec<&str> {
        split_statements(sql).collect()
    }

    /// The rule the splitter implements, as first written: cut at a `;` when SQLite's
    /// `sqlite3_complete` accepts the text since the last cut (or that text holds a NUL).
    /// Quadratic, so only a test oracle.
    fn split_by_sqlite(sql: &str) -> Vec<&str> {
        let complete = |piece: &str| match std::ffi::CString::new(piece) {
            // SAFETY: a valid NUL-terminated string for the duration of the call.
            Ok(text) => unsafe { rusqlite::ffi::sqlite3_complete(text.as_ptr()) != 0 },
            Err(_) => true,
        };
        let mut pieces = Vec::new();
        let mut start = 0;
        let mut scanner = Scanner::new(sql);
        while let Some(token) = scanner.next_token() {
            if token == Token::Semicolon && complete(&sql[start..scanner.pos]) {
                pieces.push(&sql[start..scanner.pos]);
                start = scanner.pos;
            }
        }
        pieces.push(&sql[start..]);
        pieces
            .into_iter()
            .filter(|p| shape(p) != Shape::Blank)
            .map(trim_sql)
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn splitting_agrees_with_sqlite3_complete(
            parts in proptest::collection::vec((proptest::sample::select(vec![
                ";", ";", ";", "x", "1", "(", "'", "\"", "`", "[", "]", "--", "/*", "*/", "\n",
                "\0", "$", "é", "\x0b", "CREATE", "create", "TEMP", "temporary", "TRIGGER",
                "trigger", "END", "end", "EXPLAIN", "explain", "createx", "end_",
                "CREATE TRIGGER t BEGIN", "create temp trigger", "EXPLAIN CREATE", "END;",
            ]), proptest::sample::select(vec!["", " ", " "])), 0..30)
        ) {
            let sql: String = parts.iter().flat_map(|(t, sep)| [*t, *sep]).collect();
            proptest::prop_assert_eq!(split(&sql), split_by_sqlite(&sql), "{:?}", sql);
        }
    }

    /// A trigger body that never ends: no `;` in it completes a statement, which is
    /// the worst case for a splitter that re-reads the text at each one. Each token is
    /// read once: 8 before the body, 3 per `SELECT 1;`, and the end of the text.
    #[test]
    fn splitting_reads_each_token_once() {
        let sql = format!(
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN {}",
            "SELECT 1;".repeat(100_000)
        );
        let mut statements = Statements {
            sql: &sql,
            scanner: Scanner::new(&sql),
            start: 0,
        };
        assert_eq!(statements.by_ref().count(), 1);
        assert_eq!(statements.scanner.tokens, 8 + 3 * 100_000 + 1);
    }

    #[test]
    fn exec_splits_on_newlines_after_trimming() {
        let lines: Vec<_> = exec_lines("\n SELECT 1;\nSELECT 2;\n").collect();
        assert_eq!(lines, vec![(1, "SELECT 1;"), (2, "SELECT 2;")]);
    }
}
