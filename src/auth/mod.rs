//! Security primitives of the accounts feature, each behind a small type the edge uses:
//! [`password`] (Argon2id, off the async workers), [`tokens`] (JWT access tokens and opaque
//! refresh tokens), [`pii`] (AES-256-GCM sealing of personal data with key ids, and blind
//! indexes), [`revocation`] (the durable deny-list of access tokens), [`limits`] (per-IP rate
//! limits), and [`accounts`], the sign-up/login/refresh flows that tie them to the entities.

pub mod accounts;
pub mod limits;
pub mod password;
pub mod pii;
pub mod revocation;
pub mod tokens;
