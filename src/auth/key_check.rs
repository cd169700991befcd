//! The personal-data key check: a record beside the wrapped person keys (`crate::auth::vault`)
//! that proves, at start-up, that the configured keys are the ones the stored data was sealed
//! and indexed with.
//!
//! A missing or mistyped `EMPORIUM_PII_KEY` (or, in dev mode, a deleted `dev-pii-key` file,
//! which makes a new one) would otherwise start a node that opens no stored key, finds no
//! account by its email (the blind index is keyed by it) and so lets the same address sign up
//! again. The record holds the blind index of a fixed text and that text sealed with the key
//! current when it was written: the index must match, and the seal must open with the current
//! key or a previous one (`auth.pii_previous_keys`; then the record is sealed again with the
//! current key, which completes the rotation of the check). A store made before the check has
//! no record: one of its wrapped person keys must open instead, and the record is written.

use crate::auth::pii::Pii;
use crate::domain::sealed::Sealed;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The slot the record is kept under, beside the person keys: not a valid user id
/// (`crate::domain::ids`), so no person's key can take it.
pub const SLOT: &str = "~pii-key-check";
/// The text indexed and sealed.
const CANARY: &str = "emporium personal-data key check v1";

/// Why the configured keys are not the data's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyMismatch {
    #[error(
        "EMPORIUM_PII_KEY (in dev mode without it, the key generated into the data dir's \
         dev-pii-key file) is not a key this data was sealed with: stored personal data and \
         accounts would not open. Start with the key the data was made with; to rotate, set \
         the new key and list the old one in auth.pii_previous_keys"
    )]
    Sealing,
    #[error(
        "the blind index key differs from the one this data was indexed with (auth.index_key, \
         or EMPORIUM_PII_KEY when that is not set): no account could be found by its email. \
         Set auth.index_key to the key the data was first written with"
    )]
    Index,
}

/// What a stored record says of the configured keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sealed with the current key: nothing to do.
    Current,
    /// Sealed with a previous key: write [`record`] again.
    Rotated,
}

/// The record for `pii`'s keys: `v1:<blind index hex>:<sealed canary, base64>`.
pub fn record(pii: &Pii) -> Vec<u8> {
    let sealed = STANDARD.encode(pii.seal(CANARY).0);
    format!("v1:{}:{sealed}", pii.blind_index(CANARY)).into_bytes()
}

/// Checks `pii` against a stored record.
///
/// Errors: [`KeyMismatch::Sealing`] when the seal opens with none of the keys (or the record
/// does not parse), [`KeyMismatch::Index`] when it does but the blind index differs (a
/// rotation that did not keep the index key).
pub fn verify(pii: &Pii, stored: &[u8]) -> Result<Verdict, KeyMismatch> {
    let text = std::str::from_utf8(stored).map_err(|_| KeyMismatch::Sealing)?;
    let mut parts = text.splitn(3, ':');
    let (Some("v1"), Some(index), Some(sealed)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(KeyMismatch::Sealing);
    };
    let sealed = Sealed(STANDARD.decode(sealed).map_err(|_| KeyMismatch::Sealing)?);
    if pii.open(&sealed).ok().as_deref() != Some(CANARY) {
        return Err(KeyMismatch::Sealing);
    }
    if index != pii.blind_index(CANARY) {
        return Err(KeyMismatch::Index);
    }
    Ok(match pii.is_current(&sealed) {
        true => Verdict::Current,
        false => Verdict::Rotated,
    })
}

/// Checks `pii` against a person key wrapped before the check existed.
///
/// Errors: [`KeyMismatch::Sealing`] when it does not open.
pub fn verify_wrapped(pii: &Pii, wrapped: &[u8]) -> Result<(), KeyMismatch> {
    pii.open(&Sealed(wrapped.to_vec()))
        .map(drop)
        .map_err(|_| KeyMismatch::Sealing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pii(current: u8, previous: &[u8], index: Option<u8>) -> Pii {
        let previous: Vec<Vec<u8>> = previous.iter().map(|k| vec![*k; 32]).collect();
        let index = index.map(|k| [k; 32]);
        Pii::new(&[current; 32], &previous, index.as_ref().map(|k| &k[..])).unwrap()
    }

    #[test]
    fn only_the_keys_the_data_was_made_with_pass() {
        // Given a record written with key 1 (its index derived from key 1)
        let stored = record(&pii(1, &[], None));
        // Then the same key passes, and a new key alone is refused
        assert_eq!(verify(&pii(1, &[], None), &stored), Ok(Verdict::Current));
        assert_eq!(
            verify(&pii(2, &[], None), &stored),
            Err(KeyMismatch::Sealing)
        );
        // And a rotation that lets the index key change with it is refused for the index
        assert_eq!(
            verify(&pii(2, &[1], None), &stored),
            Err(KeyMismatch::Index)
        );
        // And a rotation that keeps the index key passes, asking for the record again
        assert_eq!(
            verify(&pii(2, &[1], Some(1)), &stored),
            Ok(Verdict::Rotated)
        );
        // But a new key with the right index key and without the old one is refused
        assert_eq!(
            verify(&pii(2, &[], Some(1)), &stored),
            Err(KeyMismatch::Sealing)
        );
        // And garbage is refused, never a panic
        assert_eq!(
            verify(&pii(1, &[], None), b"v1:zz"),
            Err(KeyMismatch::Sealing)
        );
        assert_eq!(
            verify(&pii(1, &[], None), b"\xff"),
            Err(KeyMismatch::Sealing)
        );
    }

    #[test]
    fn a_store_made_before_the_check_is_checked_by_one_of_its_wrapped_keys() {
        let wrapped = pii(1, &[], None).seal("a person's key").0;
        assert_eq!(verify_wrapped(&pii(1, &[], None), &wrapped), Ok(()));
        assert_eq!(
            verify_wrapped(&pii(2, &[], None), &wrapped),
            Err(KeyMismatch::Sealing)
        );
    }
}
