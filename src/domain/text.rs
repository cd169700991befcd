//! The one place text is put in the form it is compared in. Whatever is compared or indexed —
//! product names and descriptions and the queries against them, categories, email addresses,
//! coupon codes — goes through [`fold`] (or [`code`] for codes shown upper-case), never through
//! its own `to_lowercase`.
//!
//! The form: Unicode NFKC (Unicode Standard Annex #15), so Hangul typed decomposed (NFD, as some
//! macOS input sends it) and composed compare equal, as do full-width and ASCII Latin; then one
//! case rule; then NFC again (a case mapping may leave a sequence unnormalised); trimmed.
//! [`is_line`] is the one rule of one-line text people name things with.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The comparison form: NFKC, lower-case, trimmed (after normalising, which can turn a
/// character into a space and a combining mark: found by the `text` fuzz target).
pub fn fold(raw: &str) -> String {
    let normal: String = raw.nfkc().flat_map(char::to_lowercase).nfc().collect();
    normal.trim().to_owned()
}

/// The form of a code people type and read back (a coupon code): NFKC, upper-case, trimmed.
pub fn code(raw: &str) -> String {
    let normal: String = raw.nfkc().flat_map(char::to_uppercase).nfc().collect();
    normal.trim().to_owned()
}

/// One line of `min` to `max` characters: counted trimmed, with no control character and no
/// line or paragraph separator (U+2028, U+2029) anywhere, and at least one [visible](is_visible)
/// character that is not a combining mark (general category M), so a name of zero-width spaces,
/// a lone byte-order mark or an accent with nothing under it is refused (the OpenAPI document's
/// `line` pattern says the same of invisible characters).
pub fn is_line(raw: &str, min: usize, max: usize) -> bool {
    let n = raw.trim().chars().count();
    (min..=max).contains(&n)
        && !raw
            .chars()
            .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
        && raw.chars().any(|c| is_visible(c) && !is_combining_mark(c))
}

/// Whether `c` shows as something: neither white space nor a default-ignorable code point,
/// which renders as nothing (Unicode's DerivedCoreProperties.txt, `Default_Ignorable_Code_Point`,
/// 16.0: the soft hyphen, zero-width spaces and joiners, direction marks, variation selectors,
/// the byte-order mark, the Hangul fillers and the tag characters among them); nor the blank
/// Braille pattern (U+2800) or the interlinear annotation marks (U+FFF9–U+FFFB), which are not
/// on that list but show as nothing too.
pub fn is_visible(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(c,
            '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}'..='\u{1160}' | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}' | '\u{2800}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}' | '\u{ffa0}' | '\u{fff0}'..='\u{fffb}' | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}' | '\u{e0000}'..='\u{e0fff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_counted_trimmed_and_holds_no_control_character() {
        assert!(is_line(" 한글 tee ", 1, 8));
        assert!(!is_line("  ", 1, 8), "only spaces");
        assert!(!is_line("a\u{7}b", 1, 8));
        assert!(!is_line("abc", 1, 2));
    }

    #[test]
    fn a_line_of_only_invisible_characters_is_refused() {
        // Given names that render as nothing: zero-width spaces, a byte-order mark, a Hangul filler
        for blank in [
            "\u{200b}\u{200b}",
            "\u{feff}",
            " \u{3164} ",
            "\u{200d}\u{fe0f}",
            "\u{2800}\u{2800}",
            "\u{fff9}",
        ] {
            assert!(!is_line(blank, 1, 8), "{blank:?}");
        }
        // And a line separator inside a name, and accents with nothing under them
        assert!(!is_line("a\u{2028}b", 1, 8));
        assert!(!is_line("\u{301}", 1, 8));
        assert!(!is_line(" \u{301}\u{302}\u{200b}", 1, 8));
        assert!(
            !is_line("\u{1160}\u{302}", 1, 8),
            "a filler carrying a mark"
        );
        // Then a name with one visible character among them is a name (an emoji with its joiner)
        assert!(is_line("\u{200b}a", 1, 8));
        assert!(is_line("👩\u{200d}💻", 1, 8));
        assert!(is_line("ㅋ", 1, 8), "a Hangul letter is not a filler");
        assert!(is_line("e\u{301}", 1, 8), "a letter with its accent");
    }

    #[test]
    fn decomposed_and_composed_hangul_fold_alike() {
        // Given "티셔츠" typed composed and decomposed (conjoining jamo)
        let composed = "티셔츠";
        let decomposed: String = composed.nfd().collect();
        assert_ne!(composed, decomposed);
        // Then both fold to the composed form
        assert_eq!(fold(&decomposed), composed);
        assert_eq!(fold(composed), composed);
    }

    #[test]
    fn latin_folds_case_accents_and_width_to_one_form() {
        let nfd_cafe = "Cafe\u{301}";
        assert_eq!(fold(nfd_cafe), "café");
        assert_eq!(fold(" CAFÉ "), "café");
        assert_eq!(fold("ＴＥＥ"), "tee", "full-width Latin");
        assert_eq!(code(" summer-ｓａｌｅ "), "SUMMER-SALE");
    }

    #[test]
    fn folding_twice_is_folding_once() {
        // U+00AF (macron) is, in NFKC, a space and a combining macron.
        let raw = "\u{af}x";
        assert_eq!(fold(&fold(raw)), fold(raw));
    }
}
