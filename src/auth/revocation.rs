//! The deny-list of access tokens: a token revoked by logout (by `jti`, until it would have
//! expired anyway) and every token of a deleted account (issued at or before the deletion).
//! Checked on every authenticated request from memory; written through to a sled tree and
//! flushed before the revoking request is answered, so a restart does not un-revoke.

use crate::auth::tokens::Claims;
use dashmap::DashMap;

pub struct Revocations {
    db: sled::Db,
    tree: sled::Tree,
    tokens: DashMap<String, i64>,
    users: DashMap<String, i64>,
}

impl Revocations {
    /// Loads the list, dropping token entries that have expired by `now_secs`.
    pub fn open(db: &sled::Db, now_secs: i64) -> anyhow::Result<Self> {
        let tree = db.open_tree("revocations")?;
        let (tokens, users) = (DashMap::new(), DashMap::new());
        for kv in tree.iter() {
            let (k, v) = kv?;
            let at = i64::from_be_bytes(v.as_ref().try_into().unwrap_or_default());
            let key = String::from_utf8_lossy(&k).into_owned();
            if let Some(jti) = key.strip_prefix("t:") {
                if at > now_secs {
                    tokens.insert(jti.to_string(), at);
                } else {
                    tree.remove(&k)?;
                }
            } else if let Some(user) = key.strip_prefix("u:") {
                users.insert(user.to_string(), at);
            }
        }
        Ok(Self {
            db: db.clone(),
            tree,
            tokens,
            users,
        })
    }

    /// Revokes one access token until its expiry; durable when this returns.
    pub async fn revoke_token(&self, claims: &Claims) -> anyhow::Result<()> {
        self.write(format!("t:{}", claims.jti), claims.exp).await?;
        self.tokens.insert(claims.jti.clone(), claims.exp);
        Ok(())
    }

    /// Revokes every token of `user` issued at or before `at_secs`; durable when this returns.
    pub async fn revoke_user(&self, user: &str, at_secs: i64) -> anyhow::Result<()> {
        self.write(format!("u:{user}"), at_secs).await?;
        self.users.insert(user.to_string(), at_secs);
        Ok(())
    }

    pub fn is_revoked(&self, claims: &Claims) -> bool {
        self.tokens.contains_key(&claims.jti)
            || self
                .users
                .get(&claims.sub)
                .is_some_and(|at| claims.iat <= *at)
    }

    async fn write(&self, key: String, value: i64) -> anyhow::Result<()> {
        self.tree.insert(key.as_bytes(), &value.to_be_bytes())?;
        self.db.flush_async().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: &str, sub: &str, iat: i64, exp: i64) -> Claims {
        Claims {
            sub: sub.into(),
            jti: jti.into(),
            sid: String::new(),
            roles: vec![],
            iat,
            exp,
        }
    }

    #[tokio::test]
    async fn revocations_survive_reopening_and_expired_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let r = Revocations::open(&db, 1000).unwrap();
            r.revoke_token(&claims("a", "u1", 900, 2000)).await.unwrap();
            r.revoke_token(&claims("b", "u1", 900, 1500)).await.unwrap();
            r.revoke_user("u2", 1200).await.unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        let r = Revocations::open(&db, 1600).unwrap();
        assert!(r.is_revoked(&claims("a", "u1", 900, 2000)));
        assert!(!r.tokens.contains_key("b"), "expired entries are pruned");
        assert!(r.is_revoked(&claims("c", "u2", 1200, 2200)));
        assert!(!r.is_revoked(&claims("d", "u2", 1201, 2200)));
        assert!(!r.is_revoked(&claims("e", "u3", 1200, 2200)));
    }
}
