//! Splitting a lead's name into the first and last name that CRMs ask for.
//!
//! The rule is deliberately simple: the first word is the first name and everything after it is
//! the last name, so nothing the lead typed is ever lost, only placed. Two Arabic patterns are
//! recognised on top of it, because the product serves the Gulf:
//!
//! - compound given names built on *Abd* ("servant of"): `Abdul Aziz`, `Abd al Rahman`,
//!   `Abdel Fattah`, `عبد الله` are one first name, never a first name plus a surname;
//! - a name that *starts* with a family particle (`Al`, `El`, `Al-…`, `bin`, `bint`, `ibn`,
//!   `بن`, `بنت`, `آل`, or a word with the article `ال`) is a family name only: `Al Thani` has no
//!   first name. Particles later in a name already fall into the last name by the main rule.
//!
//! Nothing else is recognised: not Latin particles (`Mary Jane van der Berg` splits as `Mary` /
//! `Jane van der Berg`), not family-name-first orders. The price of the particle rule is that a
//! given name that looks like one (`Al Pacino`) lands whole in the last name — still complete.

use super::text::truncate_chars;

/// What CRMs get when the lead gave no usable name: Zoho and Salesforce refuse a contact without
/// a last name, and a name guessed from the email address would look like real data.
pub const UNKNOWN_NAME: &str = "Unknown";

/// The most chars kept of a first or of a last name.
pub const MAX_NAME_PART_CHARS: usize = 80;

/// A name split for a CRM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonName {
    pub first: Option<String>,
    /// Never empty.
    pub last: String,
    /// The cleaned name as it is displayed: `first last`.
    pub full: String,
}

impl PersonName {
    /// The stand-in for a lead without a usable name.
    pub fn unknown() -> PersonName {
        PersonName {
            first: None,
            last: UNKNOWN_NAME.to_string(),
            full: UNKNOWN_NAME.to_string(),
        }
    }
}

/// Splits `raw` into first and last name after collapsing every kind of whitespace. `None` when
/// nothing that could be a name is left (blank, or no letter at all, like "🙂" or "...").
pub fn split_name(raw: &str) -> Option<PersonName> {
    let cleaned = clean(raw);
    let words: Vec<&str> = cleaned.split(' ').filter(|w| !w.is_empty()).collect();
    if !words.iter().any(|w| w.chars().any(char::is_alphabetic)) {
        return None;
    }
    let given = if starts_with_family_particle(words[0]) {
        0
    } else {
        given_name_word_count(&words)
    };
    let (first, last) = if given == 0 || given >= words.len() {
        (None, words.join(" "))
    } else {
        (Some(words[..given].join(" ")), words[given..].join(" "))
    };
    let first = first.map(|f| truncate_chars(&f, MAX_NAME_PART_CHARS));
    let last = truncate_chars(&last, MAX_NAME_PART_CHARS);
    let full = match &first {
        Some(first) => format!("{first} {last}"),
        None => last.clone(),
    };
    Some(PersonName { first, last, full })
}

/// Whitespace of any kind (no-break, ideographic, tabs, line breaks) and control characters
/// become a single space; invisible formatting characters, which chat apps insert around
/// right-to-left text, are removed.
fn clean(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_whitespace() || c.is_control() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else if !is_invisible_format(c) {
            out.push(c);
        }
    }
    out.trim().to_string()
}

fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                // soft hyphen
        | '\u{061C}'              // Arabic letter mark
        | '\u{200B}'              // zero-width space
        | '\u{200E}' | '\u{200F}' // left-to-right and right-to-left marks
        | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
        | '\u{2060}'              // word joiner
        | '\u{2066}'..='\u{2069}' // bidi isolates
        | '\u{FEFF}'              // byte order mark
    )
}

/// How many leading words form the given name: 2 or 3 for an *Abd* compound, else 1.
fn given_name_word_count(words: &[&str]) -> usize {
    let first = words[0].to_lowercase();
    let bare_abd = first == "abd" || first == "عبد";
    let abd_with_article = matches!(
        first.as_str(),
        "abdul" | "abdel" | "abdal" | "abdol" | "abdur" | "abdus"
    );
    if bare_abd && words.len() > 2 && is_article(words[1]) {
        // "Abd al Rahman": the article written apart joins the compound too.
        return 3;
    }
    if (bare_abd || abd_with_article) && words.len() > 1 {
        return 2;
    }
    1
}

/// The Arabic article as it is transliterated on its own, sun-letter forms included.
fn is_article(word: &str) -> bool {
    matches!(
        word.to_lowercase().as_str(),
        "al" | "el" | "ul" | "ar" | "as" | "ad" | "an" | "at" | "az" | "ash"
    )
}

fn starts_with_family_particle(word: &str) -> bool {
    let lower = word.to_lowercase();
    if matches!(
        lower.as_str(),
        "al" | "el" | "bin" | "bint" | "ibn" | "بن" | "بنت" | "ابن" | "آل"
    ) {
        return true;
    }
    let prefixed =
        |prefix: &str| lower.starts_with(prefix) && lower.chars().count() > prefix.chars().count();
    prefixed("al-") || prefixed("el-") || prefixed("ال")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(raw: &str) -> (Option<String>, String) {
        let name = split_name(raw).expect("a name");
        (name.first, name.last)
    }

    fn pair(first: Option<&str>, last: &str) -> (Option<String>, String) {
        (first.map(str::to_string), last.to_string())
    }

    #[test]
    fn a_two_word_name_splits_into_first_and_last() {
        assert_eq!(split("Fatima Al-Kuwari"), pair(Some("Fatima"), "Al-Kuwari"));
    }

    #[test]
    fn an_abdul_compound_stays_one_first_name() {
        assert_eq!(
            split("Abdul Rahman Al Thani"),
            pair(Some("Abdul Rahman"), "Al Thani")
        );
        assert_eq!(
            split("Abdel Fattah el-Sisi"),
            pair(Some("Abdel Fattah"), "el-Sisi")
        );
        assert_eq!(
            split("abdul aziz bin saud"),
            pair(Some("abdul aziz"), "bin saud")
        );
    }

    #[test]
    fn abd_with_a_separate_article_joins_the_next_word_too() {
        assert_eq!(
            split("Abd al Rahman Al Saud"),
            pair(Some("Abd al Rahman"), "Al Saud")
        );
        assert_eq!(
            split("Abd al-Rahman Al Saud"),
            pair(Some("Abd al-Rahman"), "Al Saud")
        );
    }

    #[test]
    fn arabic_abd_joins_the_next_word() {
        assert_eq!(split("عبد الله الكعبي"), pair(Some("عبد الله"), "الكعبي"));
    }

    #[test]
    fn family_particles_in_an_arabic_name_stay_in_the_last_name() {
        assert_eq!(
            split("محمد بن راشد آل مكتوم"),
            pair(Some("محمد"), "بن راشد آل مكتوم")
        );
    }

    #[test]
    fn a_name_that_starts_with_a_family_particle_has_no_first_name() {
        assert_eq!(split("Al Thani"), pair(None, "Al Thani"));
        assert_eq!(split("Al-Kuwari"), pair(None, "Al-Kuwari"));
        assert_eq!(
            split("bin Zayed Al Nahyan"),
            pair(None, "bin Zayed Al Nahyan")
        );
        assert_eq!(split("آل ثاني"), pair(None, "آل ثاني"));
        assert_eq!(split("الكعبي محمد"), pair(None, "الكعبي محمد"));
    }

    #[test]
    fn a_compound_given_name_alone_is_kept_whole_as_the_last_name() {
        assert_eq!(split("Abdul Aziz"), pair(None, "Abdul Aziz"));
        assert_eq!(split("عبد الله"), pair(None, "عبد الله"));
    }

    #[test]
    fn a_single_word_is_the_last_name_only() {
        assert_eq!(split("Madonna"), pair(None, "Madonna"));
        assert_eq!(split("Abdul"), pair(None, "Abdul"));
    }

    #[test]
    fn whitespace_of_every_kind_is_collapsed() {
        assert_eq!(split("  John   Smith "), pair(Some("John"), "Smith"));
        assert_eq!(
            split("John\u{00A0}\t\nSmith\u{3000}Jr"),
            pair(Some("John"), "Smith Jr")
        );
        let name = split_name("\u{2003}Fatima \u{202F} Al-Kuwari\r\n").unwrap();
        assert_eq!(name.full, "Fatima Al-Kuwari");
    }

    #[test]
    fn invisible_direction_marks_are_removed() {
        assert_eq!(
            split("\u{200F}محمد\u{200F} \u{2067}الكعبي\u{2069}"),
            pair(Some("محمد"), "الكعبي")
        );
    }

    #[test]
    fn only_arabic_given_name_compounds_are_recognised() {
        assert_eq!(
            split("Mary Jane van der Berg"),
            pair(Some("Mary"), "Jane van der Berg")
        );
    }

    #[test]
    fn the_full_name_is_the_cleaned_first_and_last_name() {
        let name = split_name(" Abdul  Rahman   Al Thani ").unwrap();
        assert_eq!(name.full, "Abdul Rahman Al Thani");
        assert_eq!(split_name("Madonna").unwrap().full, "Madonna");
    }

    #[test]
    fn a_blank_or_letterless_name_is_no_name() {
        for raw in ["", "   ", "\u{00A0}\t", "🙂", "...", "\u{200F}"] {
            assert_eq!(split_name(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn the_stand_in_for_no_name_is_unknown() {
        let name = PersonName::unknown();
        assert_eq!(
            (name.first, name.last.as_str(), name.full.as_str()),
            (None, "Unknown", "Unknown")
        );
    }

    #[test]
    fn each_part_is_cut_to_eighty_chars_at_a_char_boundary() {
        let long_first = "ع".repeat(100);
        let long_last = "é".repeat(200);
        let name = split_name(&format!("{long_first} {long_last}")).unwrap();
        let first = name.first.unwrap();
        assert_eq!(first.chars().count(), MAX_NAME_PART_CHARS);
        assert!(first.ends_with('…'));
        assert_eq!(name.last.chars().count(), MAX_NAME_PART_CHARS);
    }
}
