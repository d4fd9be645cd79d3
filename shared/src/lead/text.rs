//! Cutting text to a CRM's field limit without breaking a character.
//!
//! Cuts fall between extended grapheme clusters (UAX #29), so an emoji sequence, a flag or an
//! Arabic letter with its marks is kept whole or dropped whole; a cut text ends with "…" so that
//! a reader in the CRM knows there was more.

use unicode_segmentation::UnicodeSegmentation;

/// Appended to a text that was cut.
pub const ELLIPSIS: &str = "…";

/// `text` if it has at most `max_chars` Unicode scalar values; otherwise the longest run of
/// whole grapheme clusters that, with a trailing "…", fits in `max_chars` chars.
pub fn truncate_chars(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    if max_chars == 0 {
        return String::new();
    }
    let kept = longest_prefix(text, max_chars - 1, |g| g.chars().count());
    with_ellipsis(kept)
}

/// `text` if it is at most `max_bytes` long in UTF-8; otherwise the longest run of whole
/// grapheme clusters that, with a trailing "…" (3 bytes), fits in `max_bytes` bytes. Below 3
/// bytes there is no room for the ellipsis, and the cut text goes without it.
pub fn truncate_bytes(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    if max_bytes < ELLIPSIS.len() {
        return longest_prefix(text, max_bytes, str::len).to_string();
    }
    let kept = longest_prefix(text, max_bytes - ELLIPSIS.len(), str::len);
    with_ellipsis(kept)
}

/// The longest prefix of whole grapheme clusters whose `size` adds up to at most `budget`.
fn longest_prefix(text: &str, budget: usize, size: impl Fn(&str) -> usize) -> &str {
    let mut used = 0;
    let mut end = 0;
    for (start, grapheme) in text.grapheme_indices(true) {
        used += size(grapheme);
        if used > budget {
            break;
        }
        end = start + grapheme.len();
    }
    &text[..end]
}

fn with_ellipsis(kept: &str) -> String {
    // "Hello …" reads worse than "Hello…", and the space would cost a char of the limit.
    let mut cut = kept.trim_end().to_string();
    cut.push_str(ELLIPSIS);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_within_the_limit_is_returned_unchanged() {
        assert_eq!(truncate_chars("Hello", 5), "Hello");
        assert_eq!(truncate_chars("", 0), "");
        assert_eq!(truncate_bytes("Hello", 5), "Hello");
    }

    #[test]
    fn cut_text_ends_with_an_ellipsis_and_fits_the_limit() {
        let cut = truncate_chars("Asked about the annual plan", 10);
        assert_eq!(cut, "Asked abo…");
        assert_eq!(cut.chars().count(), 10);
    }

    #[test]
    fn a_cut_right_after_a_space_does_not_leave_the_space_before_the_ellipsis() {
        assert_eq!(truncate_chars("Hello world", 7), "Hello…");
    }

    #[test]
    fn arabic_text_is_cut_between_letters_and_keeps_its_marks() {
        let text = "مرحبا بكم في قطر";
        let cut = truncate_chars(text, 6);
        assert_eq!(cut, "مرحبا…");
        // A letter with its shadda is one grapheme of two chars: it goes whole.
        let marked = "محمّدٌ";
        assert_eq!(marked.chars().count(), 6);
        let cut = truncate_chars(marked, 4);
        assert!(cut.chars().count() <= 4);
        assert_eq!(cut, "مح…");
    }

    #[test]
    fn emoji_sequences_are_never_split() {
        let family = "👨‍👩‍👧"; // five chars, one grapheme
        let text = format!("Hi {family}{family}");
        assert_eq!(truncate_chars(&text, 9), format!("Hi {family}…"));
        assert_eq!(truncate_chars(&text, 8), "Hi…");
        // When no whole grapheme fits, only the ellipsis is left.
        assert_eq!(truncate_chars(family, 3), "…");
        let flags = "🇶🇦🇦🇺";
        assert_eq!(truncate_chars(flags, 3), "🇶🇦…");
    }

    #[test]
    fn a_limit_of_zero_or_one_char_still_holds() {
        assert_eq!(truncate_chars("abc", 0), "");
        assert_eq!(truncate_chars("abc", 1), "…");
    }

    #[test]
    fn byte_limits_count_utf8_bytes_and_never_split_a_char() {
        let text = "قطر قطر"; // Arabic letters are two bytes each
        let cut = truncate_bytes(text, 9);
        assert!(cut.len() <= 9);
        assert_eq!(cut, "قطر…");
        let cut = truncate_bytes("😀😀😀", 10);
        assert_eq!(cut, "😀…");
        assert!(cut.len() <= 10);
    }

    #[test]
    fn byte_limits_too_small_for_the_ellipsis_cut_without_it() {
        assert_eq!(truncate_bytes("abc", 2), "ab");
        assert_eq!(truncate_bytes("قطر", 2), "ق");
        assert_eq!(truncate_bytes("قطر", 1), "");
    }
}
