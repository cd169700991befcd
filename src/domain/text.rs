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

/// One line of `min` to `max` characters: counted trimmed, with no control character
/// anywhere (the OpenAPI document's `line` pattern says the same).
pub fn is_line(raw: &str, min: usize, max: usize) -> bool {
    let n = raw.trim().chars().count();
    (min..=max).contains(&n) && !raw.chars().any(char::is_control)
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
