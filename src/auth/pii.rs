//! Personal data at rest: AES-256-GCM with a key id, so keys can rotate (new data is sealed with
//! the current key; data sealed with a previous key still opens). Also keyed MACs for blind
//! indexes (the email claim's key) and verification codes, so neither is stored in clear.

use crate::domain::sealed::Sealed;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const KID_LEN: usize = 4;
const NONCE_LEN: usize = 12;
/// What data sealed with a person's own key starts with, in place of a key id
/// (`crate::auth::vault`); no configured key may have it as its id.
const SUBJECT_TAG: [u8; KID_LEN] = *b"\xffSK1";

#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    #[error("a PII key is 32 bytes, base64-encoded")]
    BadKey,
    #[error("sealed with an unknown key")]
    UnknownKey,
    #[error("cannot open sealed data")]
    Corrupt,
}

#[derive(Clone)]
pub struct Pii {
    current: ([u8; KID_LEN], Aes256Gcm),
    previous: Vec<([u8; KID_LEN], Aes256Gcm)>,
    index_key: [u8; 32],
}

fn kid(key: &[u8]) -> [u8; KID_LEN] {
    let digest = Sha256::digest(key);
    [digest[0], digest[1], digest[2], digest[3]]
}

fn cipher(key: &[u8]) -> Result<([u8; KID_LEN], Aes256Gcm), PiiError> {
    if key.len() != 32 || kid(key) == SUBJECT_TAG {
        return Err(PiiError::BadKey);
    }
    Ok((
        kid(key),
        Aes256Gcm::new_from_slice(key).map_err(|_| PiiError::BadKey)?,
    ))
}

impl Pii {
    /// `current` seals; `previous` only open. The index key must stay the same across
    /// rotations (it keys lookups); without one it is derived from `current`.
    pub fn new(
        current: &[u8],
        previous: &[Vec<u8>],
        index_key: Option<&[u8]>,
    ) -> Result<Self, PiiError> {
        let derive = |material: &[u8]| -> [u8; 32] {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(material).expect("any key length");
            mac.update(b"emporium blind index v1");
            mac.finalize().into_bytes().into()
        };
        Ok(Self {
            current: cipher(current)?,
            previous: previous
                .iter()
                .map(|k| cipher(k))
                .collect::<Result<_, _>>()?,
            index_key: derive(index_key.unwrap_or(current)),
        })
    }

    pub fn seal(&self, plaintext: &str) -> Sealed {
        let (kid, cipher) = &self.current;
        seal_with(kid, cipher, plaintext)
    }

    /// Seals with a person's own data key (see `crate::auth::vault`).
    pub fn seal_for_subject(key: &[u8; 32], plaintext: &str) -> Sealed {
        let cipher = Aes256Gcm::new_from_slice(key).expect("32 bytes");
        seal_with(&SUBJECT_TAG, &cipher, plaintext)
    }

    /// Whether `sealed` was sealed with a person's own key rather than a configured one.
    pub fn is_subject_sealed(sealed: &Sealed) -> bool {
        sealed.0.starts_with(&SUBJECT_TAG)
    }

    /// Opens what [`Pii::seal_for_subject`] sealed with `key`.
    pub fn open_for_subject(key: &[u8; 32], sealed: &Sealed) -> Result<String, PiiError> {
        let cipher = Aes256Gcm::new_from_slice(key).expect("32 bytes");
        open_with(sealed, |kid| (kid == SUBJECT_TAG).then_some(&cipher))
    }

    /// Whether `sealed` was sealed with the current key (not a previous one).
    pub fn is_current(&self, sealed: &Sealed) -> bool {
        sealed.0.starts_with(&self.current.0)
    }

    pub fn open(&self, sealed: &Sealed) -> Result<String, PiiError> {
        open_with(sealed, |kid| {
            std::iter::once(&self.current)
                .chain(&self.previous)
                .find(|(k, _)| k == kid)
                .map(|(_, c)| c)
        })
    }
}

fn seal_with(kid: &[u8; KID_LEN], cipher: &Aes256Gcm, plaintext: &str) -> Sealed {
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    let ct = cipher
        .encrypt(&Nonce::from(nonce_bytes), plaintext.as_bytes())
        .expect("AES-GCM encryption of an in-memory buffer does not fail");
    let mut out = Vec::with_capacity(KID_LEN + NONCE_LEN + ct.len());
    out.extend_from_slice(kid);
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&ct);
    Sealed(out)
}

/// Opens `sealed` with the cipher `find` gives for its key id.
fn open_with<'a>(
    sealed: &Sealed,
    find: impl FnOnce(&[u8]) -> Option<&'a Aes256Gcm>,
) -> Result<String, PiiError> {
    let b = &sealed.0;
    if b.len() < KID_LEN + NONCE_LEN {
        return Err(PiiError::Corrupt);
    }
    let (kid, rest) = b.split_at(KID_LEN);
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    let cipher = find(kid).ok_or(PiiError::UnknownKey)?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| PiiError::Corrupt)?;
    let pt = cipher
        .decrypt(&Nonce::from(nonce), ct)
        .map_err(|_| PiiError::Corrupt)?;
    String::from_utf8(pt).map_err(|_| PiiError::Corrupt)
}

impl Pii {
    /// A keyed, deterministic index of `value` (hex), for lookups without the value in clear.
    pub fn blind_index(&self, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.index_key).expect("32 bytes");
        mac.update(value.as_bytes());
        crate::auth::tokens::hex(&mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_without_plaintext_in_the_output() {
        let pii = Pii::new(&[7; 32], &[], None).unwrap();
        let s = pii.seal("홍길동, 010-1234-5678");
        assert!(!String::from_utf8_lossy(&s.0).contains("010-1234"));
        assert_eq!(pii.open(&s).unwrap(), "홍길동, 010-1234-5678");
        assert_ne!(pii.seal("x").0, pii.seal("x").0, "fresh nonce every time");
    }

    #[test]
    fn a_rotated_key_still_opens_old_data_and_keeps_the_index() {
        let old = Pii::new(&[1; 32], &[], Some(&[9; 32])).unwrap();
        let sealed = old.seal("Seoul");
        let new = Pii::new(&[2; 32], &[vec![1; 32]], Some(&[9; 32])).unwrap();
        assert_eq!(new.open(&sealed).unwrap(), "Seoul");
        assert_eq!(old.blind_index("a@b.c"), new.blind_index("a@b.c"));
        let stranger = Pii::new(&[3; 32], &[], None).unwrap();
        assert!(matches!(stranger.open(&sealed), Err(PiiError::UnknownKey)));
    }

    #[test]
    fn tampering_is_detected() {
        let pii = Pii::new(&[7; 32], &[], None).unwrap();
        let mut s = pii.seal("secret");
        let last = s.0.len() - 1;
        s.0[last] ^= 1;
        assert!(matches!(pii.open(&s), Err(PiiError::Corrupt)));
        assert!(Pii::new(&[0; 31], &[], None).is_err());
    }
}
