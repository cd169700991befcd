//! [`Sealed`]: personal data as the domain holds it — encrypted by the edge (`crate::auth::pii`)
//! before it reaches an entity, so no rule and no journal ever sees the plaintext.

use serde::{Deserialize, Serialize};

/// Ciphertext of one personal field (key id, nonce, AES-GCM output), opaque here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed(#[serde(with = "serde_bytes")] pub Vec<u8>);
