//! Refuses SQL that would let a component step outside the transaction,
//! role and claims the host gave its invocation.
//!
//! This is one of three layers: the request roles cannot create functions
//! (no CREATE on any schema, TEMPORARY revoked), `set_config` is revoked
//! from them where the owner is a superuser, and this lexical check refuses
//! the statements that change session state directly. It reads the SQL the
//! way PostgreSQL's lexer does for what matters here (comments, string
//! literals, dollar quotes, quoted identifiers), so keywords inside strings
//! are neither missed nor falsely matched.

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Words borrow the statement: they are compared ignoring ASCII case, as
/// PostgreSQL folds unquoted identifiers in UTF-8 databases, so lexing a
/// statement allocates nothing per word.
#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    QuotedIdent(Cow<'a, str>),
    /// At this byte offset.
    Semicolon(usize),
    Other,
}

fn is_one_of(word: &str, list: &[&str]) -> bool {
    list.iter().any(|w| w.eq_ignore_ascii_case(word))
}

/// Statements a component may not run: session state, transaction control
/// and anonymous code blocks.
const FORBIDDEN_FIRST_WORDS: &[&str] = &[
    "set",
    "reset",
    "begin",
    "start",
    "commit",
    "end",
    "rollback",
    "abort",
    "discard",
    "do",
    "load",
    "copy",
    "listen",
    "unlisten",
    "prepare",
    "execute",
    "deallocate",
    "checkpoint",
    "vacuum",
];

/// Functions that change session state wherever they appear. Session-level
/// advisory locks outlive the request on its pooled connection: a later
/// request, anyone's, would find them held (the `_xact_` forms end with the
/// transaction and stay allowed).
const FORBIDDEN_FUNCTIONS: &[&str] = &[
    "set_config",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
];

/// Statements longer than this are refused before lexing.
pub const MAX_SQL_BYTES: usize = 1 << 20;

/// Checks one statement (optionally followed by `;`).
pub fn check(sql: &str) -> Result<(), Refused> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(Refused(format!(
            "statement is longer than {MAX_SQL_BYTES} bytes"
        )));
    }
    let tokens = lex(sql)?;
    let first_word = match tokens.iter().find(|t| **t != Token::Other) {
        None => return Err(Refused("empty statement".into())),
        Some(Token::Word(w)) => Some(*w),
        Some(_) => None,
    };
    if let Some(first) = first_word.filter(|w| is_one_of(w, FORBIDDEN_FIRST_WORDS)) {
        return Err(Refused(format!(
            "`{}` statements are not allowed: the host owns the transaction, role and settings",
            first.to_ascii_uppercase()
        )));
    }
    if first_word.is_some_and(|w| w.eq_ignore_ascii_case("declare")) && holds_past_commit(&tokens) {
        return Err(Refused(
            "`DECLARE ... WITH HOLD` is not allowed: the cursor would outlive the request on a shared connection"
                .into(),
        ));
    }
    for token in &tokens {
        let forbidden = match token {
            Token::Word(w) => is_one_of(w, FORBIDDEN_FUNCTIONS).then_some(*w),
            // Quoted, the name is exactly as written.
            Token::QuotedIdent(w) => FORBIDDEN_FUNCTIONS
                .contains(&w.as_ref())
                .then_some(w.as_ref()),
            _ => None,
        };
        if let Some(name) = forbidden {
            return Err(Refused(format!(
                "`{}` is not allowed",
                name.to_ascii_lowercase()
            )));
        }
    }
    if let Some(pos) = tokens.iter().position(|t| matches!(t, Token::Semicolon(_))) {
        if tokens[pos + 1..]
            .iter()
            .any(|t| !matches!(t, Token::Semicolon(_)))
        {
            return Err(Refused("one statement per call".into()));
        }
    }
    Ok(())
}

/// One statement of a script: where it is (without its `;`) and its first
/// word, upper case (`SELECT`, `BEGIN`), when it starts with one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub range: std::ops::Range<usize>,
    pub first_word: Option<String>,
}

/// Splits a script at the semicolons that end statements (not those in
/// strings, quoted names, dollar quotes or comments), leaving out empty
/// statements. For the admin SQL editor, which runs anything: nothing is
/// refused here but text that does not lex (an unterminated string).
pub fn split_statements(sql: &str) -> Result<Vec<Statement>, Refused> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(Refused(format!(
            "the script is longer than {MAX_SQL_BYTES} bytes"
        )));
    }
    let mut statements = Vec::new();
    let mut start = 0;
    let mut first: Option<Option<String>> = None;
    for token in lex(sql)? {
        match token {
            Token::Semicolon(at) => {
                if let Some(first_word) = first.take() {
                    statements.push(Statement {
                        range: start..at,
                        first_word,
                    });
                }
                start = at + 1;
            }
            Token::Word(w) => {
                first.get_or_insert_with(|| Some(w.to_ascii_uppercase()));
            }
            _ => {
                first.get_or_insert(None);
            }
        }
    }
    if let Some(first_word) = first {
        statements.push(Statement {
            range: start..sql.len(),
            first_word,
        });
    }
    Ok(statements)
}

/// A cursor declared `WITH HOLD` survives the commit, readable by whichever
/// request gets the connection next.
fn holds_past_commit(tokens: &[Token]) -> bool {
    tokens.windows(2).any(|pair| {
        matches!(pair, [Token::Word(a), Token::Word(b)]
            if a.eq_ignore_ascii_case("with") && b.eq_ignore_ascii_case("hold"))
    })
}

fn lex(sql: &str) -> Result<Vec<Token<'_>>, Refused> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let mut depth = 1;
                i += 2;
                while depth > 0 {
                    match (bytes.get(i), bytes.get(i + 1)) {
                        (None, _) => return Err(Refused("unterminated comment".into())),
                        (Some(b'/'), Some(b'*')) => {
                            depth += 1;
                            i += 2;
                        }
                        (Some(b'*'), Some(b'/')) => {
                            depth -= 1;
                            i += 2;
                        }
                        _ => i += 1,
                    }
                }
            }
            b'\'' => {
                i = skip_string(bytes, i + 1, false)?;
                tokens.push(Token::Other);
            }
            b'"' => {
                // `""` inside is one quote. A quote byte never occurs inside
                // a multi-byte UTF-8 sequence, so the slice bounds are
                // character boundaries.
                let start = i + 1;
                let mut end = start;
                let mut doubled = false;
                loop {
                    match bytes.get(end) {
                        None => return Err(Refused("unterminated quoted identifier".into())),
                        Some(b'"') if bytes.get(end + 1) == Some(&b'"') => {
                            doubled = true;
                            end += 2;
                        }
                        Some(b'"') => break,
                        Some(_) => end += 1,
                    }
                }
                let raw = &sql[start..end];
                i = end + 1;
                tokens.push(Token::QuotedIdent(if doubled {
                    Cow::Owned(raw.replace("\"\"", "\""))
                } else {
                    Cow::Borrowed(raw)
                }));
            }
            b'$' => {
                // `$tag$ ... $tag$` (tag may be empty); `$1` is a parameter.
                let tag_end = bytes[i + 1..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b >= 0x80))
                    .map(|p| i + 1 + p);
                match tag_end {
                    Some(end)
                        if bytes[end] == b'$'
                            && !bytes.get(i + 1).is_some_and(|b| b.is_ascii_digit()) =>
                    {
                        let tag = &sql[i..=end];
                        let body_start = end + 1;
                        match sql[body_start..].find(tag) {
                            Some(p) => i = body_start + p + tag.len(),
                            None => {
                                return Err(Refused("unterminated dollar-quoted string".into()))
                            }
                        }
                        tokens.push(Token::Other);
                    }
                    _ => {
                        i += 1;
                        while i < bytes.len() && bytes[i].is_ascii_digit() {
                            i += 1;
                        }
                        tokens.push(Token::Other);
                    }
                }
            }
            b';' => {
                tokens.push(Token::Semicolon(i));
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || bytes[i] == b'_'
                        || bytes[i] == b'$'
                        || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                let word = &sql[start..i];
                // E'...' strings take backslash escapes.
                if (word == "E" || word == "e") && bytes.get(i) == Some(&b'\'') {
                    i = skip_string(bytes, i + 1, true)?;
                    tokens.push(Token::Other);
                } else {
                    tokens.push(Token::Word(word));
                }
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                tokens.push(Token::Other);
                i += 1;
            }
        }
    }
    Ok(tokens)
}

/// Returns the index after the closing quote of a string literal whose body
/// starts at `i`.
fn skip_string(bytes: &[u8], mut i: usize, backslash_escapes: bool) -> Result<usize, Refused> {
    loop {
        match bytes.get(i) {
            None => return Err(Refused("unterminated string literal".into())),
            Some(b'\\') if backslash_escapes => i += 2,
            Some(b'\'') if bytes.get(i + 1) == Some(&b'\'') => i += 2,
            Some(b'\'') => return Ok(i + 1),
            Some(_) => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{check, split_statements};

    #[test]
    fn scripts_split_at_the_semicolons_that_end_statements() {
        let sql = "select 1; insert into t values ('a;b', $$;$$, \"x;y\");\n\
                   -- only a comment;\n;; /* c; */ begin ; (select 2)";
        let statements = split_statements(sql).unwrap();
        let parts: Vec<(&str, Option<&str>)> = statements
            .iter()
            .map(|s| (sql[s.range.clone()].trim(), s.first_word.as_deref()))
            .collect();
        assert_eq!(
            parts,
            [
                ("select 1", Some("SELECT")),
                (
                    "insert into t values ('a;b', $$;$$, \"x;y\")",
                    Some("INSERT")
                ),
                ("/* c; */ begin", Some("BEGIN")),
                ("(select 2)", None),
            ]
        );
        assert!(split_statements("  -- nothing\n ; ").unwrap().is_empty());
        assert!(split_statements("select 'open").is_err());
    }

    #[test]
    fn ordinary_statements_pass() {
        for sql in [
            "select 1",
            "select $1::text as name;",
            "update t set a = 1 where id = $2",
            "insert into t(a) values ('set role x; reset all')",
            "select 'it''s' -- set role service_role\n",
            "select $$ do $$, $q$ set_config $q$",
            "with x as (select 1) select * from x",
            "  /* begin */ select 1",
            "select pg_advisory_xact_lock(42)",
            "declare c cursor without hold for select 1",
            "declare c cursor for select 'with hold'",
            // Quoted names are exact: these are other (missing) functions.
            "select \"SET_CONFIG\"('role', 'x', false)",
            "select \"set\"\"_config\"('role', 'x', false)",
            // PostgreSQL folds only ASCII letters: the Kelvin sign stays.
            "select pg_advisory_loc\u{212a}(1)",
        ] {
            assert_eq!(check(sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn session_and_transaction_control_is_refused() {
        for sql in [
            "set role service_role",
            "SET LOCAL request.jwt.claims = '{}'",
            "  reset role",
            "/* x */ RESET ALL",
            "commit",
            "rollback",
            "begin",
            "do $$ begin perform 1; end $$",
            "select set_config('role', 'service_role', true)",
            "select pg_catalog.set_config('role', 'x', false)",
            "select \"set_config\"('role', 'x', false)",
            "select 1; set role postgres",
            "discard all",
            "copy t to stdout",
            "select pg_advisory_lock(42)",
            "select pg_catalog.pg_try_advisory_lock_shared(1, 2)",
            "declare c cursor with hold for select * from t",
            "DECLARE c NO SCROLL CURSOR WITH HOLD FOR select 1",
            "Select PG_Advisory_Lock(1)",
            "SeLeCt \"set_config\"('role', 'x', false)",
            "",
            "  -- only a comment",
        ] {
            assert!(check(sql).is_err(), "{sql}");
        }
    }

    #[test]
    fn unterminated_input_is_refused_not_misread() {
        for sql in [
            "select 'abc",
            "select \"abc",
            "select $x$ abc",
            "select /* abc",
        ] {
            assert!(check(sql).is_err(), "{sql}");
        }
    }
}
