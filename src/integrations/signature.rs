//! HMAC-SHA256 signatures of callback bodies (payment webhooks, carrier callbacks): hex in a
//! header, compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header a signature travels in.
pub const HEADER: &str = "x-emporium-signature";

/// Hex HMAC-SHA256 of `body` under `key`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    crate::auth::tokens::hex(&mac.finalize().into_bytes())
}

/// Whether `signature` (hex) is the HMAC of `body` under `key`.
pub fn verify(key: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(bytes) = decode_hex(signature.trim()) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_and_key() {
        let sig = sign(b"k", b"{\"a\":1}");
        assert!(verify(b"k", b"{\"a\":1}", &sig));
        assert!(!verify(b"k", b"{\"a\":2}", &sig));
        assert!(!verify(b"other", b"{\"a\":1}", &sig));
        assert!(!verify(b"k", b"{\"a\":1}", "zz"));
    }
}
