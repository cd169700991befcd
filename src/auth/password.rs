//! Argon2id password hashing. Hashing is deliberately slow and takes `m_cost` KiB of memory, so
//! it runs on its own small pool of threads (`workers` of them), never on the async workers:
//! a burst of logins queues here instead of stalling other requests. A fixed set of threads
//! also keeps memory flat — on tokio's elastic blocking pool every new thread got its own
//! allocator arena and kept a copy of the 19 MiB working memory (6 GB after 400 sign-ups).

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce(&Params) + Send>;

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest password accepted (bounds hashing work).
pub const MAX_PASSWORD_CHARS: usize = 256;

#[derive(Clone)]
pub struct Passwords {
    /// The pool's queue; the worker threads end when the last `Passwords` is dropped.
    jobs: Sender<Job>,
    /// A hash of a random password, verified when the account does not exist so that the
    /// response time does not tell whether an email is registered. Made by the pool's first
    /// job, so start-up does not wait for it (a verification that needs it first waits).
    decoy: Arc<OnceLock<String>>,
}

impl Passwords {
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32, workers: usize) -> anyhow::Result<Self> {
        let params = Params::new(m_cost_kib, t_cost, p_cost, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..workers.max(1) {
            let (queue, params) = (queue.clone(), params.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || work(&queue, &params))?;
        }
        let passwords = Self {
            jobs,
            decoy: Arc::new(OnceLock::new()),
        };
        let decoy = passwords.decoy.clone();
        let _ = passwords.jobs.send(Box::new(move |params| {
            make_decoy(&decoy, params);
        }));
        Ok(passwords)
    }

    /// Runs `f` on the pool and waits for its result without blocking the async worker.
    async fn on_pool<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Params) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move |params| drop(tx.send(f(params)))))
            .map_err(|_| anyhow::anyhow!("the hashing pool stopped"))?;
        Ok(rx.await?)
    }

    pub async fn hash(&self, password: &SecretString) -> anyhow::Result<String> {
        let password = password.clone();
        self.on_pool(move |params| hash_with(params, password.expose_secret()))
            .await?
    }

    /// Whether `password` matches `phc`; with `None`, spends the same time and says no.
    pub async fn verify(&self, password: &SecretString, phc: Option<String>) -> bool {
        let known = phc.is_some();
        let decoy = self.decoy.clone();
        let password = password.clone();
        let ok = self
            .on_pool(move |params| {
                let phc = phc.as_deref().unwrap_or_else(|| make_decoy(&decoy, params));
                PasswordHash::new(phc).is_ok_and(|parsed| {
                    Argon2::default()
                        .verify_password(password.expose_secret().as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await
            .unwrap_or(false);
        ok && known
    }
}

/// The decoy hash, made once (by whichever pool thread gets there first).
fn make_decoy<'a>(decoy: &'a OnceLock<String>, params: &Params) -> &'a str {
    decoy.get_or_init(|| {
        hash_with(params, &rand::random::<u64>().to_string()).unwrap_or_else(|e| {
            // Every password hash would fail the same way: logins are failing anyway.
            tracing::error!(error = %format!("{e:#}"), "cannot make the login decoy hash");
            String::new()
        })
    })
}

/// A pool thread: takes jobs until every `Passwords` (the queue's senders) is gone.
fn work(queue: &Mutex<Receiver<Job>>, params: &Params) {
    loop {
        let job = match queue.lock() {
            Ok(q) => q.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(params),
            Err(_) => return,
        }
    }
}

fn hash_with(params: &Params, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
}

/// Whether a password is acceptable; the reason when it is not.
pub fn check_strength(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!(
            "a password has at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(format!(
            "a password has at most {MAX_PASSWORD_CHARS} characters"
        ));
    }
    if is_repetitive_or_sequential(password) {
        return Err("a password is not one character repeated or a run such as 1234567890".into());
    }
    Ok(())
}

/// One character repeated (`aaaaaaaaaa`, ten spaces) or a run one step apart throughout
/// (`1234567890` wraps 9 to 0 as keyboards do; `abcdefghij`, `jihgfedcba`): NIST SP 800-63B,
/// 5.1.1.2, has verifiers refuse "repetitive or sequential characters".
fn is_repetitive_or_sequential(password: &str) -> bool {
    let steps: Vec<i64> = password
        .chars()
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| match (w[0], w[1]) {
            ('9', '0') => 1,
            ('0', '9') => -1,
            (a, b) => i64::from(u32::from(b)) - i64::from(u32::from(a)),
        })
        .collect();
    let first = steps.first().copied().unwrap_or(0);
    [-1, 0, 1].contains(&first) && steps.iter().all(|s| *s == first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let p = Passwords::new(1024, 1, 1, 2).unwrap();
        let secret = SecretString::from("correct horse battery");
        let phc = p.hash(&secret).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(p.verify(&secret, Some(phc.clone())).await);
        assert!(
            !p.verify(&SecretString::from("wrong password!"), Some(phc))
                .await
        );
        assert!(!p.verify(&secret, None).await, "no account, no match");
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert!(check_strength("short").is_err());
        assert!(check_strength(&"x".repeat(257)).is_err());
        assert!(check_strength("long enough pw").is_ok());
        // Repetitive or sequential throughout (NIST SP 800-63B, 5.1.1.2) is refused
        for weak in [
            "          ",
            "aaaaaaaaaaaa",
            "1234567890",
            "0987654321",
            "abcdefghijk",
        ] {
            assert!(check_strength(weak).is_err(), "{weak:?}");
        }
        // But a run inside a longer password is not
        assert!(check_strength("1234567890x").is_ok());
        assert!(check_strength("aaaaaaaaab").is_ok());
        assert!(
            check_strength("비밀번호는열글자이상").is_ok(),
            "counted in characters"
        );
    }
}
