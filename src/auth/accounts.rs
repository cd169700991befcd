//! The account flows: sign-up (claim the address, register, confirm, mail a code), email
//! verification, login, refresh rotation, logout, profile and deletion. Each flow is a few asks
//! to the `email` and `user` entities plus the crypto of `crate::auth`; HTTP handlers call these
//! and only map the result.

use crate::actors::email::EmailOwner;
use crate::actors::user::{Account, User};
use crate::actors::{AskError, Entities, RuntimeError};
use crate::auth::password::{Passwords, check_strength};
use crate::auth::pii::Pii;
use crate::auth::revocation::Revocations;
use crate::auth::tokens::TokenKeys;
use crate::auth::vault::{Vault, VaultError};
use crate::domain::email_claim::{ClaimCommand, ClaimError};
use crate::domain::ids::{Email, EmailKey, UserId};
use crate::domain::role::Role;
use crate::domain::sealed::Sealed;
use crate::domain::time::{Clock, Timestamp};
use crate::domain::user::{AccountStatus, CodeIssue, UserCommand, UserError};
use crate::integrations::mailer::{Mail, Mailers};
use secrecy::SecretString;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Why an account flow failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("that email address is already registered")]
    EmailTaken,
    #[error("{0}")]
    WeakPassword(String),
    #[error("{0}")]
    InvalidField(String),
    #[error("wrong email or password")]
    InvalidCredentials,
    /// Logout with the operator token: a setting, not an issued token, so nothing can end it
    /// but changing the setting.
    #[error("the operator token is a setting, not a session: change the setting to end it")]
    NotASession,
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A failure that is nobody's input (a key that does not open, hashing that broke): the
    /// cause is logged, the client is told nothing of it.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl<R: Into<AccountError>> From<AskError<R>> for AccountError {
    fn from(e: AskError<R>) -> Self {
        e.into_failure()
    }
}

impl From<VaultError> for AccountError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Erased => UserError::NotFound.into(),
            VaultError::Store(cause) => {
                tracing::warn!(%cause, "the personal data key store failed");
                RuntimeError::Unavailable.into()
            }
        }
    }
}

impl From<ClaimError> for AccountError {
    fn from(e: ClaimError) -> Self {
        match e {
            ClaimError::Taken => AccountError::EmailTaken,
            ClaimError::NotOwner => {
                AccountError::Internal(anyhow::anyhow!("email claim owned by another account"))
            }
        }
    }
}

pub(crate) fn internal(e: impl Into<anyhow::Error>) -> AccountError {
    AccountError::Internal(e.into())
}

/// A personal profile in clear, as the account's owner sees it.
#[derive(Debug, Clone)]
pub struct ProfileView {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub roles: BTreeSet<Role>,
    pub status: AccountStatus,
    pub created_at: Timestamp,
}

pub struct SignUp {
    pub email: String,
    pub password: SecretString,
    pub name: String,
    pub phone: Option<String>,
}

/// Limits on profile fields.
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_PHONE_CHARS: usize = 30;
pub const MAX_ADDRESS_CHARS: usize = 200;

pub struct Accounts {
    pub users: Entities<User>,
    pub emails: Entities<EmailOwner>,
    pub passwords: Passwords,
    pub pii: Pii,
    /// Each person's data key: what personal data is sealed with.
    pub vault: Arc<Vault>,
    pub tokens: TokenKeys,
    pub revocations: Arc<Revocations>,
    pub mail: Mailers,
    pub clock: Arc<dyn Clock>,
    pub refresh_ttl: Duration,
}

impl Accounts {
    fn email_key(&self, email: &Email) -> EmailKey {
        EmailKey::parse(self.pii.blind_index(email.as_str())).expect("hex index is a valid key")
    }

    fn code_mac(&self, user: &UserId, code: &str) -> String {
        self.pii.blind_index(&format!("verification:{user}:{code}"))
    }

    fn new_code(&self, user: &UserId) -> (String, CodeIssue) {
        let code = format!("{:06}", rand::random::<u32>() % 1_000_000);
        let code_mac = self.code_mac(user, &code);
        (code, CodeIssue { code_mac })
    }

    fn mail_code(&self, email: &Email, code: &str) {
        self.mail.send_later(Mail {
            to: email.as_str().to_string(),
            subject: "Your Emporium verification code".into(),
            body: format!("Your verification code is {code}. It is valid for 10 minutes."),
        });
    }

    /// Registers a pending account and mails its code; `roles` and `verified` for admin-made
    /// accounts.
    pub async fn sign_up(
        &self,
        req: SignUp,
        roles: BTreeSet<Role>,
        verified: bool,
    ) -> Result<(UserId, Email), AccountError> {
        use secrecy::ExposeSecret;
        let email = Email::parse(&req.email).map_err(AccountError::InvalidField)?;
        check_strength(req.password.expose_secret()).map_err(AccountError::WeakPassword)?;
        let name = check_field("name", &req.name, 1, MAX_NAME_CHARS)?;
        let phone = match &req.phone {
            Some(p) => Some(check_field("phone", p, 1, MAX_PHONE_CHARS)?),
            None => None,
        };
        let user_id = new_user_id();
        let key = self.email_key(&email);
        // Claim first: losers of a race are refused before any expensive hashing.
        let claim = ClaimCommand::Claim {
            user_id: user_id.clone(),
        };
        match self.emails.ask(&key, claim.clone()).await {
            Err(AskError::Rejected(ClaimError::Taken)) if self.lapse_holder(&key).await? => {
                self.emails.ask(&key, claim).await?;
            }
            claimed => {
                claimed?;
            }
        }
        let registered = self
            .register(
                &user_id,
                &email,
                &key,
                &req.password,
                name,
                phone,
                roles,
                verified,
            )
            .await;
        if let Err(e) = registered {
            let _ = self
                .emails
                .ask(&key, ClaimCommand::Release { user_id })
                .await;
            return Err(e);
        }
        self.emails
            .ask(
                &key,
                ClaimCommand::Confirm {
                    user_id: user_id.clone(),
                },
            )
            .await?;
        Ok((user_id, email))
    }

    /// Whether the address's holder was a sign-up left unverified for
    /// [`PENDING_LAPSE`](crate::domain::user::PENDING_LAPSE), now given up
    /// ([`UserCommand::Lapse`]): its personal data erased and the address released for a new
    /// sign-up to claim.
    async fn lapse_holder(&self, key: &EmailKey) -> Result<bool, AccountError> {
        let claim = self.emails.ask(key, ClaimCommand::Lookup).await?;
        let Some(holder) = claim.owner.filter(|_| claim.confirmed) else {
            return Ok(false);
        };
        match self.users.ask(&holder, UserCommand::Lapse).await {
            // Given up now, or by a sign-up racing this one (which may claim first).
            Ok(_) | Err(AskError::Rejected(UserError::NotFound)) => {}
            Err(AskError::Rejected(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        self.vault.erase(&holder).await?;
        let release = ClaimCommand::Release { user_id: holder };
        match self.emails.ask(key, release).await {
            Ok(_) | Err(AskError::Rejected(ClaimError::NotOwner)) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn register(
        &self,
        user_id: &UserId,
        email: &Email,
        key: &EmailKey,
        password: &SecretString,
        name: &str,
        phone: Option<&str>,
        roles: BTreeSet<Role>,
        verified: bool,
    ) -> Result<(), AccountError> {
        let password_hash = self.passwords.hash(password).await.map_err(internal)?;
        let code = (!verified).then(|| self.new_code(user_id));
        let phone = match phone {
            Some(p) => Some(self.vault.seal(user_id, p).await?),
            None => None,
        };
        let command = UserCommand::Register {
            email: self.vault.seal(user_id, email.as_str()).await?,
            email_key: key.to_string(),
            password_hash,
            name: self.vault.seal(user_id, name).await?,
            phone,
            roles,
            code: code.as_ref().map(|(_, issue)| issue.clone()),
        };
        self.users.ask(user_id, command).await?;
        if let Some((code, _)) = code {
            self.mail_code(email, &code);
        }
        Ok(())
    }

    /// The confirmed owner of an address, if any.
    pub(crate) async fn owner(&self, email: &Email) -> Result<Option<UserId>, AccountError> {
        let claim = self
            .emails
            .ask(&self.email_key(email), ClaimCommand::Lookup)
            .await?;
        Ok(claim.owner.filter(|_| claim.confirmed))
    }

    pub async fn verify_email(&self, email: &str, code: &str) -> Result<(), AccountError> {
        // Only six digits are ever mailed (`new_code`); pasted ones may bring spaces.
        let code = code.trim_matches([' ', '\t']);
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UserError::InvalidCode.into());
        }
        let email = Email::parse(email).map_err(|_| UserError::InvalidCode)?;
        let user = self.owner(&email).await?.ok_or(UserError::InvalidCode)?;
        let code_mac = self.code_mac(&user, code);
        match self
            .users
            .ask(&user, UserCommand::Verify { code_mac })
            .await
        {
            // Given up for a new sign-up of the address a moment ago: its code is no more.
            Err(AskError::Rejected(UserError::NotFound)) => Err(UserError::InvalidCode.into()),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    /// Mails a new code. Unknown addresses are answered the same way (no enumeration).
    pub async fn resend_code(&self, email: &str) -> Result<(), AccountError> {
        // A malformed address has no account: the same answer as any other without one.
        let Ok(email) = Email::parse(email) else {
            return Ok(());
        };
        let Some(user) = self.owner(&email).await? else {
            return Ok(());
        };
        let (code, issue) = self.new_code(&user);
        match self.users.ask(&user, UserCommand::ResendCode(issue)).await {
            Ok(_) => self.mail_code(&email, &code),
            Err(AskError::Rejected(UserError::AlreadyVerified | UserError::NotFound)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    pub async fn profile(&self, user: &UserId) -> Result<ProfileView, AccountError> {
        let account = self.users.ask(user, UserCommand::Get).await?;
        self.view(account).await
    }

    /// Changes the profile. Each field is `None` (unchanged), `Some(None)` (removed: phone and
    /// address only, as a JSON merge patch's `null` does, RFC 7396) or `Some(Some(text))`.
    ///
    /// Errors: `InvalidField` for a value that is not one line of its length, or a name
    /// removed (an account keeps one).
    pub async fn update_profile(
        &self,
        user: &UserId,
        name: Option<Option<String>>,
        phone: Option<Option<String>>,
        address: Option<Option<String>>,
    ) -> Result<ProfileView, AccountError> {
        if name == Some(None) {
            return Err(AccountError::InvalidField(
                "name cannot be removed, only changed".into(),
            ));
        }
        let fields = [
            ("name", name, MAX_NAME_CHARS),
            ("phone", phone, MAX_PHONE_CHARS),
            ("address", address, MAX_ADDRESS_CHARS),
        ];
        let mut sealed = Vec::with_capacity(3);
        for (field, value, max) in fields {
            sealed.push(match value {
                Some(Some(v)) => Some(
                    self.vault
                        .seal(user, check_field(field, &v, 1, max)?)
                        .await?,
                ),
                // Nothing sealed reads as absent (`Vault::open`).
                Some(None) => Some(Sealed(Vec::new())),
                None => None,
            });
        }
        let [name, phone, address] = <[Option<Sealed>; 3]>::try_from(sealed).expect("three");
        let command = UserCommand::UpdateProfile {
            name,
            phone,
            address,
        };
        let account = self.users.ask(user, command).await?;
        self.view(account).await
    }

    /// Erases the account's personal data (its key: whatever was sealed for it anywhere —
    /// profile, email, orders' shipping addresses — no longer opens), frees its address and
    /// revokes all its tokens.
    ///
    /// Every step is idempotent and the key goes first, so a deletion interrupted by a failure
    /// is finished by the client's retry (with the same token, which is revoked last), even
    /// once the account already reads as deleted.
    pub async fn delete(&self, user: &UserId) -> Result<(), AccountError> {
        let account = match self.users.ask(user, UserCommand::Get).await {
            Ok(account) => Some(account),
            Err(AskError::Rejected(UserError::NotFound)) => None,
            Err(e) => return Err(e.into()),
        };
        self.vault.erase(user).await?;
        if let Some(account) = account {
            self.users.ask(user, UserCommand::Delete).await?;
            if let Ok(key) = EmailKey::parse(account.state.email_key.clone()) {
                let release = ClaimCommand::Release {
                    user_id: user.clone(),
                };
                self.emails.ask(&key, release).await?;
            }
        }
        let now_secs = self.clock.now().millis() / 1000;
        self.revocations
            .revoke_user(user.as_str(), now_secs)
            .await
            .map_err(internal)
    }

    async fn view(&self, account: Account) -> Result<ProfileView, AccountError> {
        let (id, s) = (&account.user_id, &account.state);
        let open = |field| self.vault.open_field(id, field);
        let email = open(&s.email).await?.unwrap_or_default();
        let name = open(&s.profile.name).await?.unwrap_or_default();
        let phone = open(&s.profile.phone).await?;
        let address = open(&s.profile.address).await?;
        let s = account.state;
        Ok(ProfileView {
            user_id: account.user_id,
            email,
            name,
            phone,
            address,
            roles: s.roles,
            status: s.status.unwrap_or(AccountStatus::Deleted),
            created_at: s.created_at,
        })
    }
}

fn check_field<'a>(
    field: &str,
    value: &'a str,
    min: usize,
    max: usize,
) -> Result<&'a str, AccountError> {
    if !crate::domain::text::is_line(value, min, max) {
        return Err(AccountError::InvalidField(format!(
            "{field} must be {min} to {max} characters on one line, some of them visible"
        )));
    }
    Ok(value.trim())
}

fn new_user_id() -> UserId {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>());
    UserId::parse(format!("u_{raw}")).expect("base64url is a valid id")
}
