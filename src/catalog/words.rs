//! The words a catalog text is indexed and searched under ([`tokens`], [`query_words`]), so
//! that Hangul matches as it is typed. A Korean input method composes a syllable a letter at
//! a time: on the way to 청바지 the search box holds ㅊ, 처, 청, 청ㅂ, 청바, 청밪, 청바지. Compared by syllables, 청ㅂ and
//! 청밪 are prefixes of nothing, and the suggestions go blank at every other key. So words are
//! compared by letters (jamo): every syllable and every jamo — composed, conjoining (what NFKC
//! makes of a lone letter) or compatibility — is spelt as the letters typed for it (Unicode
//! Standard, 3.12: a syllable's initial, medial and final), an initial and a final of the same
//! letter alike, and a compound vowel or final as its two keys (ㅘ is ㅗ then ㅏ; ㄺ is ㄹ then
//! ㄱ), so every stage of typing a word is a prefix of the word.
//!
//! Besides its letters, a word of Hangul syllables is also indexed by its initials (초성
//! search: ㅊㅂㅈ finds 청바지), and a word that runs Hangul and Latin together (나이키Air맥스)
//! also by each run, as shops write names without spaces between scripts.

use crate::domain::text;

/// A syllable's initial consonants (choseong), in Unicode order.
const INITIAL: [&str; 19] = [
    "ㄱ", "ㄲ", "ㄴ", "ㄷ", "ㄸ", "ㄹ", "ㅁ", "ㅂ", "ㅃ", "ㅅ", "ㅆ", "ㅇ", "ㅈ", "ㅉ", "ㅊ", "ㅋ",
    "ㅌ", "ㅍ", "ㅎ",
];
/// A syllable's vowels (jungseong), a compound one as its two keys.
const MEDIAL: [&str; 21] = [
    "ㅏ", "ㅐ", "ㅑ", "ㅒ", "ㅓ", "ㅔ", "ㅕ", "ㅖ", "ㅗ", "ㅗㅏ", "ㅗㅐ", "ㅗㅣ", "ㅛ", "ㅜ",
    "ㅜㅓ", "ㅜㅔ", "ㅜㅣ", "ㅠ", "ㅡ", "ㅡㅣ", "ㅣ",
];
/// A syllable's final consonants (jongseong; 0 is none), a compound one as its two keys.
const FINAL: [&str; 28] = [
    "", "ㄱ", "ㄲ", "ㄱㅅ", "ㄴ", "ㄴㅈ", "ㄴㅎ", "ㄷ", "ㄹ", "ㄹㄱ", "ㄹㅁ", "ㄹㅂ", "ㄹㅅ",
    "ㄹㅌ", "ㄹㅍ", "ㄹㅎ", "ㅁ", "ㅂ", "ㅂㅅ", "ㅅ", "ㅆ", "ㅇ", "ㅈ", "ㅊ", "ㅋ", "ㅌ", "ㅍ",
    "ㅎ",
];
/// The compatibility consonants U+3131 ㄱ to U+314E ㅎ, a compound one as its two keys.
const COMPAT_CONSONANT: [&str; 30] = [
    "ㄱ", "ㄲ", "ㄱㅅ", "ㄴ", "ㄴㅈ", "ㄴㅎ", "ㄷ", "ㄸ", "ㄹ", "ㄹㄱ", "ㄹㅁ", "ㄹㅂ", "ㄹㅅ",
    "ㄹㅌ", "ㄹㅍ", "ㄹㅎ", "ㅁ", "ㅂ", "ㅃ", "ㅂㅅ", "ㅅ", "ㅆ", "ㅇ", "ㅈ", "ㅉ", "ㅊ", "ㅋ",
    "ㅌ", "ㅍ", "ㅎ",
];

const SYLLABLES: std::ops::RangeInclusive<u32> = 0xAC00..=0xD7A3;

/// The letters typed for `c`, if it is a Hangul syllable or jamo.
fn letters(c: char) -> Option<(&'static str, &'static str, &'static str)> {
    let u = u32::from(c);
    let at = |table: &'static [&'static str], i: u32| table.get(i as usize).copied();
    match u {
        _ if SYLLABLES.contains(&u) => {
            let s = u - 0xAC00;
            Some((
                at(&INITIAL, s / 588)?,
                at(&MEDIAL, (s % 588) / 28)?,
                at(&FINAL, s % 28)?,
            ))
        }
        0x1100..=0x1112 => Some((at(&INITIAL, u - 0x1100)?, "", "")),
        0x1161..=0x1175 => Some((at(&MEDIAL, u - 0x1161)?, "", "")),
        0x11A8..=0x11C2 => Some((at(&FINAL, u - 0x11A7)?, "", "")),
        0x3131..=0x314E => Some((at(&COMPAT_CONSONANT, u - 0x3131)?, "", "")),
        0x314F..=0x3163 => Some((at(&MEDIAL, u - 0x314F)?, "", "")),
        _ => None,
    }
}

fn is_hangul(c: char) -> bool {
    letters(c).is_some()
}

/// `word` (already folded, `text::fold`) spelt by letters: each Hangul syllable or jamo as
/// the letters typed for it, anything else as it is.
pub fn spelt(word: &str) -> String {
    let mut out = String::with_capacity(word.len() * 2);
    for c in word.chars() {
        match letters(c) {
            Some((a, b, c)) => {
                out.push_str(a);
                out.push_str(b);
                out.push_str(c);
            }
            None => out.push(c),
        }
    }
    out
}

/// Every form `word` (folded) is indexed under, each [`spelt`]: the word; its initials, when
/// it is all Hangul syllables of two or more; and, when it mixes Hangul and other letters,
/// each run of one or the other with the run's own forms.
pub fn forms(word: &str) -> Vec<String> {
    let mut out = vec![spelt(word)];
    let syllables =
        word.chars().count() > 1 && word.chars().all(|c| SYLLABLES.contains(&u32::from(c)));
    if syllables {
        out.push(
            word.chars()
                .filter_map(letters)
                .map(|(i, _, _)| i)
                .collect(),
        );
    }
    let mixed = word.chars().any(is_hangul) && word.chars().any(|c| !is_hangul(c));
    if mixed {
        let mut runs: Vec<String> = Vec::new();
        let mut hangul = None;
        for c in word.chars() {
            if hangul != Some(is_hangul(c)) {
                runs.push(String::new());
            }
            hangul = Some(is_hangul(c));
            if let Some(run) = runs.last_mut() {
                run.push(c);
            }
        }
        out.extend(runs.iter().flat_map(|run| forms(run)));
    }
    out
}

/// The words of `text` in their comparison form ([`text::fold`]): runs of letters and digits
/// (Hangul and Latin alike), each in every form it is indexed under (Hangul by letters, with
/// a word's initials and a mixed word's runs: [`forms`]).
pub fn tokens(text: &str) -> Vec<String> {
    words(text, forms)
}

/// The words of a query, each spelt by letters ([`spelt`]): every one must be a
/// prefix of one of a product's [`tokens`].
pub fn query_words(text: &str) -> Vec<String> {
    words(text, |w| vec![spelt(w)])
}

fn words(text: &str, forms: impl Fn(&str) -> Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = text::fold(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .flat_map(forms)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_of_typing_a_word_is_a_prefix_of_it() {
        // Given 청바지 spelt by letters
        let word = spelt("청바지");
        // When the box holds each stage an input method passes through (NFKC turns a lone
        // letter into a conjoining jamo, as `text::fold` does)
        for typed in [
            "ㅊ",
            "처",
            "청",
            "청ㅂ",
            "청바",
            "청밪",
            "청바지",
            "청\u{1107}",
        ] {
            // Then each is a prefix
            assert!(word.starts_with(&spelt(typed)), "{typed}");
        }
        // A compound vowel and a compound final are their two keys
        assert!(spelt("과자").starts_with(&spelt("고")));
        assert!(spelt("닭갈비").starts_with(&spelt("달")));
        assert!(spelt("닭갈비").starts_with(&spelt("닭")));
        // And another word is not
        assert!(!word.starts_with(&spelt("치")));
    }

    #[test]
    fn a_hangul_word_is_also_its_initials_and_a_mixed_word_its_runs() {
        // Given a word of syllables, Then its initials are a form of it
        assert!(forms("청바지").contains(&spelt("ㅊㅂㅈ")));
        // (not for one syllable, where the initial is already a prefix)
        assert_eq!(forms("컵").len(), 1);
        // Given Hangul and Latin run together, Then each run is a form of it
        let f = forms("나이키air맥스");
        for run in ["나이키", "air", "맥스", "ㄴㅇㅋ", "ㅁㅅ"] {
            assert!(f.contains(&spelt(run)), "{run} in {f:?}");
        }
        // And a Latin word is only itself
        assert_eq!(forms("tee"), vec!["tee".to_string()]);
    }

    #[test]
    fn tokenises_hangul_and_latin_case_insensitively() {
        let t = tokens("Red T-Shirt, 빨간 티셔츠!");
        let mut want: Vec<String> = ["red", "shirt", "t", "빨간", "ㅃㄱ", "티셔츠", "ㅌㅅㅊ"]
            .iter()
            .map(|w| spelt(w))
            .collect();
        want.sort();
        assert_eq!(t, want);
        assert_eq!(query_words("T-Shirt 빨"), vec!["shirt", "t", &spelt("빨")]);
    }
}
