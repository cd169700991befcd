//! Each person's own data key, so erasing a person erases their data everywhere at once
//! (crypto-shredding): profile fields, the email address and every order's shipping address
//! are sealed with the key of the person they belong to ([`Vault::seal`]); `DELETE /users/me`
//! destroys the key ([`Vault::erase`]), and every copy — journals, snapshots, views, another
//! node's memory — becomes unreadable, without rewriting any event.
//!
//! Keys are random (32 bytes), kept wrapped by the configured PII key, one per person, in a
//! store that is not a journal so a key can really be deleted: a sled tree (flushed) on one
//! node, the Redis hash `pii:keys` in a cluster. An erased key leaves a tombstone, so nothing
//! can be sealed for that person again. A key is created, durably, the first time something is
//! sealed for its person. Keys in use are cached in memory (raw, 32 bytes each, bounded); a
//! cluster node forgets an erased person's key when it hears the erasure (the account's
//! revocation, see `crate::auth::revocation`).
//!
//! Data sealed before per-person keys (with the configured key) still opens while the person
//! exists; once erased, their reads answer nothing, though that ciphertext is not destroyed.

#[cfg(doc)]
use crate::auth::key_check::KeyMismatch;
use crate::auth::key_check::{self, Verdict};
use crate::auth::pii::Pii;
use crate::domain::ids::UserId;
use crate::domain::sealed::Sealed;
use crate::persistence::sled_sync::SyncedDb;
use base64::Engine;
use dashmap::DashMap;
use redis::aio::ConnectionManager;

/// Keys kept in memory at most; past it the cache starts over (a miss costs one store read).
const CACHE_MAX: usize = 100_000;
/// The Redis hash of wrapped keys (person -> wrapped key; empty once erased).
const REDIS_KEY: &str = "pii:keys";

/// Where wrapped keys are kept.
pub enum VaultStore {
    Sled { db: SyncedDb, tree: sled::Tree },
    Redis(ConnectionManager),
}

impl VaultStore {
    pub fn sled(db: &SyncedDb) -> anyhow::Result<Self> {
        Ok(Self::Sled {
            db: db.clone(),
            tree: db.open_tree("pii-keys")?,
        })
    }
}

/// A person's key as stored: live, or erased (a tombstone).
type Slot = Option<[u8; 32]>;

pub struct Vault {
    store: VaultStore,
    pii: Pii,
    cache: DashMap<String, Slot>,
    /// Bumped by every erasure and every [`Vault::forget`]: a store read that started before
    /// one is not cached (it may hold a key erased meanwhile).
    erasures: std::sync::atomic::AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the person's data was erased")]
    Erased,
    #[error("the key store: {0}")]
    Store(String),
}

fn store_error(e: impl std::fmt::Display) -> VaultError {
    VaultError::Store(e.to_string())
}

impl Vault {
    pub fn new(store: VaultStore, pii: Pii) -> Self {
        Self {
            store,
            pii,
            cache: DashMap::new(),
            erasures: Default::default(),
        }
    }

    /// Whether `person` was erased (their data no longer opens).
    pub async fn is_erased(&self, person: &UserId) -> Result<bool, VaultError> {
        Ok(matches!(self.slot(person, false).await?, Some(None)))
    }

    /// Seals `plaintext` as `person`'s data (creating their key, durably, if need be).
    /// Errors: [`VaultError::Erased`] for an erased person, or the store's failure.
    pub async fn seal(&self, person: &UserId, plaintext: &str) -> Result<Sealed, VaultError> {
        let slot = self.slot(person, true).await?.flatten();
        let key = slot.ok_or(VaultError::Erased)?;
        Ok(Pii::seal_for_subject(&key, plaintext))
    }

    /// Opens `person`'s sealed data; `None` when nothing is there (empty) or the person was
    /// erased, or when it does not open (a wrong key, tampering: logged).
    pub async fn open(
        &self,
        person: &UserId,
        sealed: &Sealed,
    ) -> Result<Option<String>, VaultError> {
        if sealed.0.is_empty() {
            return Ok(None);
        }
        let opened = match self.slot(person, false).await? {
            Some(None) => return Ok(None), // erased
            Some(Some(key)) if Pii::is_subject_sealed(sealed) => {
                Pii::open_for_subject(&key, sealed)
            }
            // Sealed before per-person keys, with the configured key.
            _ => self.pii.open(sealed),
        };
        Ok(opened
            .inspect_err(|e| tracing::warn!(%person, error = %e, "sealed data does not open"))
            .ok())
    }

    /// [`Vault::open`] of an optional field.
    pub async fn open_field(
        &self,
        person: &UserId,
        field: &Option<Sealed>,
    ) -> Result<Option<String>, VaultError> {
        match field {
            Some(sealed) => self.open(person, sealed).await,
            None => Ok(None),
        }
    }

    /// Destroys `person`'s key: durable when this returns.
    pub async fn erase(&self, person: &UserId) -> Result<(), VaultError> {
        match &self.store {
            VaultStore::Sled { db, tree } => {
                tree.insert(person.as_str(), &[][..]).map_err(store_error)?;
                db.flush_async().await.map_err(store_error)?;
            }
            VaultStore::Redis(redis) => {
                let () = redis::cmd("HSET")
                    .arg(REDIS_KEY)
                    .arg(person.as_str())
                    .arg("")
                    .query_async(&mut redis.clone())
                    .await
                    .map_err(store_error)?;
            }
        }
        self.erasures
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.cache.insert(person.to_string(), None);
        Ok(())
    }

    /// Drops `person`'s cached key (another node may have erased it).
    pub fn forget(&self, person: &str) {
        self.erasures
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.cache.remove(person);
    }

    /// The person's slot (their key, or the tombstone of an erased one); `None` when no key
    /// was ever made and `create` is false.
    async fn slot(&self, person: &UserId, create: bool) -> Result<Option<Slot>, VaultError> {
        if let Some(slot) = self.cache.get(person.as_str()) {
            return Ok(Some(*slot));
        }
        let erasures = self.erasures.load(std::sync::atomic::Ordering::SeqCst);
        let slot = match self.read(person.as_str()).await? {
            Some(stored) => self.unwrap(&stored)?,
            None if create => {
                let fresh: [u8; 32] = rand::random();
                let wrapped = self.wrap(&fresh);
                // Of two first seals at once, the first stored key wins.
                let stored = self.create(person.as_str(), wrapped).await?;
                self.unwrap(&stored)?
            }
            None => return Ok(None),
        };
        // An erasure while this read was out may have been of this person: then the read is
        // answered but not cached.
        if self.erasures.load(std::sync::atomic::Ordering::SeqCst) == erasures {
            if self.cache.len() >= CACHE_MAX {
                self.cache.clear();
            }
            self.cache.insert(person.to_string(), slot);
        }
        Ok(Some(slot))
    }

    fn wrap(&self, key: &[u8; 32]) -> Vec<u8> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(key);
        self.pii.seal(&encoded).0
    }

    /// A stored value as a slot: empty is a tombstone.
    fn unwrap(&self, stored: &[u8]) -> Result<Slot, VaultError> {
        if stored.is_empty() {
            return Ok(None);
        }
        let encoded = self
            .pii
            .open(&Sealed(stored.to_vec()))
            .map_err(store_error)?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(store_error)?;
        let key: [u8; 32] = raw
            .try_into()
            .map_err(|_| store_error("a stored key is not 32 bytes"))?;
        Ok(Some(key))
    }

    /// Refuses to go on with personal-data keys the stored data was not sealed or indexed
    /// with (`crate::auth::key_check`); writes the check when the store has none (a new
    /// store, or one made before the check, whose first wrapped key must then open).
    ///
    /// Errors: a [`KeyMismatch`] naming the key, or the store's failure.
    pub async fn check_keys(&self) -> anyhow::Result<()> {
        match self.read(key_check::SLOT).await? {
            Some(stored) => {
                if key_check::verify(&self.pii, &stored)? == Verdict::Rotated {
                    self.put(key_check::SLOT, key_check::record(&self.pii))
                        .await?;
                }
                Ok(())
            }
            None => {
                if let Some(wrapped) = self.any_wrapped().await? {
                    key_check::verify_wrapped(&self.pii, &wrapped)?;
                }
                let stored = self
                    .create(key_check::SLOT, key_check::record(&self.pii))
                    .await?;
                // Another node may have written it first, with its keys.
                key_check::verify(&self.pii, &stored)?;
                Ok(())
            }
        }
    }

    /// Some person's wrapped key (not a tombstone), if any is stored.
    async fn any_wrapped(&self) -> Result<Option<Vec<u8>>, VaultError> {
        match &self.store {
            VaultStore::Sled { tree, .. } => {
                for entry in tree.iter() {
                    let (slot, value) = entry.map_err(store_error)?;
                    if !value.is_empty() && &slot[..] != key_check::SLOT.as_bytes() {
                        return Ok(Some(value.to_vec()));
                    }
                }
                Ok(None)
            }
            VaultStore::Redis(redis) => {
                let mut redis = redis.clone();
                let mut cursor = 0u64;
                loop {
                    let (next, pairs): (u64, Vec<(String, Vec<u8>)>) = redis::cmd("HSCAN")
                        .arg(REDIS_KEY)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(100)
                        .query_async(&mut redis)
                        .await
                        .map_err(store_error)?;
                    let found = pairs
                        .into_iter()
                        .find(|(slot, value)| !value.is_empty() && slot != key_check::SLOT);
                    if let Some((_, value)) = found {
                        return Ok(Some(value));
                    }
                    if next == 0 {
                        return Ok(None);
                    }
                    cursor = next;
                }
            }
        }
    }

    /// Stores `value` under `slot`, replacing what is there: durable when this returns.
    async fn put(&self, slot: &str, value: Vec<u8>) -> Result<(), VaultError> {
        match &self.store {
            VaultStore::Sled { db, tree } => {
                tree.insert(slot, value).map_err(store_error)?;
                db.flush_async().await.map_err(store_error)?;
            }
            VaultStore::Redis(redis) => {
                let () = redis::cmd("HSET")
                    .arg(REDIS_KEY)
                    .arg(slot)
                    .arg(value)
                    .query_async(&mut redis.clone())
                    .await
                    .map_err(store_error)?;
            }
        }
        Ok(())
    }

    async fn read(&self, slot: &str) -> Result<Option<Vec<u8>>, VaultError> {
        match &self.store {
            VaultStore::Sled { tree, .. } => {
                Ok(tree.get(slot).map_err(store_error)?.map(|v| v.to_vec()))
            }
            VaultStore::Redis(redis) => redis::cmd("HGET")
                .arg(REDIS_KEY)
                .arg(slot)
                .query_async(&mut redis.clone())
                .await
                .map_err(store_error),
        }
    }

    /// Stores `wrapped` unless a key (or tombstone) is there; what is stored, durably.
    async fn create(&self, slot: &str, wrapped: Vec<u8>) -> Result<Vec<u8>, VaultError> {
        match &self.store {
            VaultStore::Sled { db, tree } => {
                let none: Option<&[u8]> = None;
                let stored = match tree
                    .compare_and_swap(slot, none, Some(wrapped.clone()))
                    .map_err(store_error)?
                {
                    Ok(()) => wrapped,
                    Err(taken) => taken.current.map(|v| v.to_vec()).unwrap_or_default(),
                };
                db.flush_async().await.map_err(store_error)?;
                Ok(stored)
            }
            VaultStore::Redis(redis) => {
                let mut redis = redis.clone();
                let (_, stored): (bool, Vec<u8>) = redis::pipe()
                    .atomic()
                    .cmd("HSETNX")
                    .arg(REDIS_KEY)
                    .arg(slot)
                    .arg(&wrapped)
                    .cmd("HGET")
                    .arg(REDIS_KEY)
                    .arg(slot)
                    .query_async(&mut redis)
                    .await
                    .map_err(store_error)?;
                Ok(stored)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(db: &SyncedDb) -> Vault {
        let pii = Pii::new(&[7; 32], &[], None).unwrap();
        Vault::new(VaultStore::sled(db).unwrap(), pii)
    }

    #[tokio::test]
    async fn erasing_a_person_makes_their_data_unreadable_for_good() {
        // Given data sealed for two people, and one sealed the old way (configured key)
        let dir = tempfile::tempdir().unwrap();
        let (kim, lee) = (UserId::parse("kim").unwrap(), UserId::parse("lee").unwrap());
        let (kims, lees, old) = {
            let db = SyncedDb::open(dir.path()).unwrap();
            let v = vault(&db);
            let kims = v.seal(&kim, "Kim, 010-1234-5678").await.unwrap();
            let lees = v.seal(&lee, "Lee, Busan").await.unwrap();
            assert!(!String::from_utf8_lossy(&kims.0).contains("010"));
            let old = v.pii.seal("Kim, old address");
            assert_eq!(
                v.open(&kim, &kims).await.unwrap().as_deref(),
                Some("Kim, 010-1234-5678")
            );
            assert_eq!(
                v.open(&kim, &old).await.unwrap().as_deref(),
                Some("Kim, old address")
            );
            // When Kim is erased
            v.erase(&kim).await.unwrap();
            (kims, lees, old)
        };
        // Then, after a restart too, Kim's data opens to nothing and nothing more is sealed
        let reopened = crate::persistence::sled_open::open_waiting(dir.path()).unwrap();
        let db = SyncedDb::new(reopened, dir.path()).unwrap();
        let v = vault(&db);
        assert_eq!(v.open(&kim, &kims).await.unwrap(), None);
        assert_eq!(v.open(&kim, &old).await.unwrap(), None);
        assert!(matches!(v.seal(&kim, "x").await, Err(VaultError::Erased)));
        // And Lee's is untouched
        assert_eq!(
            v.open(&lee, &lees).await.unwrap().as_deref(),
            Some("Lee, Busan")
        );
    }
}
