//! Rows of file consultation (ファイル開示相談) and HM-Box: uploads in progress, stored files,
//! shares, consultation cases with recipients, messages and double-reading findings. The bytes
//! themselves are in [`crate::objects::Objects`].

use renkei_core::audit::AuditEvent;

use crate::{Result, Store, StoreError, Tx, exec_db, exec_tx, with_db, with_tx};

/// A resumable upload in progress (tus): `received` of `length` bytes are staged.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Upload {
    pub id: String,
    pub user_id: i64,
    /// The consultation case it belongs to; `None`: the uploader's HM-Box.
    pub case_id: Option<i64>,
    pub file_name: String,
    pub content_type: String,
    pub length: i64,
    pub received: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A stored file, with its uploader's name.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredFile {
    pub id: i64,
    pub object_key: String,
    pub user_id: i64,
    pub case_id: Option<i64>,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub created_at: i64,
    /// HM-Box files are deleted at this time; case files have none.
    pub expires_at: Option<i64>,
    /// Bumped whenever the content is replaced (WOPI saves).
    pub version: i64,
    pub owner_login: String,
    pub owner_name: String,
}

macro_rules! file_select {
    ($rest:literal) => {
        concat!(
            "SELECT f.id, f.object_key, f.user_id, f.case_id, f.file_name, f.content_type, f.size, f.created_at, f.expires_at, f.version, u.login_id AS owner_login, u.name AS owner_name FROM files f JOIN users u ON u.id = f.user_id ",
            $rest
        )
    };
}

/// Someone a file is shared with.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct FileShare {
    pub user_id: i64,
    pub login_id: String,
    pub name: String,
    pub facility_name: String,
    pub created_at: i64,
}

/// What an upload may not push past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadCap {
    /// The user's HM-Box: files and uploads in progress together.
    Box { bytes: i64 },
    /// One consultation case: its files and uploads in progress together.
    Case { bytes: i64 },
}

/// A consultation case, with the names of its sender.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Case {
    pub id: i64,
    pub facility_id: i64,
    pub facility_name: String,
    pub user_id: i64,
    pub user_name: String,
    pub title: String,
    pub body: String,
    pub person_id: Option<i64>,
    pub allow_download: bool,
    pub double_reading: bool,
    pub created_at: i64,
}

macro_rules! case_select {
    ($rest:literal) => {
        concat!(
            "SELECT c.id, c.facility_id, f.name AS facility_name, c.user_id, u.name AS user_name, c.title, c.body, c.person_id, c.allow_download, c.double_reading, c.created_at FROM consultation_cases c JOIN facilities f ON f.id = c.facility_id JOIN users u ON u.id = c.user_id ",
            $rest
        )
    };
}

/// A new case: sender, text, options.
#[derive(Clone, Debug)]
pub struct NewCase {
    pub facility_id: i64,
    pub user_id: i64,
    pub title: String,
    pub body: String,
    pub person_id: Option<i64>,
    pub allow_download: bool,
    pub double_reading: bool,
    pub created_at: i64,
}

/// A recipient: a whole facility or one user, with a label for screens.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CaseRecipient {
    pub facility_id: Option<i64>,
    pub user_id: Option<i64>,
    pub label: String,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CaseMessage {
    pub id: i64,
    pub user_id: i64,
    pub user_name: String,
    pub facility_name: String,
    pub body: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CaseReading {
    pub user_id: i64,
    pub user_name: String,
    pub facility_name: String,
    pub findings: String,
    pub submitted_at: i64,
}

/// Bytes a user's HM-Box holds: files plus uploads in progress (`$1`: the user).
const BOX_USAGE: &str = "SELECT CAST(COALESCE((SELECT SUM(size) FROM files WHERE user_id = $1 AND case_id IS NULL), 0) + COALESCE((SELECT SUM(length) FROM uploads WHERE user_id = $1 AND case_id IS NULL), 0) AS BIGINT)";
/// Bytes a case holds: files plus uploads in progress (`$1`: the case).
const CASE_USAGE: &str = "SELECT CAST(COALESCE((SELECT SUM(size) FROM files WHERE case_id = $1), 0) + COALESCE((SELECT SUM(length) FROM uploads WHERE case_id = $1), 0) AS BIGINT)";

impl Store {
    /// Records a new upload if the cap allows it; `Ok(Err(used))` says how much was already
    /// used when it does not. Checked and inserted in one transaction that holds the owner's
    /// row (user or case), so two uploads at once cannot both squeeze past the cap.
    pub async fn create_upload(
        &self,
        upload: &Upload,
        cap: UploadCap,
    ) -> Result<std::result::Result<(), i64>> {
        let mut tx = self.begin().await?;
        // SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL locks the owner row.
        if let Tx::Postgres(t) = &mut tx {
            match (cap, upload.case_id) {
                (UploadCap::Case { .. }, Some(case_id)) => {
                    sqlx::query("SELECT id FROM consultation_cases WHERE id = $1 FOR UPDATE")
                        .bind(case_id)
                        .fetch_optional(&mut **t)
                        .await?;
                }
                _ => {
                    sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                        .bind(upload.user_id)
                        .fetch_optional(&mut **t)
                        .await?;
                }
            }
        }
        let (used, limit): (i64, i64) = match (cap, upload.case_id) {
            (UploadCap::Case { bytes }, Some(case_id)) => {
                let (used,): (i64,) = with_tx!(&mut tx, |c| {
                    sqlx::query_as(CASE_USAGE)
                        .bind(case_id)
                        .fetch_one(&mut *c)
                        .await
                })?;
                (used, bytes)
            }
            (UploadCap::Box { bytes }, None) => {
                let (used,): (i64,) = with_tx!(&mut tx, |c| {
                    sqlx::query_as(BOX_USAGE)
                        .bind(upload.user_id)
                        .fetch_one(&mut *c)
                        .await
                })?;
                (used, bytes)
            }
            _ => {
                return Err(StoreError::Internal(
                    "upload cap does not match its target".into(),
                ));
            }
        };
        if used + upload.length > limit {
            return Ok(Err(used));
        }
        exec_tx!(&mut tx, |c| {
            sqlx::query("INSERT INTO uploads (id, user_id, case_id, file_name, content_type, length, received, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8)")
                .bind(&upload.id)
                .bind(upload.user_id)
                .bind(upload.case_id)
                .bind(&upload.file_name)
                .bind(&upload.content_type)
                .bind(upload.length)
                .bind(upload.created_at)
                .bind(upload.expires_at)
                .execute(&mut *c)
                .await
        })?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    pub async fn upload(&self, id: &str) -> Result<Option<Upload>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT id, user_id, case_id, file_name, content_type, length, received, created_at, expires_at FROM uploads WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// Moves an upload's offset from `from` to `to`; false when someone else moved it first.
    pub async fn set_upload_received(&self, id: &str, from: i64, to: i64) -> Result<bool> {
        let n = exec_db!(&self.db, |pool| {
            sqlx::query("UPDATE uploads SET received = $1 WHERE id = $2 AND received = $3")
                .bind(to)
                .bind(id)
                .bind(from)
                .execute(pool)
                .await
        })?;
        Ok(n == 1)
    }

    /// Forgets an upload (cancelled or expired); true if it was there.
    pub async fn delete_upload(&self, id: &str) -> Result<bool> {
        let n = exec_db!(&self.db, |pool| {
            sqlx::query("DELETE FROM uploads WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
        })?;
        Ok(n == 1)
    }

    /// Uploads left unfinished past their expiry.
    pub async fn expired_uploads(&self, now: i64) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT id FROM uploads WHERE expires_at <= $1 ORDER BY expires_at")
                .bind(now)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Turns a complete upload into a stored file under `key`, with its audit event.
    pub async fn finish_upload(
        &self,
        upload_id: &str,
        key: &str,
        expires_at: Option<i64>,
        at: i64,
        audit: AuditEvent,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let (id,): (i64,) = with_tx!(&mut tx, |c| {
            sqlx::query_as("INSERT INTO files (object_key, user_id, case_id, file_name, content_type, size, created_at, expires_at, version) SELECT $1, user_id, case_id, file_name, content_type, length, $2, $3, 1 FROM uploads WHERE id = $4 AND received = length RETURNING id")
                .bind(key)
                .bind(at)
                .bind(expires_at)
                .bind(upload_id)
                .fetch_one(&mut *c)
                .await
        })?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM uploads WHERE id = $1")
                .bind(upload_id)
                .execute(&mut *c)
                .await
        })?;
        let mut audit = audit;
        audit.target = format!("file:{id}");
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn file(&self, id: i64) -> Result<Option<StoredFile>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(file_select!("WHERE f.id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// A user's own HM-Box files, newest first.
    pub async fn box_files(&self, user_id: i64) -> Result<Vec<StoredFile>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(file_select!(
                "WHERE f.user_id = $1 AND f.case_id IS NULL ORDER BY f.created_at DESC, f.id DESC"
            ))
            .bind(user_id)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// HM-Box files others shared with a user, newest first.
    pub async fn files_shared_with(&self, user_id: i64) -> Result<Vec<StoredFile>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(file_select!(
                "JOIN file_shares s ON s.file_id = f.id WHERE s.user_id = $1 AND f.case_id IS NULL ORDER BY f.created_at DESC, f.id DESC"
            ))
            .bind(user_id)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// Bytes a user's HM-Box holds (files plus uploads in progress).
    pub async fn box_usage(&self, user_id: i64) -> Result<i64> {
        let (used,): (i64,) = with_db!(&self.db, |pool| {
            sqlx::query_as(BOX_USAGE)
                .bind(user_id)
                .fetch_one(pool)
                .await
        })?;
        Ok(used)
    }

    pub async fn is_file_shared_with(&self, file_id: i64, user_id: i64) -> Result<bool> {
        let row: Option<(i64,)> = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT file_id FROM file_shares WHERE file_id = $1 AND user_id = $2")
                .bind(file_id)
                .bind(user_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.is_some())
    }

    pub async fn share_file(
        &self,
        file_id: i64,
        user_id: i64,
        at: i64,
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("INSERT INTO file_shares (file_id, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (file_id, user_id) DO NOTHING")
                .bind(file_id)
                .bind(user_id)
                .bind(at)
                .execute(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    pub async fn unshare_file(&self, file_id: i64, user_id: i64, audit: AuditEvent) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM file_shares WHERE file_id = $1 AND user_id = $2")
                .bind(file_id)
                .bind(user_id)
                .execute(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    pub async fn file_shares(&self, file_id: i64) -> Result<Vec<FileShare>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT s.user_id, u.login_id, u.name, f.name AS facility_name, s.created_at FROM file_shares s JOIN users u ON u.id = s.user_id JOIN facilities f ON f.id = u.facility_id WHERE s.file_id = $1 ORDER BY s.created_at, u.login_id")
                .bind(file_id)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// Files whose time is up at `now`, oldest first.
    pub async fn expired_files(&self, now: i64, limit: i64) -> Result<Vec<StoredFile>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(file_select!(
                "WHERE f.expires_at IS NOT NULL AND f.expires_at <= $1 ORDER BY f.expires_at, f.id LIMIT $2"
            ))
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// Removes a file's row and its shares, with the audit event of the deletion.
    pub async fn delete_file(&self, id: i64, audit: AuditEvent) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM wopi_tokens WHERE file_id = $1")
                .bind(id)
                .execute(&mut *c)
                .await
        })?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM wopi_locks WHERE file_id = $1")
                .bind(id)
                .execute(&mut *c)
                .await
        })?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM file_shares WHERE file_id = $1")
                .bind(id)
                .execute(&mut *c)
                .await
        })?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM files WHERE id = $1")
                .bind(id)
                .execute(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// Records new content of a file (an office editor saved it): new size and version.
    /// A save's commit point (WOPI PutFile): in one transaction, checks the caller still holds
    /// the lock (`lock`; an unlocked empty file may be written without one) and that nobody
    /// saved since `version`, then points the file at its new object (written beforehand under
    /// `new_key`) with its size, bumps the version and appends the audit event. A crash leaves
    /// the old content or the new, never a mix. Returns the new version and the old object
    /// key (for the caller to delete), or `Err(current lock)` when the check fails.
    pub async fn commit_file_version(
        &self,
        (id, version): (i64, i64),
        (new_key, size): (&str, i64),
        (lock, now): (Option<&str>, i64),
        audit: AuditEvent,
    ) -> Result<std::result::Result<(i64, String), String>> {
        let mut tx = self.begin().await?;
        let held: Option<(String,)> = with_tx!(&mut tx, |c| {
            sqlx::query_as("SELECT lock_id FROM wopi_locks WHERE file_id = $1 AND expires_at > $2")
                .bind(id)
                .bind(now)
                .fetch_optional(&mut *c)
                .await
        })?;
        let (old_key, old_size): (String, i64) = with_tx!(&mut tx, |c| {
            sqlx::query_as("SELECT object_key, size FROM files WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *c)
                .await
        })?;
        let held = held.map(|(l,)| l);
        let allowed = match (&held, lock) {
            (Some(h), Some(l)) => h == l,
            (None, _) => old_size == 0,
            _ => false,
        };
        if !allowed {
            return Ok(Err(held.unwrap_or_default()));
        }
        let bumped: Option<(i64,)> = with_tx!(&mut tx, |c| {
            sqlx::query_as("UPDATE files SET object_key = $1, size = $2, version = version + 1 WHERE id = $3 AND version = $4 RETURNING version")
                .bind(new_key)
                .bind(size)
                .bind(id)
                .bind(version)
                .fetch_optional(&mut *c)
                .await
        })?;
        let Some((new_version,)) = bumped else {
            return Ok(Err(held.unwrap_or_default()));
        };
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Ok((new_version, old_key)))
    }

    pub async fn replace_file_content(&self, id: i64, size: i64, audit: AuditEvent) -> Result<i64> {
        let mut tx = self.begin().await?;
        let (version,): (i64,) = with_tx!(&mut tx, |c| {
            sqlx::query_as(
                "UPDATE files SET size = $1, version = version + 1 WHERE id = $2 RETURNING version",
            )
            .bind(size)
            .bind(id)
            .fetch_one(&mut *c)
            .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Opens a case with its recipients (facility or user each).
    pub async fn create_case(
        &self,
        case: &NewCase,
        recipients: &[(Option<i64>, Option<i64>)],
        audit: AuditEvent,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let (id,): (i64,) = with_tx!(&mut tx, |c| {
            sqlx::query_as("INSERT INTO consultation_cases (facility_id, user_id, title, body, person_id, allow_download, double_reading, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id")
                .bind(case.facility_id)
                .bind(case.user_id)
                .bind(&case.title)
                .bind(&case.body)
                .bind(case.person_id)
                .bind(case.allow_download)
                .bind(case.double_reading)
                .bind(case.created_at)
                .fetch_one(&mut *c)
                .await
        })?;
        for (facility_id, user_id) in recipients {
            exec_tx!(&mut tx, |c| {
                sqlx::query(
                    "INSERT INTO case_recipients (case_id, facility_id, user_id) VALUES ($1, $2, $3)",
                )
                .bind(id)
                .bind(*facility_id)
                .bind(*user_id)
                .execute(&mut *c)
                .await
            })?;
        }
        let mut audit = audit;
        audit.target = format!("case:{id}");
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn case(&self, id: i64) -> Result<Option<Case>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(case_select!("WHERE c.id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// Whether a user (of a facility) is one of the case's recipients.
    pub async fn is_case_recipient(
        &self,
        case_id: i64,
        user_id: i64,
        facility_id: i64,
    ) -> Result<bool> {
        let row: Option<(i64,)> = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT case_id FROM case_recipients WHERE case_id = $1 AND (user_id = $2 OR facility_id = $3) LIMIT 1")
                .bind(case_id)
                .bind(user_id)
                .bind(facility_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.is_some())
    }

    /// Cases a user sent or received (directly or through their facility), newest first.
    pub async fn cases_for(&self, user_id: i64, facility_id: i64) -> Result<Vec<Case>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(case_select!(
                "WHERE c.user_id = $1 OR EXISTS (SELECT 1 FROM case_recipients r WHERE r.case_id = c.id AND (r.user_id = $1 OR r.facility_id = $2)) ORDER BY c.created_at DESC, c.id DESC LIMIT 200"
            ))
            .bind(user_id)
            .bind(facility_id)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    pub async fn case_recipients(&self, case_id: i64) -> Result<Vec<CaseRecipient>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT r.facility_id, r.user_id, CASE WHEN r.user_id IS NULL THEN f.name ELSE u.name || '（' || uf.name || '）' END AS label FROM case_recipients r LEFT JOIN facilities f ON f.id = r.facility_id LEFT JOIN users u ON u.id = r.user_id LEFT JOIN facilities uf ON uf.id = u.facility_id WHERE r.case_id = $1 ORDER BY r.user_id IS NOT NULL, label")
                .bind(case_id)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    pub async fn case_files(&self, case_id: i64) -> Result<Vec<StoredFile>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(file_select!("WHERE f.case_id = $1 ORDER BY f.id"))
                .bind(case_id)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// Bytes a case holds (files plus uploads in progress).
    pub async fn case_usage(&self, case_id: i64) -> Result<i64> {
        let (used,): (i64,) = with_db!(&self.db, |pool| {
            sqlx::query_as(CASE_USAGE)
                .bind(case_id)
                .fetch_one(pool)
                .await
        })?;
        Ok(used)
    }

    pub async fn add_case_message(
        &self,
        case_id: i64,
        user_id: i64,
        body: &str,
        at: i64,
        audit: AuditEvent,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let (id,): (i64,) = with_tx!(&mut tx, |c| {
            sqlx::query_as("INSERT INTO case_messages (case_id, user_id, body, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
                .bind(case_id)
                .bind(user_id)
                .bind(body)
                .bind(at)
                .fetch_one(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn case_messages(&self, case_id: i64) -> Result<Vec<CaseMessage>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT m.id, m.user_id, u.name AS user_name, f.name AS facility_name, m.body, m.created_at FROM case_messages m JOIN users u ON u.id = m.user_id JOIN facilities f ON f.id = u.facility_id WHERE m.case_id = $1 ORDER BY m.created_at, m.id")
                .bind(case_id)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// Records a reader's findings. At most `max_readers` different readers per case; a reader
    /// records once. Conflict `reading_full` or `reading_done` otherwise.
    pub async fn submit_reading(
        &self,
        case_id: i64,
        user_id: i64,
        findings: &str,
        (at, max_readers): (i64, i64),
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        if let Tx::Postgres(t) = &mut tx {
            sqlx::query("SELECT id FROM consultation_cases WHERE id = $1 FOR UPDATE")
                .bind(case_id)
                .fetch_optional(&mut **t)
                .await?;
        }
        let (count, mine): (i64, i64) = with_tx!(&mut tx, |c| {
            sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN user_id = $2 THEN 1 ELSE 0 END), 0) AS BIGINT) FROM case_readings WHERE case_id = $1")
                .bind(case_id)
                .bind(user_id)
                .fetch_one(&mut *c)
                .await
        })?;
        if mine > 0 {
            return Err(StoreError::Conflict("reading_done".into()));
        }
        if count >= max_readers {
            return Err(StoreError::Conflict("reading_full".into()));
        }
        exec_tx!(&mut tx, |c| {
            sqlx::query("INSERT INTO case_readings (case_id, user_id, findings, submitted_at) VALUES ($1, $2, $3, $4)")
                .bind(case_id)
                .bind(user_id)
                .bind(findings)
                .bind(at)
                .execute(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    pub async fn case_readings(&self, case_id: i64) -> Result<Vec<CaseReading>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT r.user_id, u.name AS user_name, f.name AS facility_name, r.findings, r.submitted_at FROM case_readings r JOIN users u ON u.id = r.user_id JOIN facilities f ON f.id = u.facility_id WHERE r.case_id = $1 ORDER BY r.submitted_at, r.user_id")
                .bind(case_id)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// Active users whose login ID is one of `logins` (recipients and shares are named by login
    /// ID): (id, login, name, facility id).
    pub async fn users_by_logins(
        &self,
        logins: &[String],
    ) -> Result<Vec<(i64, String, String, i64)>> {
        let mut out = Vec::new();
        for login in logins {
            let row: Option<(i64, String, String, i64)> = with_db!(&self.db, |pool| {
                sqlx::query_as("SELECT id, login_id, name, facility_id FROM users WHERE login_id = $1 AND active = TRUE")
                    .bind(login)
                    .fetch_optional(pool)
                    .await
            })?;
            out.extend(row);
        }
        Ok(out)
    }

    pub async fn create_wopi_token(
        &self,
        digest: &str,
        (file_id, user_id, can_write): (i64, i64, bool),
        expires_at: i64,
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("INSERT INTO wopi_tokens (digest, file_id, user_id, can_write, expires_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(digest)
                .bind(file_id)
                .bind(user_id)
                .bind(can_write)
                .bind(expires_at)
                .execute(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// (file, user, may write, expiry) of a token digest.
    pub async fn wopi_token(&self, digest: &str) -> Result<Option<(i64, i64, bool, i64)>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT file_id, user_id, can_write, expires_at FROM wopi_tokens WHERE digest = $1",
            )
            .bind(digest)
            .fetch_optional(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// The file's lock if it has not expired at `now`.
    pub async fn wopi_lock(&self, file_id: i64, now: i64) -> Result<Option<String>> {
        let row: Option<(String,)> = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT lock_id FROM wopi_locks WHERE file_id = $1 AND expires_at > $2")
                .bind(file_id)
                .bind(now)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|(l,)| l))
    }

    /// Compare-and-set of a file's lock in one transaction: when the current lock (an expired
    /// one counts as none) is acceptable to `accept`, it becomes `new` (`None`: unlocked).
    /// Returns `Err(current)` otherwise.
    pub async fn swap_wopi_lock(
        &self,
        file_id: i64,
        now: i64,
        accept: impl FnOnce(Option<&str>) -> bool + Send,
        new: Option<(&str, i64)>,
    ) -> Result<std::result::Result<(), Option<String>>> {
        let mut tx = self.begin().await?;
        if let Tx::Postgres(t) = &mut tx {
            sqlx::query("SELECT id FROM files WHERE id = $1 FOR UPDATE")
                .bind(file_id)
                .fetch_optional(&mut **t)
                .await?;
        }
        let current: Option<(String,)> = with_tx!(&mut tx, |c| {
            sqlx::query_as("SELECT lock_id FROM wopi_locks WHERE file_id = $1 AND expires_at > $2")
                .bind(file_id)
                .bind(now)
                .fetch_optional(&mut *c)
                .await
        })?;
        let current = current.map(|(l,)| l);
        if !accept(current.as_deref()) {
            return Ok(Err(current));
        }
        exec_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM wopi_locks WHERE file_id = $1")
                .bind(file_id)
                .execute(&mut *c)
                .await
        })?;
        if let Some((lock, expires_at)) = new {
            exec_tx!(&mut tx, |c| {
                sqlx::query(
                    "INSERT INTO wopi_locks (file_id, lock_id, expires_at) VALUES ($1, $2, $3)",
                )
                .bind(file_id)
                .bind(lock)
                .bind(expires_at)
                .execute(&mut *c)
                .await
            })?;
        }
        tx.commit().await?;
        Ok(Ok(()))
    }
}
