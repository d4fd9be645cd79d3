//! A1 notation: `Sheet1!A1:I1`, `'My Sheet'!A5:I5`, `Sheet1!A:I`, `Sheet1!2:3`,
//! `Sheet1!A5:I`, a bare sheet name, or cells of the first sheet (`A1:B2`).
//! Rows and columns are 0-based inside the simulator.

/// Largest column (`ZZZ`) and row Google accepts.
const MAX_COLS: usize = 18_278;
const MAX_ROWS: usize = 10_000_000;

/// A parsed range: an optional sheet title and a rectangle (inclusive ends;
/// `None` = to the edge of the grid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct A1Range {
    pub(crate) sheet: Option<String>,
    pub(crate) rect: Rect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rect {
    pub(crate) r0: usize,
    pub(crate) c0: usize,
    pub(crate) r1: Option<usize>,
    pub(crate) c1: Option<usize>,
}

impl Rect {
    const WHOLE: Rect = Rect {
        r0: 0,
        c0: 0,
        r1: None,
        c1: None,
    };
}

/// Parse a (percent-decoded) range.
pub(crate) fn parse(range: &str) -> Option<A1Range> {
    if range.is_empty() {
        return None;
    }
    if let Some(quoted) = range.strip_prefix('\'') {
        let (name, rest) = unquote(quoted)?;
        if name.is_empty() {
            return None;
        }
        let rect = match rest {
            "" => Rect::WHOLE,
            _ => cells(rest.strip_prefix('!')?)?,
        };
        return Some(A1Range {
            sheet: Some(name),
            rect,
        });
    }
    if let Some((name, rest)) = range.split_once('!') {
        if name.is_empty() || name.contains('\'') {
            return None;
        }
        return Some(A1Range {
            sheet: Some(name.to_owned()),
            rect: cells(rest)?,
        });
    }
    Some(match cells(range) {
        Some(rect) => A1Range { sheet: None, rect },
        None => A1Range {
            sheet: Some(range.to_owned()),
            rect: Rect::WHOLE,
        },
    })
}

/// The name inside quotes (`''` is one quote) and what follows the closing quote.
fn unquote(text: &str) -> Option<(String, &str)> {
    let mut name = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().map(|(_, c)| *c) == Some('\'') {
                chars.next();
                name.push('\'');
            } else {
                return Some((name, &text[i + 1..]));
            }
        } else {
            name.push(c);
        }
    }
    None
}

/// `A1`, `A1:B2`, `A:B`, `2:3`, `A5:I`, `A5:9`.
fn cells(text: &str) -> Option<Rect> {
    let Some((start, end)) = text.split_once(':') else {
        let (col, row) = endpoint(text)?;
        let (col, row) = (col?, row?);
        return Some(Rect {
            r0: row,
            c0: col,
            r1: Some(row),
            c1: Some(col),
        });
    };
    let (s, e) = (endpoint(start)?, endpoint(end)?);
    let rect = match (s, e) {
        ((Some(c0), Some(r0)), (c1, r1)) if c1.is_some() || r1.is_some() => Rect { r0, c0, r1, c1 },
        ((Some(c0), None), (Some(c1), None)) => Rect {
            r0: 0,
            c0,
            r1: None,
            c1: Some(c1),
        },
        ((None, Some(r0)), (None, Some(r1))) => Rect {
            r0,
            c0: 0,
            r1: Some(r1),
            c1: None,
        },
        _ => return None,
    };
    Some(normalized(rect))
}

fn normalized(mut rect: Rect) -> Rect {
    if let Some(r1) = rect.r1 {
        rect.r1 = Some(r1.max(rect.r0));
        rect.r0 = rect.r0.min(r1);
    }
    if let Some(c1) = rect.c1 {
        rect.c1 = Some(c1.max(rect.c0));
        rect.c0 = rect.c0.min(c1);
    }
    rect
}

/// Column letters then row digits (`$` allowed), each optional but not both
/// absent: `(col, row)`, 0-based.
fn endpoint(text: &str) -> Option<(Option<usize>, Option<usize>)> {
    let text = text.replace('$', "");
    let split = text
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (letters, digits) = text.split_at(split);
    if letters.is_empty() && digits.is_empty() {
        return None;
    }
    if letters.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 8 {
        return None;
    }
    let col = if letters.is_empty() {
        None
    } else {
        let n = letters.bytes().fold(0usize, |acc, b| {
            acc * 26 + usize::from(b.to_ascii_uppercase() - b'A') + 1
        });
        if n > MAX_COLS {
            return None;
        }
        Some(n - 1)
    };
    let row = if digits.is_empty() {
        None
    } else {
        let n: usize = digits.parse().ok()?;
        if n == 0 || n > MAX_ROWS {
            return None;
        }
        Some(n - 1)
    };
    Some((col, row))
}

/// A single cell reference (`B2` → `(1, 1)`), `(row, col)`.
pub(crate) fn cell_ref(text: &str) -> Option<(usize, usize)> {
    match endpoint(text)? {
        (Some(col), Some(row)) => Some((row, col)),
        _ => None,
    }
}

/// `0 → A`, `25 → Z`, `26 → AA`.
pub(crate) fn col_name(col: usize) -> String {
    let mut n = col + 1;
    let mut out = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        out.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// A sheet title as it appears in a range: bare when it is a plain
/// identifier, else quoted (`'My Sheet'`, `'It''s'`).
pub(crate) fn quote_sheet(title: &str) -> String {
    let plain = title
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && title.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && cells(title).is_none();
    if plain {
        title.to_owned()
    } else {
        format!("'{}'", title.replace('\'', "''"))
    }
}

/// `Sheet1!A1:I1`, or `Sheet1!A5` for a single cell (inclusive, 0-based).
pub(crate) fn format(title: &str, r0: usize, c0: usize, r1: usize, c1: usize) -> String {
    let start = format!("{}{}", col_name(c0), r0 + 1);
    if r0 == r1 && c0 == c1 {
        format!("{}!{start}", quote_sheet(title))
    } else {
        format!("{}!{start}:{}{}", quote_sheet(title), col_name(c1), r1 + 1)
    }
}

/// Decode `%XX` escapes of a URL path segment (`+` stays `+`).
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(r0: usize, c0: usize, r1: Option<usize>, c1: Option<usize>) -> Rect {
        Rect { r0, c0, r1, c1 }
    }

    #[test]
    fn parses_the_forms_the_relay_sends() {
        let p = |s: &str| parse(s).unwrap();
        assert_eq!(p("Sheet1!A1:I1").sheet.as_deref(), Some("Sheet1"));
        assert_eq!(p("Sheet1!A1:I1").rect, rect(0, 0, Some(0), Some(8)));
        assert_eq!(p("'My Sheet'!A5:I5").sheet.as_deref(), Some("My Sheet"));
        assert_eq!(p("'My Sheet'!A5:I5").rect, rect(4, 0, Some(4), Some(8)));
        assert_eq!(p("'It''s'!B2").sheet.as_deref(), Some("It's"));
        assert_eq!(p("'It''s'!B2").rect, rect(1, 1, Some(1), Some(1)));
        assert_eq!(p("Sheet1").rect, Rect::WHOLE);
        assert_eq!(p("'Leads 2026'").sheet.as_deref(), Some("Leads 2026"));
        assert_eq!(p("Sheet1!A:I").rect, rect(0, 0, None, Some(8)));
        assert_eq!(p("Sheet1!2:3").rect, rect(1, 0, Some(2), None));
        assert_eq!(p("Sheet1!A5:I").rect, rect(4, 0, None, Some(8)));
        assert_eq!(p("Sheet1!$B$2:A1").rect, rect(0, 0, Some(1), Some(1)));
        assert_eq!(p("A1:B2").sheet, None);
        for bad in [
            "",
            "Sheet1!",
            "Sheet1!A0",
            "'Open",
            "'x'A1",
            "Sheet1!1",
            "Sheet1!A:5",
            "''!A1",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_and_decodes() {
        assert_eq!(col_name(0), "A");
        assert_eq!(col_name(25), "Z");
        assert_eq!(col_name(26), "AA");
        assert_eq!(col_name(702), "AAA");
        assert_eq!(format("Sheet1", 4, 0, 4, 8), "Sheet1!A5:I5");
        assert_eq!(format("My Sheet", 0, 0, 0, 0), "'My Sheet'!A1");
        assert_eq!(quote_sheet("A1"), "'A1'");
        assert_eq!(cell_ref("AA10"), Some((9, 26)));
        assert_eq!(
            percent_decode("%27My%20Sheet%27!A1%3AI1"),
            "'My Sheet'!A1:I1"
        );
        assert_eq!(percent_decode("a+b%2"), "a+b%2");
    }
}
