//! SNOMED CT Expression Constraint Language, the core subset value sets use:
//! self, `<` descendants, `<<` descendants-or-self, `<!` children, `>`
//! ancestors, `>>` ancestors-or-self, `>!` parents, `^` members of a simple
//! refset, `*`, `AND`, `OR`, `MINUS` (and `,` for AND), parentheses, pipe terms
//! `|...|` (informational) and `/* comments */`.
//!
//! A recursive-descent parser over a token stream with columns, then an
//! evaluator against a compiled [`Release`]. As in ECL 2.x, different binary
//! operators may not be mixed without parentheses. A concept the release does
//! not hold is an error (with its column), never an empty set; so is a refset
//! with no members. Spec: <https://confluence.ihtsdotools.org/display/DOCECL>.

use std::collections::BTreeSet;

use super::release::Release;
use super::sctid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ECL column {column}: {message} in `{expression}`; hint: {hint}")]
pub struct EclError {
    pub expression: String,
    pub column: usize,
    pub message: String,
    pub hint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    SelfOnly,
    Descendants,
    DescendantsOrSelf,
    Children,
    Ancestors,
    AncestorsOrSelf,
    Parents,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    And,
    Or,
    Minus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Focus {
    Concept { id: u64, column: usize },
    Any,
    Nested(Box<Ecl>),
}

/// A parsed expression constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ecl {
    Sub {
        op: Op,
        member_of: bool,
        focus: Focus,
    },
    Binary(Binary, Box<Ecl>, Box<Ecl>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Sym(&'static str),
    Word(String),
    Id(String),
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, EclError> {
    let chars: Vec<char> = text.chars().collect();
    let err = |column: usize, message: String, hint: &str| EclError {
        expression: text.to_string(),
        column,
        message,
        hint: hint.to_string(),
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let end = (i + 2..chars.len().saturating_sub(1))
                .find(|&j| chars[j] == '*' && chars[j + 1] == '/');
            let Some(end) = end else {
                return Err(err(
                    column,
                    "unterminated comment".into(),
                    "close it with */",
                ));
            };
            i = end + 2;
        } else if c == '|' {
            let Some(end) = (i + 1..chars.len()).find(|&j| chars[j] == '|') else {
                return Err(err(
                    column,
                    "unterminated term".into(),
                    "a term is written |term|",
                ));
            };
            i = end + 1; // terms are informational
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            out.push((Tok::Id(chars[start..i].iter().collect()), column));
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            out.push((
                Tok::Word(chars[start..i].iter().collect::<String>().to_uppercase()),
                column,
            ));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = match two.as_str() {
                "<<" => "<<",
                "<!" => "<!",
                ">>" => ">>",
                ">!" => ">!",
                _ => match c {
                    '<' => "<",
                    '>' => ">",
                    '^' => "^",
                    '(' => "(",
                    ')' => ")",
                    '*' => "*",
                    ',' => ",",
                    _ => {
                        return Err(err(
                            column,
                            format!("unexpected {c:?}"),
                            "the supported operators are < << <! > >> >! ^ * AND OR MINUS and parentheses",
                        ));
                    }
                },
            };
            out.push((Tok::Sym(sym), column));
            i += sym.len();
        }
    }
    Ok(out)
}

/// Parses an ECL expression.
pub fn parse(text: &str) -> Result<Ecl, EclError> {
    let toks = tokenize(text)?;
    let mut p = Parser { text, toks, pos: 0 };
    let ecl = p.expression()?;
    if let Some((tok, column)) = p.toks.get(p.pos) {
        return Err(p.err(
            *column,
            format!("unexpected {}", show(tok)),
            "join constraints with AND, OR or MINUS",
        ));
    }
    Ok(ecl)
}

fn show(tok: &Tok) -> String {
    match tok {
        Tok::Sym(s) => format!("`{s}`"),
        Tok::Word(w) => format!("`{w}`"),
        Tok::Id(id) => format!("`{id}`"),
    }
}

impl Parser<'_> {
    fn err(&self, column: usize, message: String, hint: &str) -> EclError {
        EclError {
            expression: self.text.to_string(),
            column,
            message,
            hint: hint.to_string(),
        }
    }

    fn end_column(&self) -> usize {
        self.text.chars().count() + 1
    }

    fn binary(&self) -> Option<Binary> {
        match self.toks.get(self.pos) {
            Some((Tok::Word(w), _)) if w == "AND" => Some(Binary::And),
            Some((Tok::Sym(","), _)) => Some(Binary::And),
            Some((Tok::Word(w), _)) if w == "OR" => Some(Binary::Or),
            Some((Tok::Word(w), _)) if w == "MINUS" => Some(Binary::Minus),
            _ => None,
        }
    }

    fn expression(&mut self) -> Result<Ecl, EclError> {
        let mut left = self.sub()?;
        let mut first: Option<Binary> = None;
        while let Some(op) = self.binary() {
            let column = self.toks[self.pos].1;
            if first.is_some_and(|f| f != op) {
                return Err(self.err(
                    column,
                    "AND, OR and MINUS mixed without parentheses".into(),
                    "add parentheses, e.g. (A OR B) MINUS C",
                ));
            }
            first = Some(op);
            self.pos += 1;
            let right = self.sub()?;
            left = Ecl::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn sub(&mut self) -> Result<Ecl, EclError> {
        let mut op = Op::SelfOnly;
        if let Some((Tok::Sym(s), _)) = self.toks.get(self.pos) {
            let found = match *s {
                "<" => Some(Op::Descendants),
                "<<" => Some(Op::DescendantsOrSelf),
                "<!" => Some(Op::Children),
                ">" => Some(Op::Ancestors),
                ">>" => Some(Op::AncestorsOrSelf),
                ">!" => Some(Op::Parents),
                _ => None,
            };
            if let Some(found) = found {
                op = found;
                self.pos += 1;
            }
        }
        let member_of = matches!(self.toks.get(self.pos), Some((Tok::Sym("^"), _)));
        if member_of {
            self.pos += 1;
        }
        let focus = match self.toks.get(self.pos).cloned() {
            Some((Tok::Id(id), column)) => {
                self.pos += 1;
                let id = sctid::parse(&id).map_err(|e| {
                    self.err(
                        column,
                        format!("{id}: {e}"),
                        "copy the concept id from the release browser",
                    )
                })?;
                Focus::Concept { id, column }
            }
            Some((Tok::Sym("*"), _)) => {
                self.pos += 1;
                Focus::Any
            }
            Some((Tok::Sym("("), column)) => {
                self.pos += 1;
                let inner = self.expression()?;
                match self.toks.get(self.pos) {
                    Some((Tok::Sym(")"), _)) => self.pos += 1,
                    Some((tok, c)) => {
                        return Err(self.err(
                            *c,
                            format!("expected `)`, found {}", show(tok)),
                            &format!("close the parenthesis opened at column {column}"),
                        ));
                    }
                    None => {
                        return Err(self.err(
                            self.end_column(),
                            "expected `)`".into(),
                            &format!("close the parenthesis opened at column {column}"),
                        ));
                    }
                }
                Focus::Nested(Box::new(inner))
            }
            Some((tok, column)) => {
                return Err(self.err(
                    column,
                    format!("expected a concept id, `*` or `(`, found {}", show(&tok)),
                    "e.g. << 73211009 |Diabetes mellitus|",
                ));
            }
            None => {
                return Err(self.err(
                    self.end_column(),
                    "expected a concept id, `*` or `(`".into(),
                    "the expression ends early",
                ));
            }
        };
        Ok(Ecl::Sub {
            op,
            member_of,
            focus,
        })
    }
}

/// Evaluates `ecl` against `release`.
pub fn evaluate(ecl: &Ecl, release: &Release, text: &str) -> Result<BTreeSet<u64>, EclError> {
    match ecl {
        Ecl::Binary(op, a, b) => {
            let (a, b) = (evaluate(a, release, text)?, evaluate(b, release, text)?);
            Ok(match op {
                Binary::And => a.intersection(&b).copied().collect(),
                Binary::Or => a.union(&b).copied().collect(),
                Binary::Minus => a.difference(&b).copied().collect(),
            })
        }
        Ecl::Sub {
            op,
            member_of,
            focus,
        } => {
            let err = |column: usize, message: String, hint: &str| EclError {
                expression: text.to_string(),
                column,
                message,
                hint: hint.to_string(),
            };
            let base: BTreeSet<u64> = match focus {
                Focus::Any => release.concepts.keys().copied().collect(),
                Focus::Nested(inner) => evaluate(inner, release, text)?,
                Focus::Concept { id, column } => {
                    if !release.concepts.contains_key(id) {
                        return Err(err(
                            *column,
                            format!("concept {id} is not in release {}", release.id()),
                            "check the id, or use a release that holds it",
                        ));
                    }
                    BTreeSet::from([*id])
                }
            };
            let base = if *member_of {
                let mut members = BTreeSet::new();
                for refset in &base {
                    match release.refsets.get(refset) {
                        Some(m) => members.extend(m.iter().copied()),
                        None if matches!(focus, Focus::Concept { .. }) => {
                            let column = match focus {
                                Focus::Concept { column, .. } => *column,
                                _ => 0,
                            };
                            return Err(err(
                                column,
                                format!(
                                    "{refset} is not a simple refset with members in release {}",
                                    release.id()
                                ),
                                "`^` takes a refset id",
                            ));
                        }
                        None => {}
                    }
                }
                members
            } else {
                base
            };
            let mut out = BTreeSet::new();
            let empty = Vec::new();
            for id in &base {
                let related = |map: &std::collections::HashMap<u64, Vec<u64>>| {
                    map.get(id).unwrap_or(&empty).clone()
                };
                match op {
                    Op::SelfOnly => {
                        out.insert(*id);
                    }
                    Op::Descendants | Op::DescendantsOrSelf => {
                        out.extend(related(&release.descendants))
                    }
                    Op::Children => out.extend(related(&release.children)),
                    Op::Ancestors | Op::AncestorsOrSelf => out.extend(related(&release.ancestors)),
                    Op::Parents => out.extend(related(&release.parents)),
                }
                if matches!(op, Op::DescendantsOrSelf | Op::AncestorsOrSelf) {
                    out.insert(*id);
                }
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cases() {
        let sub = |op, id| Ecl::Sub {
            op,
            member_of: false,
            focus: Focus::Concept { id, column: 0 },
        };
        // Columns are compared separately; strip them here.
        fn strip(e: Ecl) -> Ecl {
            match e {
                Ecl::Sub {
                    op,
                    member_of,
                    focus,
                } => Ecl::Sub {
                    op,
                    member_of,
                    focus: match focus {
                        Focus::Concept { id, .. } => Focus::Concept { id, column: 0 },
                        Focus::Nested(n) => Focus::Nested(Box::new(strip(*n))),
                        f => f,
                    },
                },
                Ecl::Binary(op, a, b) => Ecl::Binary(op, Box::new(strip(*a)), Box::new(strip(*b))),
            }
        }
        let cases = [
            ("73211009", sub(Op::SelfOnly, 73211009)),
            (
                "<< 73211009 |Diabetes mellitus|",
                sub(Op::DescendantsOrSelf, 73211009),
            ),
            ("<73211009", sub(Op::Descendants, 73211009)),
            ("<! 73211009 /* children */", sub(Op::Children, 73211009)),
            (
                "<< 73211009 MINUS < 404684003",
                Ecl::Binary(
                    Binary::Minus,
                    Box::new(sub(Op::DescendantsOrSelf, 73211009)),
                    Box::new(sub(Op::Descendants, 404684003)),
                ),
            ),
            (
                "^ 446609009",
                Ecl::Sub {
                    op: Op::SelfOnly,
                    member_of: true,
                    focus: Focus::Concept {
                        id: 446609009,
                        column: 0,
                    },
                },
            ),
            (
                "(73211009 or 404684003) and 73211009",
                Ecl::Binary(
                    Binary::And,
                    Box::new(Ecl::Sub {
                        op: Op::SelfOnly,
                        member_of: false,
                        focus: Focus::Nested(Box::new(Ecl::Binary(
                            Binary::Or,
                            Box::new(sub(Op::SelfOnly, 73211009)),
                            Box::new(sub(Op::SelfOnly, 404684003)),
                        ))),
                    }),
                    Box::new(sub(Op::SelfOnly, 73211009)),
                ),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(strip(parse(text).unwrap()), want, "{text}");
        }
    }

    #[test]
    fn parse_errors_point_at_the_column() {
        let cases = [
            ("<< 73211008", 4, "Verhoeff"),
            (
                "<< 73211009 OR 404684003 MINUS 73211009",
                26,
                "mixed without parentheses",
            ),
            ("(<< 73211009", 13, "expected `)`"),
            ("<< 73211009 |Diabetes", 13, "unterminated term"),
            ("<< 73211009 404684003", 13, "unexpected `404684003`"),
            ("<< & 73211009", 4, "unexpected '&'"),
            ("/* open", 1, "unterminated comment"),
            ("", 1, "expected a concept id"),
        ];
        for (text, column, message) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.column, column, "{text}: {e}");
            assert!(e.message.contains(message), "{text}: {e}");
        }
    }
}
