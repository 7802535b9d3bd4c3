//! Login with a password and a TOTP second factor, enrolment, recovery codes, lockout, sessions.
//!
//! A login is a session that moves through stages: `second_factor` (password accepted, code
//! pending) or `enrol` (password accepted, no second factor yet), then `full`. Each move issues a
//! new token. Every login attempt, successful or not, is audited.

use renkei_core::audit::AuditOutcome;
use renkei_core::user::{LoginId, Role};
use renkei_store::{SessionRecord, User};
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::secrets::{self, DUMMY_HASH};
use crate::{Actor, App, AppError, Result};

pub const STAGE_SECOND_FACTOR: &str = "second_factor";
pub const STAGE_ENROL: &str = "enrol";
pub const STAGE_FULL: &str = "full";

/// How many recovery codes a user gets.
pub const RECOVERY_CODES: usize = 10;
/// Minimum password length (guideline 6.0 leaves the rule to the operator; 10 is our floor).
pub const MIN_PASSWORD_CHARS: usize = 10;

/// What the user must do after the password step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordOutcome {
    /// Enter the TOTP code (or a recovery code). Carries the new session token.
    SecondFactor(String),
    /// Enrol a second factor first. Carries the new session token.
    Enrol(String),
    /// Refused. The message is the same whatever the reason, so it tells nothing about accounts.
    Refused,
    /// The account is locked (after repeated failures) until the time given.
    Locked,
}

/// What the enrolment page shows.
#[derive(Clone)]
pub struct Enrolment {
    pub secret_base32: String,
    pub otpauth_url: String,
    pub account: String,
}

/// A valid session as the web layer sees it.
#[derive(Clone, Debug)]
pub struct SessionView {
    pub stage: String,
    pub csrf_token: String,
    pub actor: Actor,
    pub must_change_password: bool,
    pub facility_name: String,
}

impl App {
    fn totp_for(&self, secret_base32: &str, account: &str) -> Result<Totp> {
        let secret = Secret::try_from_base32(secret_base32)
            .map_err(|_| AppError::Internal("stored TOTP secret is malformed".into()))?;
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_skew(1)
            .with_step_duration(30)
            .with_secret(secret)
            .with_issuer(Some(self.config.network_name.replace(':', " ")))
            .with_account_name(account.replace(':', " "))
            .build()
            .map_err(|e| AppError::Internal(format!("TOTP: {e}")))
    }

    pub(crate) fn actor_of(&self, user: &User, client: &str) -> Actor {
        Actor {
            user_id: Some(user.id),
            login_id: user.login_id.clone(),
            name: user.name.clone(),
            facility_id: Some(user.facility_id),
            profession: Some(user.profession.clone()),
            role: Role::from_key(&user.role).unwrap_or(Role::Staff),
            emergency: user.emergency,
            client: client.to_string(),
        }
    }

    /// An actor for a login ID that may not exist (for failed-login events).
    fn anonymous(&self, login_id: &str, client: &str) -> Actor {
        Actor {
            user_id: None,
            login_id: login_id.chars().take(64).collect(),
            name: String::new(),
            facility_id: None,
            profession: None,
            role: Role::Staff,
            emergency: false,
            client: client.to_string(),
        }
    }

    /// Step one: user ID and password.
    pub async fn login_password(
        &self,
        login_id: &str,
        password: &str,
        client: &str,
    ) -> Result<PasswordOutcome> {
        let now = self.now();
        let window = self.config.lockout_seconds * 1_000_000;
        if self
            .login_sources
            .blocked(client, now.0, window, self.config.source_lockout_threshold)
        {
            // The same time as any other answer, and the same answer as a locked account.
            secrets::verify_password(password.to_string(), DUMMY_HASH.to_string()).await;
            let actor = self.anonymous(login_id, client);
            self.append_audit(self.event(
                &actor,
                "auth.login",
                "user:unknown".into(),
                AuditOutcome::Denied,
                "source_throttled",
            ))
            .await?;
            return Ok(PasswordOutcome::Locked);
        }
        let user = match LoginId::parse(login_id) {
            Ok(id) => self.store.user_by_login(id.as_str()).await?,
            Err(_) => None,
        };
        let Some(user) = user else {
            // Spend the same time as for a real account, then refuse.
            secrets::verify_password(password.to_string(), DUMMY_HASH.to_string()).await;
            self.login_sources.add(client, now.0, window);
            let actor = self.anonymous(login_id, client);
            self.append_audit(self.event(
                &actor,
                "auth.login",
                "user:unknown".into(),
                AuditOutcome::Failure,
                "unknown_user",
            ))
            .await?;
            return Ok(PasswordOutcome::Refused);
        };
        let actor = self.actor_of(&user, client);
        let target = format!("user:{}", user.id);
        if user.locked_until.is_some_and(|t| t > now.0) {
            // As long as a password check, so that timing does not tell a locked account.
            secrets::verify_password(password.to_string(), DUMMY_HASH.to_string()).await;
            self.login_sources.add(client, now.0, window);
            self.append_audit(self.event(
                &actor,
                "auth.login",
                target,
                AuditOutcome::Denied,
                "locked",
            ))
            .await?;
            return Ok(PasswordOutcome::Locked);
        }
        let facility_active = self
            .store
            .facility(user.facility_id)
            .await
            .map(|f| f.active)
            .unwrap_or(false);
        let password_ok =
            secrets::verify_password(password.to_string(), user.password_hash.clone()).await;
        if !password_ok {
            self.login_sources.add(client, now.0, window);
            self.fail(&user, &actor, "bad_password").await?;
            return Ok(PasswordOutcome::Refused);
        }
        if !user.active || !facility_active {
            self.append_audit(self.event(
                &actor,
                "auth.login",
                target,
                AuditOutcome::Denied,
                "inactive",
            ))
            .await?;
            return Ok(PasswordOutcome::Refused);
        }
        let stage = if user.totp_enabled {
            STAGE_SECOND_FACTOR
        } else {
            STAGE_ENROL
        };
        let token = secrets::token()?;
        self.store
            .create_session(&SessionRecord {
                token_hash: secrets::digest(&token),
                user_id: user.id,
                stage: stage.to_string(),
                csrf_token: secrets::token()?,
                client: client.to_string(),
                created_at: now.0,
                last_seen_at: now.0,
            })
            .await?;
        Ok(if user.totp_enabled {
            PasswordOutcome::SecondFactor(token)
        } else {
            PasswordOutcome::Enrol(token)
        })
    }

    /// Counts a failure and locks the account when the threshold is reached.
    async fn fail(&self, user: &User, actor: &Actor, reason: &str) -> Result<()> {
        let failures = user.failed_logins + 1;
        let lock = (failures >= self.config.lockout_threshold)
            .then(|| self.now().plus_seconds(self.config.lockout_seconds).0);
        let detail = if lock.is_some() {
            format!("{reason};locked")
        } else {
            reason.to_string()
        };
        self.store
            .record_login_failure(
                user.id,
                if lock.is_some() { 0 } else { failures },
                lock,
                self.event(
                    actor,
                    "auth.login",
                    format!("user:{}", user.id),
                    AuditOutcome::Failure,
                    &detail,
                ),
            )
            .await?;
        Ok(())
    }

    /// Looks up a session by token in the given stage, ending it if it has been idle too long.
    async fn staged_session(&self, token: &str, stage: &str) -> Result<(SessionRecord, User)> {
        let hash = secrets::digest(token);
        let Some(session) = self.store.session(&hash).await? else {
            return Err(AppError::Unauthenticated);
        };
        let now = self.now();
        if session.last_seen_at + self.config.session_idle_seconds * 1_000_000 < now.0 {
            self.store.delete_session(&hash).await?;
            return Err(AppError::Unauthenticated);
        }
        if session.stage != stage {
            return Err(AppError::Unauthenticated);
        }
        let user = self.store.user(session.user_id).await?;
        if !user.active {
            self.store.delete_session(&hash).await?;
            return Err(AppError::Unauthenticated);
        }
        Ok((session, user))
    }

    /// Step two: a TOTP code, or one of the user's recovery codes. Returns the logged-in token.
    pub async fn login_second_factor(
        &self,
        token: &str,
        code: &str,
        client: &str,
    ) -> Result<Option<String>> {
        let (session, user) = self.staged_session(token, STAGE_SECOND_FACTOR).await?;
        let actor = self.actor_of(&user, client);
        let now = self.now();
        if user.locked_until.is_some_and(|t| t > now.0) {
            self.store.delete_session(&session.token_hash).await?;
            self.append_audit(self.event(
                &actor,
                "auth.login",
                format!("user:{}", user.id),
                AuditOutcome::Denied,
                "locked",
            ))
            .await?;
            return Err(AppError::Unauthenticated);
        }
        let code = secrets::normalise_code(code);
        let method = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            let secret = user.totp_secret.as_deref().unwrap_or_default();
            let totp = self.totp_for(secret, &user.login_id)?;
            match totp.check(&code, u64::try_from(now.unix_seconds()).unwrap_or(0)) {
                Some(step) if self.store.claim_totp_step(user.id, step as i64).await? => {
                    Some("totp")
                }
                _ => None,
            }
        } else if !code.is_empty()
            && self
                .store
                .use_recovery_code(user.id, &secrets::digest(&code), now.0)
                .await?
        {
            Some("recovery_code")
        } else {
            None
        };
        let Some(method) = method else {
            self.fail(&user, &actor, "bad_second_factor").await?;
            return Ok(None);
        };
        let new_token = self.complete_login(&session, &user, &actor, method).await?;
        Ok(Some(new_token))
    }

    /// Moves a session that passed its second factor to the logged-in stage, under a new token,
    /// and audits the login, in one transaction.
    async fn complete_login(
        &self,
        session: &SessionRecord,
        user: &User,
        actor: &Actor,
        method: &str,
    ) -> Result<String> {
        let new_token = secrets::token()?;
        let event = self.event(
            actor,
            "auth.login",
            format!("user:{}", user.id),
            AuditOutcome::Success,
            method,
        );
        self.store
            .complete_login(
                &session.token_hash,
                &secrets::digest(&new_token),
                STAGE_FULL,
                user.id,
                self.now().0,
                event,
            )
            .await?;
        Ok(new_token)
    }

    /// Starts (or resumes) enrolment of a TOTP authenticator for a session in the `enrol` stage.
    pub async fn begin_enrolment(&self, token: &str) -> Result<Enrolment> {
        let (_, user) = self.staged_session(token, STAGE_ENROL).await?;
        let secret = match user.totp_secret.clone() {
            Some(s) => s,
            None => {
                let s = Secret::from(secrets::random_bytes::<20>()?.to_vec()).to_base32();
                self.store.set_pending_totp_secret(user.id, &s).await?;
                s
            }
        };
        let totp = self.totp_for(&secret, &user.login_id)?;
        let otpauth_url = totp
            .to_url()
            .map_err(|e| AppError::Internal(format!("TOTP URL: {e}")))?;
        Ok(Enrolment {
            secret_base32: secret,
            otpauth_url,
            account: user.login_id,
        })
    }

    /// Confirms enrolment with a first code; returns the logged-in token and the recovery codes
    /// (shown once, stored only as digests).
    pub async fn confirm_enrolment(
        &self,
        token: &str,
        code: &str,
        client: &str,
    ) -> Result<Option<(String, Vec<String>)>> {
        let (session, user) = self.staged_session(token, STAGE_ENROL).await?;
        let actor = self.actor_of(&user, client);
        let now = self.now();
        let Some(secret) = user.totp_secret.as_deref() else {
            return Err(AppError::Invalid(
                "二要素認証の登録を最初からやり直してください".into(),
            ));
        };
        let totp = self.totp_for(secret, &user.login_id)?;
        let code = secrets::normalise_code(code);
        let Some(step) = totp.check(&code, u64::try_from(now.unix_seconds()).unwrap_or(0)) else {
            self.append_audit(self.event(
                &actor,
                "auth.totp.enrol",
                format!("user:{}", user.id),
                AuditOutcome::Failure,
                "bad_code",
            ))
            .await?;
            return Ok(None);
        };
        let (codes, hashes) = recovery_codes()?;
        self.store
            .enable_totp(
                user.id,
                step as i64,
                &hashes,
                self.event(
                    &actor,
                    "auth.totp.enrol",
                    format!("user:{}", user.id),
                    AuditOutcome::Success,
                    "",
                ),
            )
            .await?;
        let new_token = self
            .complete_login(&session, &user, &actor, "totp_enrol")
            .await?;
        Ok(Some((new_token, codes)))
    }

    /// Enrols a TOTP authenticator for a user from the operator's shell, without a first code:
    /// for a demo region, whose users' secrets are printed so that anyone can log in with the
    /// real second factor. Returns the Base32 secret. Audited as an enrolment.
    pub async fn enrol_totp_unattended(&self, actor: &Actor, login_id: &str) -> Result<String> {
        actor.require_operator()?;
        let user = self
            .store
            .user_by_login(login_id)
            .await?
            .ok_or(AppError::NotFound)?;
        let secret = Secret::from(secrets::random_bytes::<20>()?.to_vec()).to_base32();
        self.store.set_pending_totp_secret(user.id, &secret).await?;
        let (_, hashes) = recovery_codes()?;
        let event = self.event(
            actor,
            "auth.totp.enrol",
            format!("user:{}", user.id),
            AuditOutcome::Success,
            "unattended",
        );
        self.store.enable_totp(user.id, 0, &hashes, event).await?;
        Ok(secret)
    }

    /// The TOTP secret of an enrolled user, and the code it gives now with the seconds it stays
    /// valid. For the demo tooling only (`renkei dev totp`); the operator's shell has the
    /// database anyway.
    pub async fn current_totp_code(
        &self,
        actor: &Actor,
        login_id: &str,
    ) -> Result<(String, String, u64)> {
        actor.require_operator()?;
        let user = self
            .store
            .user_by_login(login_id)
            .await?
            .filter(|u| u.totp_enabled)
            .ok_or(AppError::NotFound)?;
        let secret = user.totp_secret.unwrap_or_default();
        let totp = self.totp_for(&secret, &user.login_id)?;
        let now = u64::try_from(self.now().unix_seconds()).unwrap_or(0);
        let code = totp.generate(now);
        Ok((secret, code.to_string(), 30 - now % 30))
    }

    /// The logged-in session for `token`, touched; `Unauthenticated` when absent or idle too long.
    pub async fn session(&self, token: &str, client: &str) -> Result<SessionView> {
        let (session, user) = self.staged_session(token, STAGE_FULL).await?;
        let now = self.now();
        // Write the last-seen time at most once a minute.
        if now.0 - session.last_seen_at > 60_000_000 {
            self.store.touch_session(&session.token_hash, now.0).await?;
        }
        let facility_name = self
            .store
            .facility(user.facility_id)
            .await
            .map(|f| f.name)
            .unwrap_or_default();
        Ok(SessionView {
            stage: session.stage,
            csrf_token: session.csrf_token,
            must_change_password: user.must_change_password,
            actor: self.actor_of(&user, client),
            facility_name,
        })
    }

    /// The CSRF token of a session in any stage (forms before login completes need one too).
    pub async fn csrf_token(&self, token: &str) -> Result<String> {
        match self.store.session(&secrets::digest(token)).await? {
            Some(s) => Ok(s.csrf_token),
            None => Err(AppError::Unauthenticated),
        }
    }

    pub fn csrf_matches(expected: &str, given: &str) -> bool {
        !expected.is_empty() && secrets::constant_time_eq(expected, given)
    }

    pub async fn logout(&self, token: &str, actor: &Actor) -> Result<()> {
        self.store.delete_session(&secrets::digest(token)).await?;
        let target = actor
            .user_id
            .map(|id| format!("user:{id}"))
            .unwrap_or_default();
        self.append_audit(self.event(actor, "auth.logout", target, AuditOutcome::Success, ""))
            .await?;
        Ok(())
    }

    /// Ends a session that never completed login (cancel on the second-factor page).
    pub async fn abandon_login(&self, token: &str) -> Result<()> {
        self.store
            .delete_session(&secrets::digest(token))
            .await
            .map_err(AppError::from)
    }

    /// The user changes their own password; other sessions of theirs end.
    pub async fn change_password(
        &self,
        actor: &Actor,
        token: &str,
        current: &str,
        new: &str,
        confirm: &str,
    ) -> Result<()> {
        let user_id = actor.user_id.ok_or(AppError::Forbidden)?;
        let user = self.store.user(user_id).await?;
        let target = format!("user:{user_id}");
        if !secrets::verify_password(current.to_string(), user.password_hash.clone()).await {
            self.append_audit(self.event(
                actor,
                "auth.password.change",
                target,
                AuditOutcome::Failure,
                "bad_current",
            ))
            .await?;
            return Err(AppError::Invalid(
                "現在のパスワードが正しくありません".into(),
            ));
        }
        check_new_password(new, confirm, &user.login_id)?;
        if secrets::verify_password(new.to_string(), user.password_hash.clone()).await {
            return Err(AppError::Invalid(
                "新しいパスワードは現在のものと異なるものにしてください".into(),
            ));
        }
        let hash = secrets::hash_password(new.to_string()).await?;
        let keep = secrets::digest(token);
        self.store
            .set_password(
                user_id,
                &hash,
                false,
                Some(&keep),
                self.now().0,
                self.event(
                    actor,
                    "auth.password.change",
                    target,
                    AuditOutcome::Success,
                    "",
                ),
            )
            .await?;
        Ok(())
    }

    /// New recovery codes for the acting user (the old ones stop working).
    pub async fn regenerate_recovery_codes(&self, actor: &Actor) -> Result<Vec<String>> {
        let user_id = actor.user_id.ok_or(AppError::Forbidden)?;
        let (codes, hashes) = recovery_codes()?;
        self.store
            .replace_recovery_codes(
                user_id,
                &hashes,
                self.event(
                    actor,
                    "auth.recovery_codes.regenerate",
                    format!("user:{user_id}"),
                    AuditOutcome::Success,
                    "",
                ),
            )
            .await?;
        Ok(codes)
    }

    pub async fn unused_recovery_codes(&self, actor: &Actor) -> Result<i64> {
        let user_id = actor.user_id.ok_or(AppError::Forbidden)?;
        Ok(self.store.unused_recovery_codes(user_id).await?)
    }

    /// Removes sessions idle for longer than the idle timeout (run periodically).
    pub async fn purge_idle_sessions(&self) -> Result<u64> {
        let before = self.now().0 - self.config.session_idle_seconds * 1_000_000;
        Ok(self.store.purge_idle_sessions(before).await?)
    }

    /// Records one request made by an emergency account (非常時用アカウント): every use is audited.
    pub async fn record_emergency_use(
        &self,
        actor: &Actor,
        method: &str,
        path: &str,
    ) -> Result<()> {
        if !actor.emergency {
            return Ok(());
        }
        let path: String = path.chars().take(200).collect();
        self.append_audit(self.event(
            actor,
            "emergency.use",
            format!("path:{path}"),
            AuditOutcome::Success,
            method,
        ))
        .await?;
        Ok(())
    }
}

/// The password policy: at least [`MIN_PASSWORD_CHARS`] characters, two kinds of character
/// (letters, digits, symbols), not containing the login ID, typed the same twice.
pub fn check_new_password(new: &str, confirm: &str, login_id: &str) -> Result<()> {
    if new != confirm {
        return Err(AppError::Invalid(
            "新しいパスワードと確認用パスワードが一致しません".into(),
        ));
    }
    if new.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AppError::Invalid(format!(
            "パスワードは{MIN_PASSWORD_CHARS}文字以上にしてください"
        )));
    }
    let kinds = [
        new.chars().any(|c| c.is_alphabetic()),
        new.chars().any(|c| c.is_ascii_digit()),
        new.chars().any(|c| !c.is_alphanumeric()),
    ]
    .iter()
    .filter(|k| **k)
    .count();
    if kinds < 2 {
        return Err(AppError::Invalid(
            "パスワードには英字・数字・記号のうち2種類以上を含めてください".into(),
        ));
    }
    if !login_id.is_empty()
        && new
            .to_ascii_lowercase()
            .contains(&login_id.to_ascii_lowercase())
    {
        return Err(AppError::Invalid(
            "パスワードに利用者IDを含めないでください".into(),
        ));
    }
    Ok(())
}

/// A fresh set of recovery codes and the digests under which they are stored.
fn recovery_codes() -> Result<(Vec<String>, Vec<String>)> {
    let codes = (0..RECOVERY_CODES)
        .map(|_| secrets::human_code(2))
        .collect::<Result<Vec<_>>>()?;
    let hashes = codes.iter().map(|c| secrets::digest(c)).collect();
    Ok((codes, hashes))
}

/// Generates a temporary password for a new or reset account (must be changed at first login).
pub(crate) fn temporary_password() -> Result<String> {
    // Three groups of five from a 31-symbol alphabet with a digit guaranteed: about 74 bits.
    let code = secrets::human_code(3)?;
    Ok(format!("{code}-7"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_policy_names_the_problem() {
        assert!(
            check_new_password("abc", "abc", "u")
                .unwrap_err()
                .to_string()
                .contains("10文字")
        );
        assert!(
            check_new_password("abcdefghijk", "abcdefghijk", "u")
                .unwrap_err()
                .to_string()
                .contains("2種類")
        );
        assert!(
            check_new_password("abcdefghij1", "abcdefghij2", "u")
                .unwrap_err()
                .to_string()
                .contains("一致")
        );
        assert!(
            check_new_password("xtanaka1234", "xtanaka1234", "tanaka")
                .unwrap_err()
                .to_string()
                .contains("利用者ID")
        );
        assert!(
            check_new_password("長い日本語のパスワード12", "長い日本語のパスワード12", "u").is_ok()
        );
        let t = temporary_password().unwrap();
        assert!(check_new_password(&t, &t, "someone").is_ok());
    }
}
