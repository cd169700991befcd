//! The node's secrets: the JWT signing secret, the personal-data keys and the operator token.
//! Each comes from settings; in dev mode a missing one is generated once into the data dir
//! (mode 0600, kept across restarts); outside dev mode a missing required one stops start-up
//! with a message naming its variable. Secrets stay wrapped (`SecretString`) and never print.

use crate::auth::pii::Pii;
use crate::config::Settings;
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use std::path::Path;

/// What the account services sign and seal with.
pub struct AccountKeys {
    /// Signs access tokens (HS256); at least 32 bytes.
    pub jwt_secret: SecretString,
    /// Seals personal data (AES-256-GCM; older keys only open) and keys email lookups.
    pub pii: Pii,
}

/// The JWT secret and the personal-data keys from settings (or, in dev mode, the data dir).
pub fn account_keys(settings: &Settings, data_dir: &Path) -> anyhow::Result<AccountKeys> {
    let a = &settings.auth;
    let jwt = secret(
        settings,
        data_dir,
        a.jwt_secret.as_ref(),
        "EMPORIUM_JWT_SECRET",
        "dev-jwt-secret",
        48,
    )?;
    if jwt.len() < 32 {
        anyhow::bail!("EMPORIUM_JWT_SECRET must be at least 32 bytes");
    }
    let pii_key = secret(
        settings,
        data_dir,
        a.pii_key.as_ref(),
        "EMPORIUM_PII_KEY",
        "dev-pii-key",
        32,
    )?;
    let decode = |what: &str, b64: &str| -> anyhow::Result<Vec<u8>> {
        let key = STANDARD
            .decode(b64.trim())
            .or_else(|_| URL_SAFE_NO_PAD.decode(b64.trim()))
            .map_err(|_| anyhow::anyhow!("{what} must be base64"))?;
        Ok(key)
    };
    let current = decode("EMPORIUM_PII_KEY", &pii_key)?;
    let previous = match &a.pii_previous_keys {
        Some(keys) => keys
            .expose_secret()
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(|k| decode("auth.pii_previous_keys", k))
            .collect::<anyhow::Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let index_key = match &a.index_key {
        Some(k) => Some(decode("auth.index_key", k.expose_secret())?),
        None => None,
    };
    let pii = Pii::new(&current, &previous, index_key.as_deref())
        .map_err(|e| anyhow::anyhow!("EMPORIUM_PII_KEY: {e}"))?;
    Ok(AccountKeys {
        jwt_secret: SecretString::from(jwt),
        pii,
    })
}

/// A configured secret; in dev mode without one, a random one generated once into the data
/// dir (kept across restarts); outside dev mode without one, a clear start-up error.
fn secret(
    settings: &Settings,
    data_dir: &Path,
    configured: Option<&SecretString>,
    env_name: &str,
    file: &str,
    random_bytes: usize,
) -> anyhow::Result<String> {
    if let Some(s) = configured {
        return Ok(s.expose_secret().to_string());
    }
    if !settings.dev_mode {
        anyhow::bail!(
            "{env_name} is required outside dev mode (set it, or EMPORIUM_DEV_MODE=true)"
        );
    }
    let path = data_dir.join(file);
    if let Ok(existing) = std::fs::read_to_string(&path)
        && !existing.trim().is_empty()
    {
        return Ok(existing.trim().to_string());
    }
    let bytes: Vec<u8> = (0..random_bytes).map(|_| rand::random::<u8>()).collect();
    let value = STANDARD.encode(bytes);
    write_private(&path, &value)?;
    Ok(value)
}

fn write_private(path: &Path, value: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(value.as_bytes())?;
    Ok(())
}

/// The operator token from settings; in dev mode without one, a generated token kept in the
/// data dir and announced in the log.
pub fn operator_token(
    settings: &Settings,
    data_dir: &Path,
) -> anyhow::Result<Option<SecretString>> {
    if settings.auth.operator_token.is_none() && !settings.dev_mode {
        tracing::warn!("no operator token configured: only accounts with roles reach admin routes");
        return Ok(None);
    }
    let token = secret(
        settings,
        data_dir,
        settings.auth.operator_token.as_ref(),
        "EMPORIUM_OPERATOR_TOKEN",
        "dev-operator-token",
        24,
    )?;
    if settings.auth.operator_token.is_none() {
        let path = data_dir.join("dev-operator-token");
        tracing::info!(path = %path.display(), "dev mode: operator token is in this file");
    }
    Ok(Some(SecretString::from(token)))
}
