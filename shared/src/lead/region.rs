//! Country codes and locale tags: the region hints that phone numbers are read in.

/// Every officially assigned ISO 3166-1 alpha-2 code, sorted for binary search. `UK`, `EU` and
/// other reserved codes are not countries and are refused.
const ISO_3166_ALPHA_2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// The upper-case ISO 3166-1 alpha-2 code for `raw` (any case, surrounding spaces ignored), if
/// it is an assigned one.
pub fn country_code(raw: &str) -> Option<String> {
    let code = raw.trim().to_ascii_uppercase();
    ISO_3166_ALPHA_2
        .binary_search(&code.as_str())
        .ok()
        .map(|_| code)
}

/// A well-formed BCP 47 language tag, of which only the region matters here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locale {
    /// The tag's country, upper-case, when it names one (`ar-QA` → `QA`; `es-419` → none).
    pub region: Option<String>,
}

/// Reads a BCP 47 tag such as `ar-QA`, `en-AU`, `zh-Hant-TW` or `es-419`. `_` is accepted as a
/// separator because POSIX-style tags (`en_AU`) are common. `None` when the tag is malformed or
/// its two-letter region is not an assigned country code.
pub fn parse_locale(raw: &str) -> Option<Locale> {
    let tag = raw.trim();
    if tag.is_empty() || tag.len() > 64 {
        return None;
    }
    let subtags: Vec<&str> = tag.split(['-', '_']).collect();
    let well_formed = subtags
        .iter()
        .all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !well_formed {
        return None;
    }
    let alpha = |s: &str, lengths: std::ops::RangeInclusive<usize>| {
        lengths.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic())
    };
    let language = subtags[0];
    if !(alpha(language, 2..=3) || alpha(language, 5..=8)) {
        return None;
    }
    let mut rest = subtags[1..].iter().copied().peekable();
    // Extended language subtags (`zh-yue`), at most three, only after a short language.
    let mut extlangs = 0;
    while language.len() <= 3 && extlangs < 3 && rest.peek().is_some_and(|s| alpha(s, 3..=3)) {
        rest.next();
        extlangs += 1;
    }
    if rest.peek().is_some_and(|s| alpha(s, 4..=4)) {
        rest.next(); // script
    }
    let region = match rest.peek() {
        Some(s) if alpha(s, 2..=2) => Some(country_code(s)?),
        _ => None,
    };
    Some(Locale { region })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_country_list_is_sorted_without_duplicates() {
        assert!(ISO_3166_ALPHA_2.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn country_codes_are_read_in_any_case() {
        assert_eq!(country_code("qa").as_deref(), Some("QA"));
        assert_eq!(country_code(" Au ").as_deref(), Some("AU"));
    }

    #[test]
    fn reserved_and_unassigned_codes_are_not_countries() {
        for raw in ["UK", "EU", "ZZ", "Q", "QAT", "", "Q1"] {
            assert_eq!(country_code(raw), None, "{raw}");
        }
    }

    #[test]
    fn a_locale_gives_its_region() {
        let region = |tag| parse_locale(tag).and_then(|l| l.region);
        assert_eq!(region("ar-QA").as_deref(), Some("QA"));
        assert_eq!(region("en-AU").as_deref(), Some("AU"));
        assert_eq!(region("en_au").as_deref(), Some("AU"));
        assert_eq!(region("zh-Hant-TW").as_deref(), Some("TW"));
        assert_eq!(region("zh-yue-HK").as_deref(), Some("HK"));
    }

    #[test]
    fn a_locale_without_a_country_is_well_formed_but_gives_no_region() {
        assert_eq!(parse_locale("ar"), Some(Locale { region: None }));
        assert_eq!(parse_locale("es-419"), Some(Locale { region: None }));
        assert_eq!(parse_locale("sr-Latn"), Some(Locale { region: None }));
    }

    #[test]
    fn malformed_locales_are_refused() {
        for raw in [
            "",
            "a",
            "ar.QA",
            "ar-",
            "ar--QA",
            "ar QA",
            "1a-QA",
            "en-UK",
            "ar-QA-toolongsubtag",
        ] {
            assert_eq!(parse_locale(raw), None, "{raw}");
        }
    }
}
