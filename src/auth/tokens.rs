//! Access tokens (HS256 JWT with `sub`, `jti`, `roles`, `iat`, `exp`) and opaque refresh tokens
//! (`user.family.secret`, stored only as the SHA-256 of the secret).

use crate::domain::ids::UserId;
use crate::domain::role::Role;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub jti: String,
    /// The refresh family (session) the token was issued in; logout revokes it.
    #[serde(default)]
    pub sid: String,
    pub roles: Vec<String>,
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.iter().any(|r| r == role.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    Invalid,
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl_secs: i64,
}

impl TokenKeys {
    pub fn new(secret: &[u8], access_ttl_secs: i64) -> Self {
        // Only HS256 is accepted: `alg: none` and algorithm swaps fail validation.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl_secs,
        }
    }

    /// A new access token for `user`, valid from `now_secs`.
    pub fn issue(
        &self,
        user: &UserId,
        roles: &BTreeSet<Role>,
        session: &str,
        now_secs: i64,
    ) -> anyhow::Result<(String, Claims)> {
        let claims = Claims {
            sub: user.to_string(),
            sid: session.to_string(),
            jti: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
            roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
            iat: now_secs,
            exp: now_secs + self.access_ttl_secs,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

/// A refresh token as presented by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub user: UserId,
    pub family: String,
    pub secret: String,
}

impl RefreshToken {
    pub fn new(user: &UserId, family: Option<&str>) -> Self {
        Self {
            user: user.clone(),
            family: family.map_or_else(
                || URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>()),
                str::to_string,
            ),
            secret: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()),
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let mut parts = raw.splitn(3, '.');
        let user = UserId::parse(parts.next()?).ok()?;
        let family = parts.next()?.to_string();
        let secret = parts.next()?.to_string();
        let b64 = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        (b64(&family) && b64(&secret)).then_some(Self {
            user,
            family,
            secret,
        })
    }

    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.user, self.family, self.secret)
    }

    /// What the account stores and compares: the SHA-256 of the secret.
    pub fn hash(&self) -> String {
        hex(&Sha256::digest(self.secret.as_bytes()))
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserId {
        UserId::parse("u1").unwrap()
    }

    #[test]
    fn issued_tokens_verify_and_carry_roles() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef", 900);
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let (token, claims) = keys
            .issue(&user(), &BTreeSet::from([Role::Admin]), "f", now)
            .unwrap();
        let back = keys.verify(&token).unwrap();
        assert_eq!(back.sub, "u1");
        assert_eq!(back.jti, claims.jti);
        assert!(back.has_role(Role::Admin) && !back.has_role(Role::Operator));
    }

    #[test]
    fn tampered_foreign_expired_and_unsigned_tokens_fail() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef", 900);
        let other = TokenKeys::new(b"another secret, another server!!", 900);
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let (token, _) = keys.issue(&user(), &BTreeSet::new(), "f", now).unwrap();
        let (foreign, _) = other.issue(&user(), &BTreeSet::new(), "f", now).unwrap();
        assert_eq!(keys.verify(&foreign).unwrap_err(), TokenError::Invalid);
        let mut tampered = token.clone();
        tampered.insert(tampered.len() / 2, 'A');
        assert_eq!(keys.verify(&tampered).unwrap_err(), TokenError::Invalid);
        let (old, _) = keys
            .issue(&user(), &BTreeSet::new(), "f", now - 3600)
            .unwrap();
        assert_eq!(keys.verify(&old).unwrap_err(), TokenError::Expired);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"u1","jti":"x","roles":["admin"],"iat":{now},"exp":{}}}"#,
            now + 900
        ));
        assert_eq!(
            keys.verify(&format!("{header}.{body}.")).unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn refresh_tokens_round_trip_and_reject_junk() {
        let t = RefreshToken::new(&user(), None);
        assert_eq!(RefreshToken::parse(&t.encode()), Some(t.clone()));
        assert_ne!(t.hash(), RefreshToken::new(&user(), Some(&t.family)).hash());
        for junk in ["", "a.b", "u1..x", "bad id.f.s", "u1.f.s;rm"] {
            assert!(RefreshToken::parse(junk).is_none(), "{junk}");
        }
    }
}
