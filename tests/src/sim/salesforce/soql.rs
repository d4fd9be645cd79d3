//! The strict SOQL subset the simulator understands:
//!
//! `SELECT f1, f2 FROM Object [WHERE cond] [ORDER BY field [ASC|DESC]] [LIMIT n]`
//!
//! where `cond` joins comparisons with AND or OR (mixing them needs
//! parentheses, as in Salesforce) and a comparison is `Field = 'literal'`,
//! `Field != 'literal'`, `Field = true|false|null` (also `!=`) or
//! `Field [NOT] IN ('literal', ...)`. Literals
//! take the backslash escapes `\' \" \\ \n \r \t \b \f`. Anything else is
//! `MALFORMED_QUERY`.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::SfError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    pub(crate) fields: Vec<String>,
    pub(crate) object: String,
    pub(crate) condition: Option<Cond>,
    /// `(field, descending)`.
    pub(crate) order: Option<(String, bool)>,
    pub(crate) limit: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    Cmp {
        field: String,
        negated: bool,
        value: Literal,
    },
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Str(String),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Number(String),
    Str(String),
    Comma,
    Open,
    Close,
    Eq,
    Ne,
}

fn malformed(message: impl Into<String>) -> SfError {
    SfError::bad("MALFORMED_QUERY", message)
}

fn tokenize(text: &str) -> Result<Vec<Token>, SfError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            '=' => {
                tokens.push(Token::Eq);
                i += 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::Ne);
                i += 2;
            }
            '\'' => {
                let mut literal = String::new();
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(malformed("unterminated string literal"));
                    };
                    i += 1;
                    match c {
                        '\'' => break,
                        '\\' => {
                            let Some(&escaped) = chars.get(i) else {
                                return Err(malformed("unterminated string literal"));
                            };
                            i += 1;
                            literal.push(match escaped {
                                '\'' => '\'',
                                '"' => '"',
                                '\\' => '\\',
                                'n' => '\n',
                                'r' => '\r',
                                't' => '\t',
                                'b' => '\u{8}',
                                'f' => '\u{c}',
                                other => {
                                    return Err(malformed(format!(
                                        "Invalid string literal: unknown escape sequence \\{other}"
                                    )))
                                }
                            });
                        }
                        other => literal.push(other),
                    }
                }
                tokens.push(Token::Str(literal));
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while chars.get(i).is_some_and(char::is_ascii_digit) {
                    i += 1;
                }
                tokens.push(Token::Number(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(malformed(format!("unexpected token: '{other}'"))),
        }
    }
    Ok(tokens)
}

const KEYWORDS: &[&str] = &[
    "SELECT", "FROM", "WHERE", "AND", "OR", "ORDER", "BY", "ASC", "DESC", "LIMIT", "TRUE", "FALSE",
    "NULL", "NOT", "IN",
];

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<(), SfError> {
        if self.is_keyword(keyword) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn unexpected(&self) -> SfError {
        match self.peek() {
            Some(token) => malformed(format!("unexpected token: {}", describe(token))),
            None => malformed("unexpected end of query"),
        }
    }

    fn name(&mut self) -> Result<String, SfError> {
        match self.peek() {
            Some(Token::Ident(word)) if !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word)) => {
                let word = word.clone();
                self.pos += 1;
                Ok(word)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn condition(&mut self) -> Result<Cond, SfError> {
        let first = self.term()?;
        let mut connector: Option<bool> = None; // Some(true) = AND
        let mut terms = vec![first];
        loop {
            let is_and = if self.is_keyword("AND") {
                true
            } else if self.is_keyword("OR") {
                false
            } else {
                break;
            };
            if connector.is_some_and(|c| c != is_and) {
                return Err(malformed(
                    "unexpected token: mixing AND and OR requires parentheses",
                ));
            }
            connector = Some(is_and);
            self.pos += 1;
            terms.push(self.term()?);
        }
        Ok(match connector {
            None => terms.remove(0),
            Some(true) => Cond::And(terms),
            Some(false) => Cond::Or(terms),
        })
    }

    fn term(&mut self) -> Result<Cond, SfError> {
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            let inner = self.condition()?;
            if self.next() != Some(Token::Close) {
                return Err(malformed("unexpected token: missing ')'"));
            }
            return Ok(inner);
        }
        let field = self.name()?;
        if self.is_keyword("IN") || self.is_keyword("NOT") {
            return self.in_list(field);
        }
        let negated = match self.next() {
            Some(Token::Eq) => false,
            Some(Token::Ne) => true,
            _ => {
                self.pos -= 1;
                return Err(self.unexpected());
            }
        };
        let value = match self.peek() {
            Some(Token::Str(s)) => Literal::Str(s.clone()),
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("null") => Literal::Null,
            _ => return Err(self.unexpected()),
        };
        self.pos += 1;
        Ok(Cond::Cmp {
            field,
            negated,
            value,
        })
    }
}

impl Parser {
    /// `[NOT] IN ('a', 'b')`: the same as `= 'a' OR = 'b'` (`!= 'a' AND != 'b'` negated).
    fn in_list(&mut self, field: String) -> Result<Cond, SfError> {
        let negated = self.is_keyword("NOT");
        if negated {
            self.pos += 1;
        }
        self.expect_keyword("IN")?;
        if self.next() != Some(Token::Open) {
            self.pos -= 1;
            return Err(self.unexpected());
        }
        let mut values = Vec::new();
        loop {
            match self.next() {
                Some(Token::Str(s)) => values.push(Literal::Str(s)),
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected());
                }
            }
            match self.next() {
                Some(Token::Comma) => continue,
                Some(Token::Close) => break,
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected());
                }
            }
        }
        let terms: Vec<Cond> = values
            .into_iter()
            .map(|value| Cond::Cmp {
                field: field.clone(),
                negated,
                value,
            })
            .collect();
        Ok(if negated {
            Cond::And(terms)
        } else {
            Cond::Or(terms)
        })
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Ident(w) | Token::Number(w) => format!("'{w}'"),
        Token::Str(s) => format!("'{s}'"),
        Token::Comma => "','".into(),
        Token::Open => "'('".into(),
        Token::Close => "')'".into(),
        Token::Eq => "'='".into(),
        Token::Ne => "'!='".into(),
    }
}

/// Parse the subset; anything outside it is `MALFORMED_QUERY`.
pub(crate) fn parse(text: &str) -> Result<Query, SfError> {
    let mut p = Parser {
        tokens: tokenize(text)?,
        pos: 0,
    };
    p.expect_keyword("SELECT")?;
    let mut fields = vec![p.name()?];
    while p.peek() == Some(&Token::Comma) {
        p.pos += 1;
        fields.push(p.name()?);
    }
    p.expect_keyword("FROM")?;
    let object = p.name()?;
    let condition = if p.is_keyword("WHERE") {
        p.pos += 1;
        Some(p.condition()?)
    } else {
        None
    };
    let order = if p.is_keyword("ORDER") {
        p.pos += 1;
        p.expect_keyword("BY")?;
        let field = p.name()?;
        let descending = if p.is_keyword("DESC") {
            p.pos += 1;
            true
        } else {
            if p.is_keyword("ASC") {
                p.pos += 1;
            }
            false
        };
        Some((field, descending))
    } else {
        None
    };
    let limit = if p.is_keyword("LIMIT") {
        p.pos += 1;
        match p.next() {
            Some(Token::Number(n)) => Some(n.parse().map_err(|_| malformed("bad LIMIT"))?),
            _ => {
                p.pos -= 1;
                return Err(p.unexpected());
            }
        }
    } else {
        None
    };
    if p.peek().is_some() {
        return Err(p.unexpected());
    }
    Ok(Query {
        fields,
        object,
        condition,
        order,
        limit,
    })
}

/// What a query runs against: one object's fields (name, type) and rows.
pub(crate) struct Table {
    pub(crate) name: String,
    pub(crate) fields: Vec<(String, String)>,
    /// Fields that may be selected but not filtered on (long text areas).
    pub(crate) unfilterable: Vec<String>,
    pub(crate) rows: Vec<Map<String, Value>>,
}

impl Table {
    fn canonical(&self, name: &str) -> Result<(String, String), SfError> {
        self.fields
            .iter()
            .find(|(f, _)| f.eq_ignore_ascii_case(name))
            .cloned()
            .ok_or_else(|| {
                SfError::bad(
                    "INVALID_FIELD",
                    format!(
                        "No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                        self.name
                    ),
                )
            })
    }
}

fn resolve(cond: &Cond, table: &Table) -> Result<Cond, SfError> {
    Ok(match cond {
        Cond::Cmp {
            field,
            negated,
            value,
        } => {
            let field = table.canonical(field)?.0;
            // A long text area can be selected, never filtered on (SOQL fieldExpression:
            // "any field except a long text area field, encrypted data field, or base64").
            if table.unfilterable.contains(&field) {
                return Err(SfError::bad(
                    "INVALID_FIELD",
                    format!("field '{field}' can not be filtered in a query call"),
                ));
            }
            Cond::Cmp {
                field,
                negated: *negated,
                value: value.clone(),
            }
        }
        Cond::And(terms) => Cond::And(
            terms
                .iter()
                .map(|t| resolve(t, table))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Or(terms) => Cond::Or(
            terms
                .iter()
                .map(|t| resolve(t, table))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn matches(cond: &Cond, row: &Map<String, Value>, table: &Table) -> bool {
    match cond {
        Cond::And(terms) => terms.iter().all(|t| matches(t, row, table)),
        Cond::Or(terms) => terms.iter().any(|t| matches(t, row, table)),
        Cond::Cmp {
            field,
            negated,
            value,
        } => {
            let actual = row.get(field).unwrap_or(&Value::Null);
            let is_email = table.fields.iter().any(|(f, t)| f == field && t == "email");
            let equal = match value {
                Literal::Null => actual.is_null(),
                Literal::Bool(b) => actual.as_bool() == Some(*b),
                Literal::Str(s) => match actual {
                    Value::Null => false,
                    Value::String(a) if is_email => a.to_lowercase() == s.to_lowercase(),
                    Value::String(a) => a == s,
                    other => other.to_string().as_str() == s.as_str(),
                },
            };
            equal != *negated
        }
    }
}

fn rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        _ => 3,
    }
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Run a parsed query: `INVALID_FIELD` for an unknown field; rows filtered,
/// ordered (nulls first ascending), limited and projected on the selected
/// fields (canonical names; `Id` always kept under `_id` for the caller).
pub(crate) fn run(query: &Query, table: &Table) -> Result<Vec<Map<String, Value>>, SfError> {
    let selected: Vec<String> = query
        .fields
        .iter()
        .map(|f| table.canonical(f).map(|c| c.0))
        .collect::<Result<_, _>>()?;
    let condition = query
        .condition
        .as_ref()
        .map(|c| resolve(c, table))
        .transpose()?;
    let order = query
        .order
        .as_ref()
        .map(|(f, desc)| table.canonical(f).map(|c| (c.0, *desc)))
        .transpose()?;
    let mut rows: Vec<&Map<String, Value>> = table
        .rows
        .iter()
        .filter(|row| condition.as_ref().is_none_or(|c| matches(c, row, table)))
        .collect();
    if let Some((field, descending)) = &order {
        rows.sort_by(|a, b| {
            let ordering = compare(
                a.get(field).unwrap_or(&Value::Null),
                b.get(field).unwrap_or(&Value::Null),
            );
            if *descending {
                ordering.reverse()
            } else {
                ordering
            }
        });
    }
    if let Some(limit) = query.limit {
        rows.truncate(limit);
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut out = Map::new();
            for field in &selected {
                out.insert(
                    field.clone(),
                    row.get(field).cloned().unwrap_or(Value::Null),
                );
            }
            out.insert("_id".into(), row.get("Id").cloned().unwrap_or(Value::Null));
            out
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_relay_queries() {
        let q = parse("SELECT Id, Email, Phone FROM Lead WHERE IsConverted = false AND (Email = 'o\\'brien@example.com' OR Phone = '+97455512345') ORDER BY CreatedDate ASC LIMIT 10").unwrap();
        assert_eq!(q.fields, ["Id", "Email", "Phone"]);
        assert_eq!(q.limit, Some(10));
        let Some(Cond::And(terms)) = q.condition else {
            panic!("AND expected");
        };
        let Cond::Or(alts) = &terms[1] else {
            panic!("OR expected");
        };
        assert_eq!(
            alts[0],
            Cond::Cmp {
                field: "Email".into(),
                negated: false,
                value: Literal::Str("o'brien@example.com".into())
            }
        );
        parse("select MasterLabel from LeadStatus where IsConverted = true order by SortOrder asc limit 1").unwrap();
        let q = parse("SELECT Id FROM Lead WHERE LastName IN ('a', 'b\\'c') OR Email NOT IN ('x')")
            .unwrap();
        let Some(Cond::Or(alts)) = q.condition else {
            panic!("OR expected");
        };
        assert_eq!(
            alts[0],
            Cond::Or(vec![
                Cond::Cmp {
                    field: "LastName".into(),
                    negated: false,
                    value: Literal::Str("a".into())
                },
                Cond::Cmp {
                    field: "LastName".into(),
                    negated: false,
                    value: Literal::Str("b'c".into())
                },
            ])
        );
        assert_eq!(
            alts[1],
            Cond::And(vec![Cond::Cmp {
                field: "Email".into(),
                negated: true,
                value: Literal::Str("x".into())
            }])
        );
    }

    #[test]
    fn rejects_outside_the_subset() {
        for bad in [
            "SELECT Id FROM Lead WHERE Email = 'o'brien@example.com'",
            "SELECT Id FROM Lead WHERE Email = 'unterminated",
            "SELECT Id FROM Lead WHERE Email = 'bad\\escape'",
            "SELECT Id FROM Lead WHERE Email = 'a' AND Phone = 'b' OR Phone = 'c'",
            "SELECT Id FROM Lead WHERE Email LIKE 'a%'",
            "SELECT Id FROM Lead WHERE Email IN ()",
            "SELECT Id FROM Lead WHERE Email IN ('a',)",
            "SELECT Id FROM Lead WHERE Email IN 'a'",
            "SELECT COUNT() FROM Lead",
            "SELECT Id FROM Lead LIMIT",
            "SELECT Id FROM Lead extra",
            "SELECT Id, FROM Lead",
        ] {
            assert_eq!(parse(bad).unwrap_err().code, "MALFORMED_QUERY", "{bad}");
        }
    }
}
