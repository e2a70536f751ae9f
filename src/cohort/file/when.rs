//! Rule conditions: criterion names, `and`, `or`, `not` and parentheses; `not`
//! binds tightest, then `and`, then `or`. Errors carry the byte offset in the
//! condition text they refer to, so they can name the column.

use crate::cohort::model::Expr;

/// An error message and the byte offset in the condition it refers to.
type Failure = (usize, String);

/// Criterion names with their offsets, in order.
type Names<'a> = Vec<(usize, &'a str)>;

#[derive(Debug, Clone, PartialEq)]
enum Token<'a> {
    Name(&'a str),
    And,
    Or,
    Not,
    Open,
    Close,
}

fn describe(t: Option<&(usize, Token<'_>)>) -> String {
    match t.map(|(_, t)| t) {
        None => "the end".into(),
        Some(Token::Name(n)) => format!("`{n}`"),
        Some(Token::And) => "`and`".into(),
        Some(Token::Or) => "`or`".into(),
        Some(Token::Not) => "`not`".into(),
        Some(Token::Open) => "`(`".into(),
        Some(Token::Close) => "`)`".into(),
    }
}

fn tokens(s: &str) -> Result<Vec<(usize, Token<'_>)>, Failure> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => out.push((at, Token::Open)),
            ')' => out.push((at, Token::Close)),
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut end = at + c.len_utf8();
                while let Some(&(i, c)) = chars.peek() {
                    if !(c.is_ascii_alphanumeric() || c == '_') {
                        break;
                    }
                    end = i + c.len_utf8();
                    chars.next();
                }
                out.push((
                    at,
                    match &s[at..end] {
                        "and" => Token::And,
                        "or" => Token::Or,
                        "not" => Token::Not,
                        name => Token::Name(name),
                    },
                ));
            }
            c => {
                return Err((
                    at,
                    format!(
                        "unexpected `{c}` in condition {s:?}; hint: combine criterion names with `and`, `or`, `not` and parentheses"
                    ),
                ));
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(usize, Token<'a>)>,
    next: usize,
    names: Names<'a>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&(usize, Token<'a>)> {
        self.tokens.get(self.next)
    }

    fn at(&self) -> usize {
        self.peek().map_or(self.text.len(), |(at, _)| *at)
    }

    fn or(&mut self) -> Result<Expr, Failure> {
        let mut terms = vec![self.and()?];
        while matches!(self.peek(), Some((_, Token::Or))) {
            self.next += 1;
            terms.push(self.and()?);
        }
        Ok(join(terms, false))
    }

    fn and(&mut self) -> Result<Expr, Failure> {
        let mut terms = vec![self.unary()?];
        while matches!(self.peek(), Some((_, Token::And))) {
            self.next += 1;
            terms.push(self.unary()?);
        }
        Ok(join(terms, true))
    }

    fn unary(&mut self) -> Result<Expr, Failure> {
        let at = self.at();
        match self.tokens.get(self.next).cloned() {
            Some((_, Token::Not)) => {
                self.next += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some((_, Token::Open)) => {
                self.next += 1;
                let inner = self.or()?;
                match self.peek() {
                    Some((_, Token::Close)) => {
                        self.next += 1;
                        Ok(inner)
                    }
                    other => Err((
                        at,
                        format!(
                            "`(` is not closed in condition {:?} (found {} where `)` should be)",
                            self.text,
                            describe(other)
                        ),
                    )),
                }
            }
            Some((_, Token::Name(name))) => {
                self.next += 1;
                self.names.push((at, name));
                Ok(Expr::Criterion(name.to_string()))
            }
            _ => {
                let after = match self.next.checked_sub(1).and_then(|i| self.tokens.get(i)) {
                    Some(t) => format!(" after {}", describe(Some(t))),
                    None => String::new(),
                };
                Err((
                    at,
                    format!(
                        "expected a criterion name, `not` or `(`{after} in condition {:?}, found {}",
                        self.text,
                        describe(self.peek())
                    ),
                ))
            }
        }
    }
}

/// One term stays itself; nested terms of the same operator are flattened.
fn join(terms: Vec<Expr>, is_and: bool) -> Expr {
    if terms.len() == 1 {
        return terms.into_iter().next().expect("one term");
    }
    let mut flat = Vec::new();
    for t in terms {
        match (t, is_and) {
            (Expr::And(es), true) | (Expr::Or(es), false) => flat.extend(es),
            (t, _) => flat.push(t),
        }
    }
    if is_and {
        Expr::And(flat)
    } else {
        Expr::Or(flat)
    }
}

/// Parses a condition; returns it with every criterion name and its offset.
pub(super) fn parse(s: &str) -> Result<(Expr, Names<'_>), Failure> {
    let mut p = Parser {
        text: s,
        tokens: tokens(s)?,
        next: 0,
        names: Vec::new(),
    };
    if p.tokens.is_empty() {
        return Err((0, "the condition is empty; hint: name a criterion".into()));
    }
    let expr = p.or()?;
    if let Some(t) = p.peek() {
        let message = match t.1 {
            Token::Close => format!("unmatched `)` in condition {s:?}"),
            _ => format!(
                "expected `and`, `or` or the end in condition {s:?}, found {}",
                describe(Some(t))
            ),
        };
        return Err((t.0, message));
    }
    Ok((expr, p.names))
}

/// A form in which conditions that differ only in the order or repetition of
/// `and`/`or` operands, or in double negation, are equal.
pub(super) fn canonical(e: &Expr) -> Expr {
    match e {
        Expr::Criterion(_) => e.clone(),
        Expr::Not(inner) => match canonical(inner) {
            Expr::Not(x) => *x,
            x => Expr::Not(Box::new(x)),
        },
        Expr::And(es) | Expr::Or(es) => {
            let is_and = matches!(e, Expr::And(_));
            let mut terms: Vec<Expr> = Vec::new();
            for t in es.iter().map(canonical) {
                match t {
                    Expr::And(inner) if is_and => terms.extend(inner),
                    Expr::Or(inner) if !is_and => terms.extend(inner),
                    t => terms.push(t),
                }
            }
            terms.sort_by_cached_key(|t| t.to_string());
            terms.dedup();
            match (terms.len(), is_and) {
                (1, _) => terms.pop().expect("one term"),
                (_, true) => Expr::And(terms),
                (_, false) => Expr::Or(terms),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions() {
        // (condition, Ok(displayed) or Err((offset, text the error holds)))
        type Case = (&'static str, Result<&'static str, (usize, &'static str)>);
        let cases: Vec<Case> = vec![
            ("a", Ok("a")),
            ("not a", Ok("not a")),
            ("a and b or c", Ok("((a and b) or c)")),
            ("a or b and c", Ok("(a or (b and c))")),
            ("not a and b", Ok("(not a and b)")),
            ("not (a and b)", Ok("not (a and b)")),
            ("a and (b and c)", Ok("(a and b and c)")),
            ("(a or b) and not not c", Ok("((a or b) and not not c)")),
            ("", Err((0, "empty"))),
            (
                "a and",
                Err((5, "expected a criterion name, `not` or `(` after `and`")),
            ),
            ("a b", Err((2, "expected `and`, `or` or the end"))),
            ("(a or b", Err((0, "`(` is not closed"))),
            ("a or b)", Err((6, "unmatched `)`"))),
            ("a && b", Err((2, "unexpected `&`"))),
            ("not", Err((3, "found the end"))),
            ("a or or b", Err((5, "found `or`"))),
        ];
        for (s, want) in cases {
            match (parse(s), want) {
                (Ok((e, _)), Ok(w)) => assert_eq!(e.to_string(), w, "{s}"),
                (Err((at, e)), Err((wat, w))) => {
                    assert!(e.contains(w), "{s}: {e}");
                    assert_eq!(at, wat, "{s}: {e}");
                }
                (g, w) => panic!("{s}: {g:?} vs {w:?}"),
            }
        }
    }

    #[test]
    fn canonical_forms() {
        let cases = [
            ("a and b", "b and a", true),
            ("a or (b or c)", "c or b or a", true),
            ("not not a", "a", true),
            ("a and a", "a", true),
            ("a and b", "a or b", false),
            ("not a", "a", false),
            ("(a or b) and c", "a or (b and c)", false),
        ];
        for (x, y, same) in cases {
            let c = |s| canonical(&parse(s).unwrap().0);
            assert_eq!(c(x) == c(y), same, "{x} vs {y}");
        }
    }
}
