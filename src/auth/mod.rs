//! Security primitives of the accounts feature, each behind a small type the edge uses:
//! [`password`] (Argon2id, off the async workers), [`tokens`] (JWT access tokens and opaque
//! refresh tokens), [`pii`] (AES-256-GCM sealing of personal data with key ids, and blind
//! indexes), [`revocation`] (the durable deny-list of access tokens), [`secrets`] (the node's
//! keys, from settings or, in dev mode, the data dir), and the flows that tie them to the
//! entities: [`accounts`] (sign-up, verification, profile, deletion) and [`sessions`] (login,
//! refresh rotation, logout). The per-IP limit of the auth routes is a `crate::limits`.

pub mod accounts;
pub mod key_check;
pub mod password;
pub mod pii;
pub mod revocation;
pub mod secrets;
pub mod sessions;
pub mod tokens;
pub mod vault;
