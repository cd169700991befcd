//! The session flows of an account: login (Argon2id verify, per-account lock), refresh-token
//! rotation with reuse detection, and logout (access token deny-listed, session revoked).

use crate::actors::AskError;
use crate::auth::accounts::{AccountError, Accounts, internal};
use crate::auth::tokens::{Claims, RefreshToken};
use crate::domain::ids::{Email, UserId};
use crate::domain::time::Timestamp;
use crate::domain::user::{UserCommand, UserError};
use secrecy::SecretString;

/// What a login or refresh hands out.
pub struct Session {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh: RefreshToken,
}

impl Accounts {
    pub async fn login(
        &self,
        email: &str,
        password: &SecretString,
    ) -> Result<Session, AccountError> {
        let owner = self.owner(&Email::lookup(email)).await?;
        // The attempt is booked (and counted as failed) before the password is checked.
        let account = match &owner {
            Some(user) => match self.users.ask(user, UserCommand::BeginLogin).await {
                Ok(account) => Some(account),
                // Deleted since its email was looked up: as if there were no account.
                Err(AskError::Rejected(UserError::NotFound)) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let phc = account.as_ref().map(|a| a.state.password_hash.clone());
        if !self.passwords.verify(password, phc).await {
            return Err(AccountError::InvalidCredentials);
        }
        let account = account.ok_or(AccountError::InvalidCredentials)?;
        let attempt = account.state.failed_logins.back().copied();
        match self.start_session(&account.user_id, attempt).await {
            Err(AccountError::User(UserError::NotFound)) => Err(AccountError::InvalidCredentials),
            other => other,
        }
    }

    /// Starts a refresh family for the login booked at `attempt`, and issues an access token.
    async fn start_session(
        &self,
        user: &UserId,
        attempt: Option<Timestamp>,
    ) -> Result<Session, AccountError> {
        self.issue(user, None, |refresh, expires_at| {
            UserCommand::StartSession {
                family: refresh.family.clone(),
                token_hash: refresh.hash(),
                expires_at,
                attempt,
            }
        })
        .await
    }

    /// A new refresh token of `family` (a new family when `None`) recorded by the command
    /// `record` makes of it, and an access token.
    async fn issue(
        &self,
        user: &UserId,
        family: Option<&str>,
        record: impl FnOnce(&RefreshToken, Timestamp) -> UserCommand,
    ) -> Result<Session, AccountError> {
        let refresh = RefreshToken::new(user, family);
        let expires_at = self.clock.now().plus(self.refresh_ttl);
        let command = record(&refresh, expires_at);
        let account = self.users.ask(user, command).await?;
        let now_secs = self.clock.now().millis() / 1000;
        let (access_token, _) = self
            .tokens
            .issue(user, &account.state.roles, &refresh.family, now_secs)
            .map_err(internal)?;
        Ok(Session {
            access_token,
            expires_in: self.tokens.access_ttl_secs,
            refresh,
        })
    }

    pub async fn refresh(&self, cookie: &str) -> Result<Session, AccountError> {
        let presented = RefreshToken::parse(cookie).ok_or(UserError::InvalidRefresh)?;
        let (user, family) = (&presented.user, Some(presented.family.as_str()));
        let rotate = |refresh: &RefreshToken, expires_at| UserCommand::Rotate {
            family: refresh.family.clone(),
            presented_hash: presented.hash(),
            new_hash: refresh.hash(),
            expires_at,
        };
        match self.issue(user, family, rotate).await {
            // A token of an account that no longer exists is simply not valid.
            Err(AccountError::User(UserError::NotFound)) => Err(UserError::InvalidRefresh.into()),
            // Someone replayed a rotated token: the family is revoked (by the account), and
            // so is every access token issued in it.
            Err(e @ AccountError::User(UserError::RefreshReused)) => {
                self.revoke_session_tokens(user.as_str(), &presented.family)
                    .await?;
                Err(e)
            }
            other => other,
        }
    }

    /// Every access token issued in session `sid` refused from now on (they live at most the
    /// access TTL from now: none is issued in a revoked session).
    async fn revoke_session_tokens(&self, user: &str, sid: &str) -> Result<(), AccountError> {
        let until = self.clock.now().millis() / 1000 + self.tokens.access_ttl_secs;
        self.revocations
            .revoke_session(user, sid, until)
            .await
            .map_err(internal)
    }

    /// Revokes the access token, every other access token of its session, and the session's
    /// refresh family.
    pub async fn logout(&self, claims: &Claims) -> Result<(), AccountError> {
        if claims.is_operator_token() {
            // Answering 204 would say the token is rejected from now on; it is not.
            return Err(AccountError::NotASession);
        }
        if claims.sid.is_empty() {
            self.revocations
                .revoke_token(claims)
                .await
                .map_err(internal)?;
        } else {
            self.revoke_session_tokens(&claims.sub, &claims.sid).await?;
        }
        let user = UserId::parse(claims.sub.clone()).map_err(internal)?;
        if !claims.sid.is_empty() {
            let end = UserCommand::EndSession {
                family: claims.sid.clone(),
            };
            match self.users.ask(&user, end).await {
                Ok(_) | Err(AskError::Rejected(UserError::NotFound)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
