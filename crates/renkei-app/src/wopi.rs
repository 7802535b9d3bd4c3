//! WOPI host: an office server (Collabora Online, OnlyOffice) opens and saves HM-Box files.
//!
//! A user who may see a file asks to edit it; they get an access token for that file alone
//! (its owner may write, a user it is shared with may only read), which their browser hands to
//! the office server, which then calls the WOPI endpoints with it: CheckFileInfo, GetFile,
//! Lock / GetLock / RefreshLock / Unlock / UnlockAndRelock, PutFile. Locks follow the WOPI
//! rules (30 minutes, a lock mismatch is a conflict that names the current lock, an unlocked
//! file may be written only while empty). Every read and save is audited as the user.

use renkei_core::audit::AuditOutcome;
use renkei_store::objects::ByteStream;

use crate::files::{FileUse, StoredFile};
use crate::{Actor, App, AppError, Result, secrets};

/// How long an access token lives (a working day of editing).
pub const TOKEN_SECONDS: i64 = 8 * 3600;
/// How long a lock lives unless refreshed (the WOPI rule).
pub const LOCK_SECONDS: i64 = 30 * 60;
/// The largest file an editor may save.
pub const MAX_SAVE_BYTES: i64 = 100 * 1024 * 1024;
/// WOPI lock ids are at most this long.
const MAX_LOCK_LEN: usize = 1024;

const SECOND: i64 = 1_000_000;

/// An editor access token handed to the user's browser.
#[derive(Clone, Debug)]
pub struct WopiGrant {
    pub token: String,
    /// µs since the epoch.
    pub expires_at: i64,
    pub file_name: String,
}

/// A request of the office server, authenticated by its access token.
#[derive(Clone, Debug)]
pub struct WopiSession {
    pub file: StoredFile,
    pub actor: Actor,
    pub can_write: bool,
}

/// CheckFileInfo's answer (the properties Collabora and OnlyOffice read).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FileInfo {
    pub base_file_name: String,
    pub owner_id: String,
    pub size: i64,
    pub user_id: String,
    pub user_friendly_name: String,
    pub version: String,
    pub user_can_write: bool,
    pub read_only: bool,
    pub user_can_not_write_relative: bool,
    pub supports_locks: bool,
    pub supports_get_lock: bool,
    pub supports_update: bool,
    pub disable_print: bool,
    pub last_modified_time: String,
}

/// A lock operation (`X-WOPI-Override` on `POST /wopi/files/{id}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockOp {
    Lock(String),
    UnlockAndRelock { old: String, new: String },
    GetLock,
    RefreshLock(String),
    Unlock(String),
}

/// The outcome of a lock operation or a save.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WopiOutcome {
    Done,
    /// The current lock (returned for GET_LOCK, and on a conflict as `X-WOPI-Lock`).
    Lock(String),
    /// A lock mismatch: 409 with the current lock (empty: unlocked).
    Conflict(String),
}

fn check_lock_id(lock: &str) -> Result<()> {
    if lock.is_empty() || lock.len() > MAX_LOCK_LEN {
        return Err(AppError::Invalid("X-WOPI-Lock は 1〜1024 文字です".into()));
    }
    Ok(())
}

impl App {
    /// Issues an editor access token for a file the actor may see.
    /// The owner of an HM-Box file may write; users it is shared with read. Case files are
    /// records of a consultation and are never edited in place.
    pub async fn issue_wopi_token(&self, actor: &Actor, file_id: i64) -> Result<WopiGrant> {
        let file = self.file_access(actor, file_id, FileUse::View).await?;
        if file.case_id.is_some() {
            return Err(AppError::Invalid(
                "相談の添付ファイルは編集できません".into(),
            ));
        }
        let user_id = actor.user_id.ok_or(AppError::Forbidden)?;
        let can_write = file.user_id == user_id;
        let token = secrets::token()?;
        let expires_at = self.now().0 + TOKEN_SECONDS * SECOND;
        let event = self.event(
            actor,
            "wopi.token",
            format!("file:{}", file.id),
            AuditOutcome::Success,
            if can_write { "write" } else { "read" },
        );
        self.store
            .create_wopi_token(
                &secrets::digest(&token),
                (file.id, user_id, can_write),
                expires_at,
                event,
            )
            .await?;
        Ok(WopiGrant {
            token,
            expires_at,
            file_name: file.file_name,
        })
    }

    /// The office server's request for `file_id` with `token`: unauthenticated unless the token
    /// is live, for this file, and its user still may see it.
    pub async fn wopi_session(
        &self,
        token: &str,
        file_id: i64,
        client: &str,
    ) -> Result<WopiSession> {
        let Some((token_file, user_id, can_write, expires_at)) =
            self.store.wopi_token(&secrets::digest(token)).await?
        else {
            return Err(AppError::Unauthenticated);
        };
        if token_file != file_id || expires_at <= self.now().0 {
            return Err(AppError::Unauthenticated);
        }
        let user = self.store.user(user_id).await?;
        if !user.active {
            return Err(AppError::Unauthenticated);
        }
        let actor = self.actor_of(&user, client);
        let Some(file) = self.store.file(file_id).await? else {
            return Err(AppError::NotFound);
        };
        // Sharing may have been withdrawn since the token was issued.
        if file.user_id != user_id && !self.store.is_file_shared_with(file.id, user_id).await? {
            return Err(AppError::NotFound);
        }
        Ok(WopiSession {
            can_write: can_write && file.user_id == user_id,
            file,
            actor,
        })
    }

    pub fn wopi_file_info(&self, s: &WopiSession) -> FileInfo {
        FileInfo {
            base_file_name: s.file.file_name.clone(),
            owner_id: s.file.user_id.to_string(),
            size: s.file.size,
            user_id: s.actor.user_id.unwrap_or_default().to_string(),
            user_friendly_name: s.actor.name.clone(),
            version: s.file.version.to_string(),
            user_can_write: s.can_write,
            read_only: !s.can_write,
            user_can_not_write_relative: true,
            supports_locks: true,
            supports_get_lock: true,
            supports_update: true,
            disable_print: false,
            last_modified_time: renkei_core::time::Timestamp(s.file.created_at).rfc3339(),
        }
    }

    /// GetFile: the bytes, audited as a view by the session's user.
    pub async fn wopi_get(&self, s: &WopiSession) -> Result<ByteStream> {
        self.append_audit(self.event(
            &s.actor,
            "file.view",
            format!("file:{}", s.file.id),
            AuditOutcome::Success,
            "office editor",
        ))
        .await?;
        self.open_file(&s.file, None).await
    }

    /// Lock, GetLock, RefreshLock, Unlock, UnlockAndRelock.
    pub async fn wopi_lock(&self, s: &WopiSession, op: LockOp) -> Result<WopiOutcome> {
        let now = self.now().0;
        let until = now + LOCK_SECONDS * SECOND;
        let id = s.file.id;
        if !s.can_write && op != LockOp::GetLock {
            return Err(AppError::Forbidden);
        }
        let swapped = match &op {
            LockOp::GetLock => {
                return Ok(WopiOutcome::Lock(
                    self.store.wopi_lock(id, now).await?.unwrap_or_default(),
                ));
            }
            LockOp::Lock(lock) => {
                check_lock_id(lock)?;
                self.store
                    .swap_wopi_lock(
                        id,
                        now,
                        |current| current.is_none() || current == Some(lock.as_str()),
                        Some((lock, until)),
                    )
                    .await?
            }
            LockOp::UnlockAndRelock { old, new } => {
                check_lock_id(new)?;
                self.store
                    .swap_wopi_lock(id, now, |c| c == Some(old.as_str()), Some((new, until)))
                    .await?
            }
            LockOp::RefreshLock(lock) => {
                self.store
                    .swap_wopi_lock(id, now, |c| c == Some(lock.as_str()), Some((lock, until)))
                    .await?
            }
            LockOp::Unlock(lock) => {
                self.store
                    .swap_wopi_lock(id, now, |c| c == Some(lock.as_str()), None)
                    .await?
            }
        };
        Ok(match swapped {
            Ok(()) => WopiOutcome::Done,
            Err(current) => WopiOutcome::Conflict(current.unwrap_or_default()),
        })
    }

    /// PutFile: saves new content when the request holds the file's lock (or the file is
    /// unlocked and still empty). Returns the new version, or the conflict.
    pub async fn wopi_put(
        &self,
        s: &WopiSession,
        lock: Option<&str>,
        bytes: Vec<u8>,
    ) -> Result<std::result::Result<i64, WopiOutcome>> {
        if !s.can_write {
            return Err(AppError::Forbidden);
        }
        if bytes.len() as i64 > MAX_SAVE_BYTES {
            return Err(AppError::Invalid(format!(
                "保存できるのは {} までです",
                crate::files::human_size(MAX_SAVE_BYTES)
            )));
        }
        let current = self.store.wopi_lock(s.file.id, self.now().0).await?;
        match (current, lock) {
            (Some(c), Some(l)) if c == l => {}
            (None, _) if s.file.size == 0 => {}
            (c, _) => return Ok(Err(WopiOutcome::Conflict(c.unwrap_or_default()))),
        }
        // Quota: the new content replaces the old.
        let used = self.store.box_usage(s.file.user_id).await?;
        if used - s.file.size + bytes.len() as i64 > crate::files::BOX_QUOTA {
            return Err(AppError::Invalid("HM-Box の容量を超えます".into()));
        }
        let size = bytes.len() as i64;
        // The new content goes to a new object; the file points at it only when the commit
        // (lock and version checked again, in one transaction) succeeds.
        let new_key = version_key(&s.file.object_key, &crate::secrets::token()?);
        let objects = self.objects()?;
        objects.put(&new_key, bytes).await?;
        let event = self.event(
            &s.actor,
            "wopi.save",
            format!("file:{}", s.file.id),
            AuditOutcome::Success,
            &format!("{size} bytes"),
        );
        let committed = self
            .store
            .commit_file_version(
                (s.file.id, s.file.version),
                (&new_key, size),
                (lock, self.now().0),
                event,
            )
            .await;
        let stale = match &committed {
            Ok(Ok((_, old_key))) => old_key.clone(),
            _ => new_key.clone(),
        };
        if let Err(e) = objects.delete(&stale).await {
            tracing::warn!(error = %e, "a replaced file object could not be deleted");
        }
        Ok(match committed? {
            Ok((version, _)) => Ok(version),
            Err(current) => Err(WopiOutcome::Conflict(current)),
        })
    }
}

impl App {
    /// The office server's proof keys, read from its discovery document (none: not loaded).
    pub fn set_wopi_proof_keys(&self, keys: Option<crate::wopi_proof::ProofKeys>) {
        let mut slot = self.wopi_keys.write().unwrap_or_else(|p| p.into_inner());
        *slot = keys;
    }

    /// Checks a WOPI request's proof: signed by the office server's key and fresh. Without a
    /// configured discovery document nothing is checked (a development setup); with one, a
    /// request is refused until the keys are loaded.
    pub fn check_wopi_proof(&self, proof: &crate::wopi_proof::Proof<'_>) -> bool {
        let keys = self.wopi_keys.read().unwrap_or_else(|p| p.into_inner());
        match keys.as_ref() {
            Some(k) => crate::wopi_proof::verify(k, proof, self.now().unix_seconds()),
            None => !self.config.wopi_proof_required,
        }
    }
}

/// The object key of a new version: the file's base key and a random suffix (`base~suffix`).
fn version_key(current: &str, suffix: &str) -> String {
    let base = current.split('~').next().unwrap_or(current);
    let suffix: String = suffix
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    format!("{base}~{suffix}")
}
