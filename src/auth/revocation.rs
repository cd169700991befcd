//! The deny-list of access tokens: a single token (by `jti`), every token of a session (by
//! `sid`, the refresh family: logout and refresh-token reuse end the session and every access
//! token issued in it), each until it would have expired anyway; and every token of a deleted
//! account (issued at or before the deletion).
//! Checked on every authenticated request from memory; written through before the revoking
//! request is answered, so a restart does not un-revoke: to a sled tree (flushed) on one node,
//! to Redis in a cluster (hash `revoked`, fsynced with `appendfsync always`), where every node
//! hears it on the `revoked` channel and also rereads the hash every few seconds (a message
//! missed while disconnected is caught up). Whoever listens ([`Revocations::on_revoked`]: the
//! EventBus's `revoked:{user}` topic, which closes the user's sockets) hears of a revocation
//! once it is in this node's list, whichever node wrote it.

use crate::auth::tokens::Claims;
use crate::persistence::sled_sync::SyncedDb;
use dashmap::DashMap;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Revocations {
    store: Store,
    tokens: DashMap<String, i64>,
    sessions: DashMap<String, i64>,
    users: DashMap<String, i64>,
    /// Told the user of each revocation once it is in the list.
    listener: std::sync::OnceLock<Listener>,
}

/// Told the user of a revocation, or `None` when it is not known whose it is.
type Listener = Box<dyn Fn(Option<&str>) + Send + Sync>;

/// What a revocation read from the store was to this node's list.
#[derive(Debug, PartialEq, Eq)]
enum Learned {
    /// Known already, or expired.
    Nothing,
    /// A user's revocation, new here.
    User(String),
    /// A token's or session's, new here: the hash does not say whose.
    Unattributed,
}

/// Where revocations are kept.
enum Store {
    Sled { db: SyncedDb, tree: sled::Tree },
    Redis(ConnectionManager),
}

type Messages = std::pin::Pin<Box<dyn futures_util::Stream<Item = redis::Msg> + Send>>;

/// The `revoked` channel's messages.
async fn subscribe(client: &redis::Client) -> anyhow::Result<Messages> {
    // Bounded: a Redis that does not answer must not hold up the rereads.
    let subscribed = tokio::time::timeout(Duration::from_secs(2), async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(REDIS_KEY).await?;
        redis::RedisResult::Ok(pubsub)
    });
    Ok(Box::pin(subscribed.await??.into_on_message()))
}

/// The Redis hash of every revocation (`t:jti` / `u:user` -> Unix seconds) and the channel
/// each new one is published on.
const REDIS_KEY: &str = "revoked";
/// How often a cluster node rereads the hash.
const REREAD: Duration = Duration::from_secs(5);
/// How long a token's or session's entry is kept past its time (the `exp` of the last token it
/// revokes): past the verifier's 5 s leeway and the nodes' clock skew, none of its tokens can
/// be taken any more.
const KEEP_PAST_SECS: i64 = 60;

/// Whether a token's or session's entry `key` with time `at` is no longer needed at `now_secs`
/// (a user's entry is kept: it revokes by issue time).
fn lapsed(key: &str, at: i64, now_secs: i64) -> bool {
    (key.starts_with("t:") || key.starts_with("s:")) && past(at, now_secs)
}

/// Whether a token's or session's entry with time `at` has been kept long enough.
fn past(at: i64, now_secs: i64) -> bool {
    at.saturating_add(KEEP_PAST_SECS) <= now_secs
}

impl Revocations {
    /// Loads the list, dropping the token and session entries lapsed by `now_secs`.
    pub fn open(db: &SyncedDb, now_secs: i64) -> anyhow::Result<Self> {
        let tree = db.open_tree("revocations")?;
        let this = Self {
            store: Store::Sled {
                db: db.clone(),
                tree: tree.clone(),
            },
            tokens: DashMap::new(),
            sessions: DashMap::new(),
            users: DashMap::new(),
            listener: std::sync::OnceLock::new(),
        };
        for kv in tree.iter() {
            let (k, v) = kv?;
            let at = i64::from_be_bytes(v.as_ref().try_into().unwrap_or_default());
            let key = String::from_utf8_lossy(&k);
            if lapsed(&key, at, now_secs) {
                tree.remove(&k)?;
            } else {
                this.remember(&key, at, now_secs);
            }
        }
        Ok(this)
    }

    /// A cluster node's list: read from Redis now, then kept current from the `revoked`
    /// channel and a reread every few seconds, until `shutdown`.
    pub async fn open_redis(
        client: &redis::Client,
        redis: ConnectionManager,
        now_secs: i64,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let this = Arc::new(Self {
            store: Store::Redis(redis),
            tokens: DashMap::new(),
            sessions: DashMap::new(),
            users: DashMap::new(),
            listener: std::sync::OnceLock::new(),
        });
        this.reread(now_secs).await?;
        let mut messages = Some(subscribe(client).await?);
        let (me, client) = (this.clone(), client.clone());
        tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut tick = tokio::time::interval(REREAD);
            loop {
                let next = async {
                    match messages.as_mut() {
                        Some(m) => m.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    message = next => match message {
                        Some(m) => {
                            let payload: String = m.get_payload().unwrap_or_default();
                            // `user key=at` (older nodes sent `key=at`).
                            let (user, entry) = payload.split_once(' ').unwrap_or(("", &payload));
                            if let Some((key, at)) = entry.rsplit_once('=') {
                                me.remember(key, at.parse().unwrap_or_default(), 0);
                                me.tell((!user.is_empty()).then_some(user));
                            }
                        }
                        // The subscription broke: the rereads keep the list current, and each
                        // tick subscribes again.
                        None => messages = None,
                    },
                    _ = tick.tick() => {
                        if messages.is_none() {
                            messages = subscribe(&client).await.ok();
                        }
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs() as i64);
                        if let Err(e) = me.reread(now).await {
                            tracing::warn!(error = %e, "cannot reread the revocations");
                        }
                    }
                }
            }
        });
        Ok(this)
    }

    /// Reads the Redis hash into memory.
    async fn reread(&self, now_secs: i64) -> anyhow::Result<()> {
        let Store::Redis(redis) = &self.store else {
            return Ok(());
        };
        let all: Vec<(String, i64)> = redis::cmd("HGETALL")
            .arg(REDIS_KEY)
            .query_async(&mut redis.clone())
            .await?;
        // Revocations not heard on the channel: the sockets of their users re-check now, every
        // socket when one is a token's or a session's (the hash does not say whose).
        let mut unattributed = false;
        let mut gone = Vec::new();
        for (key, at) in all {
            if lapsed(&key, at, now_secs) {
                gone.push(key);
                continue;
            }
            match self.remember(&key, at, now_secs) {
                Learned::User(user) => self.tell(Some(&user)),
                Learned::Unattributed => unattributed = true,
                Learned::Nothing => {}
            }
        }
        if unattributed {
            self.tell(None);
        }
        // Lapsed entries leave the hash (any node may; deleting twice is harmless) and the
        // list, so neither grows with every logout there ever was.
        self.forget_lapsed(now_secs);
        if !gone.is_empty() {
            let () = redis::cmd("HDEL")
                .arg(REDIS_KEY)
                .arg(&gone)
                .query_async(&mut redis.clone())
                .await?;
        }
        Ok(())
    }

    /// Drops the token and session entries lapsed by `now_secs` from memory.
    fn forget_lapsed(&self, now_secs: i64) {
        self.tokens.retain(|_, at| !past(*at, now_secs));
        self.sessions.retain(|_, at| !past(*at, now_secs));
    }

    /// Notes one entry (`t:jti`, `s:sid` or `u:user`); token and session entries lapsed by
    /// `now_secs` are skipped. What it was to this node's list.
    fn remember(&self, key: &str, at: i64, now_secs: i64) -> Learned {
        let new = |map: &DashMap<String, i64>, k: &str| map.insert(k.to_string(), at) != Some(at);
        if lapsed(key, at, now_secs) {
            return Learned::Nothing;
        }
        if let Some(jti) = key.strip_prefix("t:") {
            if new(&self.tokens, jti) {
                return Learned::Unattributed;
            }
        } else if let Some(sid) = key.strip_prefix("s:") {
            if new(&self.sessions, sid) {
                return Learned::Unattributed;
            }
        } else if let Some(user) = key.strip_prefix("u:")
            && new(&self.users, user)
        {
            return Learned::User(user.to_string());
        }
        Learned::Nothing
    }

    /// Calls `listener` with the user of every revocation from now on, once it is in this
    /// node's list, or with `None` when it cannot say whose (a token's or session's revocation
    /// another node wrote that reached this one by a reread, not by the channel); set once.
    pub fn on_revoked(&self, listener: impl Fn(Option<&str>) + Send + Sync + 'static) {
        let _ = self.listener.set(Box::new(listener));
    }

    fn tell(&self, user: Option<&str>) {
        if let Some(listener) = self.listener.get() {
            listener(user);
        }
    }

    /// Revokes one access token until its expiry; durable when this returns.
    pub async fn revoke_token(&self, claims: &Claims) -> anyhow::Result<()> {
        self.write(format!("t:{}", claims.jti), claims.exp, &claims.sub)
            .await?;
        self.tokens.insert(claims.jti.clone(), claims.exp);
        self.tell(Some(&claims.sub));
        Ok(())
    }

    /// Revokes every access token issued in session `sid` of `user`; `until_secs` is when the
    /// last of them would have expired. Durable when this returns.
    pub async fn revoke_session(
        &self,
        user: &str,
        sid: &str,
        until_secs: i64,
    ) -> anyhow::Result<()> {
        self.write(format!("s:{sid}"), until_secs, user).await?;
        self.sessions.insert(sid.to_string(), until_secs);
        self.tell(Some(user));
        Ok(())
    }

    /// Revokes every token of `user` issued at or before `at_secs`; durable when this returns.
    pub async fn revoke_user(&self, user: &str, at_secs: i64) -> anyhow::Result<()> {
        self.write(format!("u:{user}"), at_secs, user).await?;
        self.users.insert(user.to_string(), at_secs);
        self.tell(Some(user));
        Ok(())
    }

    /// Whether the token is revoked. A principal without a `jti` (the operator's token, a
    /// setting) is never: an empty `t:` entry (written by an operator's logout before it was
    /// refused) must not match it.
    pub fn is_revoked(&self, claims: &Claims) -> bool {
        (!claims.is_operator_token() && self.tokens.contains_key(&claims.jti))
            || (!claims.sid.is_empty() && self.sessions.contains_key(&claims.sid))
            || self
                .users
                .get(&claims.sub)
                .is_some_and(|at| claims.iat <= *at)
    }

    async fn write(&self, key: String, value: i64, user: &str) -> anyhow::Result<()> {
        match &self.store {
            Store::Sled { db, tree } => {
                tree.insert(key.as_bytes(), &value.to_be_bytes())?;
                db.flush_async().await?;
            }
            Store::Redis(redis) => {
                let mut redis = redis.clone();
                let () = redis::pipe()
                    .atomic()
                    .hset(REDIS_KEY, &key, value)
                    .ignore()
                    .publish(REDIS_KEY, format!("{user} {key}={value}"))
                    .ignore()
                    .query_async(&mut redis)
                    .await?;
            }
        }
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
            sid: format!("sid-{jti}"),
            roles: vec![],
            iat,
            exp,
        }
    }

    #[tokio::test]
    async fn revocations_survive_reopening_and_expired_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = SyncedDb::open(dir.path()).unwrap();
            let r = Revocations::open(&db, 1000).unwrap();
            r.revoke_token(&claims("a", "u1", 900, 2000)).await.unwrap();
            r.revoke_token(&claims("b", "u1", 900, 1500)).await.unwrap();
            r.revoke_user("u2", 1200).await.unwrap();
        }
        let reopened = crate::persistence::sled_open::open_waiting(dir.path()).unwrap();
        let db = SyncedDb::new(reopened, dir.path()).unwrap();
        let r = Revocations::open(&db, 1600).unwrap();
        assert!(r.is_revoked(&claims("a", "u1", 900, 2000)));
        assert!(!r.tokens.contains_key("b"), "expired entries are pruned");
        assert!(r.is_revoked(&claims("c", "u2", 1200, 2200)));
        assert!(!r.is_revoked(&claims("d", "u2", 1201, 2200)));
        assert!(!r.is_revoked(&claims("e", "u3", 1200, 2200)));
    }

    #[test]
    fn a_reread_entry_is_new_to_the_list_once_and_says_whose_only_for_a_user() {
        // Given a list that knows one session's revocation
        let dir = tempfile::tempdir().unwrap();
        let db = SyncedDb::open(dir.path()).unwrap();
        let r = Revocations::open(&db, 1000).unwrap();
        assert_eq!(r.remember("s:known", 2000, 1000), Learned::Unattributed);
        // When entries are read again from the store
        // Then one already known, or expired, is nothing new
        assert_eq!(r.remember("s:known", 2000, 1000), Learned::Nothing);
        assert_eq!(r.remember("t:old", 900, 1000), Learned::Nothing);
        // And a new token's or session's cannot say whose; a new user's can, once
        assert_eq!(r.remember("t:jti", 2000, 1000), Learned::Unattributed);
        assert_eq!(r.remember("u:u7", 1500, 1000), Learned::User("u7".into()));
        assert_eq!(r.remember("u:u7", 1500, 1000), Learned::Nothing);
        assert!(r.is_revoked(&claims("jti", "u1", 900, 2000)));
        // And once lapsed, token and session entries are forgotten, a user's never
        r.forget_lapsed(2000 + KEEP_PAST_SECS);
        assert!(r.tokens.is_empty() && r.sessions.is_empty());
        assert!(!lapsed("u:u7", 1500, i64::MAX));
        assert!(r.is_revoked(&claims("any", "u7", 1400, i64::MAX)));
    }

    #[tokio::test]
    async fn a_revoked_session_revokes_every_token_issued_in_it_across_a_restart() {
        // Given two tokens of one session and one of another
        let dir = tempfile::tempdir().unwrap();
        let in_session = |jti: &str, sid: &str| Claims {
            sid: sid.into(),
            ..claims(jti, "u1", 900, 2000)
        };
        // When the session is revoked and the list reopened
        {
            let db = SyncedDb::open(dir.path()).unwrap();
            let r = Revocations::open(&db, 1000).unwrap();
            r.revoke_session("u1", "fam1", 2000).await.unwrap();
            assert!(r.is_revoked(&in_session("a", "fam1")));
        }
        let reopened = crate::persistence::sled_open::open_waiting(dir.path()).unwrap();
        let db = SyncedDb::new(reopened, dir.path()).unwrap();
        let r = Revocations::open(&db, 1500).unwrap();
        // Then both of its tokens are refused, the other session's is not
        assert!(r.is_revoked(&in_session("a", "fam1")));
        assert!(r.is_revoked(&in_session("b", "fam1")));
        assert!(!r.is_revoked(&in_session("c", "fam2")));
        // And the entry is dropped a minute after its tokens would have expired (their leeway
        // and the nodes' clock skew), not before
        drop(r);
        let r = Revocations::open(&db, 2000).unwrap();
        assert!(r.is_revoked(&in_session("a", "fam1")));
        drop(r);
        let r = Revocations::open(&db, 2000 + KEEP_PAST_SECS).unwrap();
        assert!(r.sessions.is_empty());
    }
}
