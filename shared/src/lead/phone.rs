//! Phone numbers to E.164 with libphonenumber's metadata (the `phonenumber` crate).
//!
//! A number without a country code can only be read in some region: the lead's country first,
//! then the region of its locale. A number that states its country code (`+…`, or the `00`
//! international prefix) is read as stated, whatever the hints say.

use std::str::FromStr;

use phonenumber::country::Id;
use phonenumber::{Mode, PhoneNumber};

/// Longer input is not a phone number, and is not worth handing to the parser.
const MAX_PHONE_INPUT_CHARS: usize = 64;

/// A number in E.164, as CRMs store and match it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct E164Phone {
    /// `+` and digits only, e.g. `+97455551234`.
    pub number: String,
    /// The input had an extension (`ext. 12`), which E.164 cannot carry.
    pub extension_dropped: bool,
}

/// Why a phone number was dropped. Never holds the number itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PhoneProblem {
    #[error("is too long to be a phone number")]
    TooLong,
    #[error("is not a phone number")]
    NotANumber,
    #[error("has no country code, and the lead has no country or locale to read it in")]
    NoRegion,
    #[error("is not a valid number for its country")]
    NotValidForRegion,
}

/// Normalises `raw` to E.164, reading a number without country code in each of `region_hints`
/// (ISO 3166-1 alpha-2, most trusted first) until one gives a valid number. `Ok(None)` when
/// `raw` is blank.
pub fn normalise_phone(
    raw: &str,
    region_hints: &[&str],
) -> Result<Option<E164Phone>, PhoneProblem> {
    let text = with_ascii_digits(raw.trim());
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > MAX_PHONE_INPUT_CHARS {
        return Err(PhoneProblem::TooLong);
    }
    if !text.bytes().any(|b| b.is_ascii_digit()) {
        return Err(PhoneProblem::NotANumber);
    }

    let regions: Vec<Id> = region_hints
        .iter()
        .filter_map(|r| Id::from_str(r).ok())
        .collect();
    let mut attempts: Vec<(Option<Id>, String)> =
        regions.iter().map(|r| (Some(*r), text.clone())).collect();
    // `00` is the international prefix in most of the world (Qatar's included) but not in the
    // hinted region of every lead (Australia dials 0011), and not without a hint at all.
    if let Some(international) = text.strip_prefix("00") {
        attempts.push((None, format!("+{international}")));
    }
    attempts.push((None, text.clone()));

    let mut parsed_but_invalid = false;
    for (region, candidate) in attempts {
        if let Ok(number) = phonenumber::parse(region, &candidate) {
            if phonenumber::is_valid(&number) {
                return Ok(Some(e164(&number)));
            }
            parsed_but_invalid = true;
        }
    }
    if parsed_but_invalid {
        Err(PhoneProblem::NotValidForRegion)
    } else if regions.is_empty() && !text.starts_with('+') && !text.starts_with("00") {
        Err(PhoneProblem::NoRegion)
    } else {
        Err(PhoneProblem::NotANumber)
    }
}

fn e164(number: &PhoneNumber) -> E164Phone {
    E164Phone {
        number: number.format().mode(Mode::E164).to_string(),
        extension_dropped: number.extension().is_some(),
    }
}

/// Arabic-Indic, Persian and full-width digits (and the full-width plus) as ASCII: leads in the
/// Gulf type them, and the parser reads ASCII only.
fn with_ascii_digits(text: &str) -> String {
    text.chars()
        .map(|c| {
            let digit = match c {
                '\u{0660}'..='\u{0669}' => Some(c as u32 - 0x0660),
                '\u{06F0}'..='\u{06F9}' => Some(c as u32 - 0x06F0),
                '\u{FF10}'..='\u{FF19}' => Some(c as u32 - 0xFF10),
                _ => None,
            };
            match (digit, c) {
                (Some(d), _) => char::from_digit(d, 10).unwrap_or(c),
                (None, '\u{FF0B}') => '+',
                (None, other) => other,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e164_of(raw: &str, hints: &[&str]) -> Option<String> {
        normalise_phone(raw, hints).unwrap().map(|p| p.number)
    }

    #[test]
    fn an_international_qatari_number_needs_no_hint() {
        assert_eq!(
            e164_of("+974 5555 1234", &[]).as_deref(),
            Some("+97455551234")
        );
    }

    #[test]
    fn a_local_qatari_number_is_read_in_the_leads_country() {
        assert_eq!(
            e164_of("5555 1234", &["QA"]).as_deref(),
            Some("+97455551234")
        );
    }

    #[test]
    fn an_australian_mobile_loses_its_trunk_prefix() {
        assert_eq!(
            e164_of("0412 345 678", &["AU"]).as_deref(),
            Some("+61412345678")
        );
    }

    #[test]
    fn an_australian_landline_with_its_area_code_in_brackets_is_read() {
        assert_eq!(
            e164_of("(02) 9374 4000", &["AU"]).as_deref(),
            Some("+61293744000")
        );
    }

    #[test]
    fn the_00_international_prefix_works_with_or_without_a_hint() {
        assert_eq!(
            e164_of("00974 5555 1234", &[]).as_deref(),
            Some("+97455551234")
        );
        assert_eq!(
            e164_of("00974 5555 1234", &["QA"]).as_deref(),
            Some("+97455551234")
        );
        assert_eq!(
            e164_of("00974 5555 1234", &["AU"]).as_deref(),
            Some("+97455551234")
        );
    }

    #[test]
    fn australias_own_0011_international_prefix_is_read_in_australia() {
        assert_eq!(
            e164_of("0011 974 5555 1234", &["AU"]).as_deref(),
            Some("+97455551234")
        );
    }

    #[test]
    fn an_explicit_country_code_wins_over_the_hint() {
        assert_eq!(
            e164_of("+61 412 345 678", &["QA"]).as_deref(),
            Some("+61412345678")
        );
    }

    #[test]
    fn the_next_hint_is_tried_when_the_first_gives_no_valid_number() {
        assert_eq!(
            e164_of("0412 345 678", &["QA", "AU"]).as_deref(),
            Some("+61412345678")
        );
    }

    #[test]
    fn arabic_indic_digits_are_read() {
        assert_eq!(
            e164_of("+٩٧٤ ٥٥٥٥ ١٢٣٤", &[]).as_deref(),
            Some("+97455551234")
        );
        assert_eq!(
            e164_of("۵۵۵۵ ۱۲۳۴", &["QA"]).as_deref(),
            Some("+97455551234")
        );
    }

    #[test]
    fn garbage_is_not_a_number() {
        assert_eq!(
            normalise_phone("call me", &["QA"]),
            Err(PhoneProblem::NotANumber)
        );
        assert_eq!(
            normalise_phone("call me", &[]),
            Err(PhoneProblem::NotANumber)
        );
        assert_eq!(
            normalise_phone("123", &["QA"]),
            Err(PhoneProblem::NotValidForRegion)
        );
        assert_eq!(
            normalise_phone(&"1".repeat(65), &["QA"]),
            Err(PhoneProblem::TooLong)
        );
    }

    #[test]
    fn a_local_number_without_any_hint_cannot_be_read() {
        assert_eq!(normalise_phone("123", &[]), Err(PhoneProblem::NoRegion));
        assert_eq!(
            normalise_phone("5555 1234", &[]),
            Err(PhoneProblem::NoRegion)
        );
    }

    #[test]
    fn a_number_that_parses_but_is_not_valid_for_its_country_is_refused() {
        assert_eq!(
            normalise_phone("+61 412 345 67", &[]),
            Err(PhoneProblem::NotValidForRegion)
        );
        assert_eq!(
            normalise_phone("+974 1111 1111", &["QA"]),
            Err(PhoneProblem::NotValidForRegion)
        );
    }

    #[test]
    fn a_blank_phone_is_no_phone() {
        assert_eq!(normalise_phone("  ", &["QA"]), Ok(None));
    }

    #[test]
    fn an_extension_is_dropped_and_said_so() {
        let phone = normalise_phone("+974 5555 1234 ext. 12", &[])
            .unwrap()
            .unwrap();
        assert_eq!(phone.number, "+97455551234");
        assert!(phone.extension_dropped);
    }

    #[test]
    fn hints_that_are_not_regions_are_ignored() {
        assert_eq!(
            e164_of("+974 5555 1234", &["UK", "", "AQ"]).as_deref(),
            Some("+97455551234")
        );
    }
}
