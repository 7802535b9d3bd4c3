//! File consultation (ファイル開示相談) and HM-Box: resumable uploads (the tus protocol's model:
//! declare the length, append at the offset, resume after a dropped connection), downloads,
//! shares, expiry, consultation cases with a message thread and double reading (二重読影).
//!
//! Rules:
//! - A case file is at most [`MAX_CASE_FILE`] bytes, a case at most [`MAX_CASE_BYTES`]; an
//!   HM-Box holds at most [`BOX_QUOTA`] per account. Lengths are declared before the first byte
//!   and reserved atomically, and no upload may pass its declared length, so a limit can never be
//!   crossed mid-stream; an unfinished upload is dropped after [`UPLOAD_TTL_SECONDS`].
//! - HM-Box files are deleted [`BOX_RETENTION_SECONDS`] after upload, from the database and the
//!   object store, each deletion audited ([`App::expire_files`]).
//! - Who may see what: an HM-Box file, its owner and the users it is shared with; a case, its
//!   sender and its recipients (named users, or every user of a named facility). To anyone else a
//!   file or case does not exist (not found, never forbidden). Downloads of case files need the
//!   sender's permission; every view and download is audited, allowed or denied.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use renkei_core::audit::AuditOutcome;
pub use renkei_store::files::{
    Case, CaseMessage, CaseReading, CaseRecipient, FileShare, StoredFile,
};
use renkei_store::files::{NewCase, Upload, UploadCap};
use renkei_store::objects::{ByteStream, Objects, StagingWriter};

use crate::{Actor, App, AppError, Result};

pub const MIB: i64 = 1024 * 1024;
/// One file of a consultation case.
pub const MAX_CASE_FILE: i64 = 20 * MIB;
/// All files of one consultation case together.
pub const MAX_CASE_BYTES: i64 = 700 * MIB;
/// One account's HM-Box.
pub const BOX_QUOTA: i64 = 5 * 1024 * MIB;
/// HM-Box files are deleted this long after upload.
pub const BOX_RETENTION_SECONDS: i64 = 7 * 24 * 3600;
/// An upload not finished within this time is dropped.
pub const UPLOAD_TTL_SECONDS: i64 = 24 * 3600;
/// Files shown as pictures are decoded up to this size.
pub const MAX_PREVIEW_BYTES: i64 = 50 * MIB;

const SECOND: i64 = 1_000_000;

/// `12.3 MB` (binary units, as file managers in Japan show them).
pub fn human_size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    if bytes >= 1024 * MIB {
        format!("{:.1} GB", b / (1024.0 * MIB as f64))
    } else if bytes >= MIB {
        format!("{:.1} MB", b / MIB as f64)
    } else if bytes >= 1024 {
        format!("{:.1} KB", b / 1024.0)
    } else {
        format!("{bytes} バイト")
    }
}

/// Where an upload goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadTarget {
    Box,
    Case(i64),
}

/// A new upload as the client declares it.
#[derive(Clone, Debug)]
pub struct UploadRequest {
    pub target: UploadTarget,
    pub file_name: String,
    /// Empty: guessed from the file name.
    pub content_type: String,
    pub length: i64,
}

/// The state of an upload (tus `HEAD`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadState {
    pub id: String,
    pub length: i64,
    pub received: i64,
    pub expires_at: i64,
    /// Set once the upload is complete and stored.
    pub file_id: Option<i64>,
}

/// How a file is wanted: to save (download) or to look at in the browser (view).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileUse {
    Download,
    View,
}

/// A user's HM-Box.
#[derive(Clone, Debug)]
pub struct BoxView {
    pub files: Vec<(StoredFile, Vec<FileShare>)>,
    pub shared_with_me: Vec<StoredFile>,
    pub used: i64,
    pub quota: i64,
}

/// A consultation case as one participant sees it.
#[derive(Clone, Debug)]
pub struct CaseView {
    pub case: Case,
    pub recipients: Vec<CaseRecipient>,
    pub files: Vec<StoredFile>,
    pub messages: Vec<CaseMessage>,
    /// The findings this participant may see: their own, or both once both are in.
    pub readings: Vec<CaseReading>,
    pub readings_in: usize,
    pub is_sender: bool,
    /// A recipient who may still record findings (double reading, not yet recorded, a slot left).
    pub can_read: bool,
    pub can_download: bool,
    /// The linked patient: (common ID, name).
    pub patient: Option<(String, String)>,
    pub used: i64,
}

/// Input of a new case.
#[derive(Clone, Debug, Default)]
pub struct CaseInput {
    pub title: String,
    pub body: String,
    /// The patient's HM card (QR payload or common ID); empty: no patient.
    pub card: String,
    pub recipient_facilities: Vec<i64>,
    /// Login IDs of recipient users, separated by spaces, commas or new lines.
    pub recipient_logins: String,
    pub allow_download: bool,
    pub double_reading: bool,
}

/// The number of readers in a double reading.
pub const READERS: i64 = 2;

/// Uploads being appended to right now (one writer per upload).
#[derive(Default)]
pub(crate) struct BusyUploads(Mutex<HashSet<String>>);

impl BusyUploads {
    fn claim(self: &Arc<Self>, id: &str) -> Option<BusyGuard> {
        let mut set = match self.0.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if set.insert(id.to_string()) {
            Some(BusyGuard {
                set: self.clone(),
                id: id.to_string(),
            })
        } else {
            None
        }
    }
}

struct BusyGuard {
    set: Arc<BusyUploads>,
    id: String,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut set = match self.set.0.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        set.remove(&self.id);
    }
}

/// Appends one request's bytes to an upload. Write the chunks, then [`UploadAppender::finish`]
/// (also after the connection dropped: what arrived is kept, and the client resumes there).
pub struct UploadAppender {
    upload: Upload,
    writer: StagingWriter,
    actor: Actor,
    _busy: BusyGuard,
}

impl UploadAppender {
    /// Appends a chunk; refused (and nothing of it written) if it would pass the declared length.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let at = self.upload.received + self.writer.written() as i64;
        if at + chunk.len() as i64 > self.upload.length {
            return Err(AppError::Invalid(format!(
                "宣言されたファイルサイズ（{} バイト）を超えるデータが送られました",
                self.upload.length
            )));
        }
        Ok(self.writer.write(chunk).await?)
    }

    /// Makes the appended bytes durable, records the new offset, and stores the file once it is
    /// complete.
    pub async fn finish(self, app: &App) -> Result<UploadState> {
        let written = self.writer.finish().await? as i64;
        let received = self.upload.received + written;
        if written > 0
            && !app
                .store
                .set_upload_received(&self.upload.id, self.upload.received, received)
                .await?
        {
            return Err(AppError::Conflict(
                "このアップロードは別の接続から更新されました。状態を確かめてから再開してください"
                    .into(),
            ));
        }
        let mut state = UploadState {
            id: self.upload.id.clone(),
            length: self.upload.length,
            received,
            expires_at: self.upload.expires_at,
            file_id: None,
        };
        if received == self.upload.length {
            state.file_id = Some(app.store_upload(&self.actor, &self.upload).await?);
        }
        Ok(state)
    }
}

/// The file name as given, without any directory part or control characters.
fn clean_file_name(name: &str) -> Result<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim().to_string();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        return Err(AppError::Invalid("ファイル名がありません".into()));
    }
    if cleaned.chars().count() > 200 {
        return Err(AppError::Invalid(
            "ファイル名が長すぎます（200 文字まで）".into(),
        ));
    }
    Ok(cleaned)
}

/// The media type for a file name, for the kinds a consultation carries.
pub fn content_type_for(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "dcm" | "dicom" => "application/dicom",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "bmp" => "image/bmp",
        "gif" => "image/gif",
        "tif" | "tiff" => "image/tiff",
        "pdf" => "application/pdf",
        "txt" => "text/plain; charset=utf-8",
        "csv" => "text/csv",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "doc" => "application/msword",
        "xls" => "application/vnd.ms-excel",
        "ppt" => "application/vnd.ms-powerpoint",
        "odt" => "application/vnd.oasis.opendocument.text",
        "ods" => "application/vnd.oasis.opendocument.spreadsheet",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// Whether a file is shown as a picture (rendered to PNG on the server).
pub fn is_picture(file: &StoredFile) -> bool {
    let t = file.content_type.as_str();
    t == "application/dicom"
        || matches!(
            t,
            "image/jpeg" | "image/png" | "image/bmp" | "image/gif" | "image/tiff"
        )
}

fn random_id() -> Result<String> {
    Ok(hex::encode(crate::secrets::random_bytes::<16>()?))
}

impl App {
    /// Adds the file store (local disk or S3); file use cases fail plainly without one.
    pub fn with_objects(mut self, objects: Objects) -> App {
        self.objects = Some(objects);
        self
    }

    pub(crate) fn objects(&self) -> Result<&Objects> {
        self.objects.as_ref().ok_or_else(|| {
            AppError::Unavailable("ファイルの保存先が設定されていません（file_store）".into())
        })
    }

    fn user_of(actor: &Actor) -> Result<(i64, i64)> {
        match (actor.user_id, actor.facility_id) {
            (Some(u), Some(f)) => Ok((u, f)),
            _ => Err(AppError::Forbidden),
        }
    }

    /// Declares a new upload; checks the name, the size limits and rights, and reserves space.
    pub async fn create_upload(&self, actor: &Actor, req: &UploadRequest) -> Result<UploadState> {
        let (user_id, _) = Self::user_of(actor)?;
        self.objects()?;
        let file_name = clean_file_name(&req.file_name)?;
        if req.length <= 0 {
            return Err(AppError::Invalid(
                "空のファイルはアップロードできません".into(),
            ));
        }
        let content_type = if req.content_type.trim().is_empty()
            || req.content_type == "application/octet-stream"
        {
            content_type_for(&file_name).to_string()
        } else {
            req.content_type.trim().to_string()
        };
        let (case_id, cap) = match req.target {
            UploadTarget::Box => {
                if req.length > BOX_QUOTA {
                    return Err(AppError::Invalid(format!(
                        "HM-Box の容量は {} です（このファイルは {}）",
                        human_size(BOX_QUOTA),
                        human_size(req.length)
                    )));
                }
                (None, UploadCap::Box { bytes: BOX_QUOTA })
            }
            UploadTarget::Case(case_id) => {
                let case = self.case_for(actor, case_id).await?;
                if req.length > MAX_CASE_FILE {
                    return Err(AppError::Invalid(format!(
                        "ファイル開示相談に添付できるのは 1 ファイル {} までです（{} は {}）",
                        human_size(MAX_CASE_FILE),
                        file_name,
                        human_size(req.length)
                    )));
                }
                (
                    Some(case.id),
                    UploadCap::Case {
                        bytes: MAX_CASE_BYTES,
                    },
                )
            }
        };
        let now = self.now().0;
        let upload = Upload {
            id: random_id()?,
            user_id,
            case_id,
            file_name: file_name.clone(),
            content_type,
            length: req.length,
            received: 0,
            created_at: now,
            expires_at: now + UPLOAD_TTL_SECONDS * SECOND,
        };
        match self.store.create_upload(&upload, cap).await? {
            Ok(()) => Ok(UploadState {
                id: upload.id,
                length: upload.length,
                received: 0,
                expires_at: upload.expires_at,
                file_id: None,
            }),
            Err(used) => Err(AppError::Invalid(match cap {
                UploadCap::Box { bytes } => format!(
                    "HM-Box の容量 {} を超えます（使用中 {}、残り {}、このファイルは {}）",
                    human_size(bytes),
                    human_size(used),
                    human_size(bytes - used),
                    human_size(req.length)
                ),
                UploadCap::Case { bytes } => format!(
                    "1 件の相談に添付できるのは合計 {} までです（添付済み {}、残り {}、{} は {}）",
                    human_size(bytes),
                    human_size(used),
                    human_size(bytes - used),
                    file_name,
                    human_size(req.length)
                ),
            })),
        }
    }

    /// An upload of the actor's; anyone else's is not found.
    async fn own_upload(&self, actor: &Actor, id: &str) -> Result<Upload> {
        let (user_id, _) = Self::user_of(actor)?;
        match self.store.upload(id).await? {
            Some(u) if u.user_id == user_id => Ok(u),
            _ => Err(AppError::NotFound),
        }
    }

    /// Where an upload stands (tus `HEAD`).
    pub async fn upload_state(&self, actor: &Actor, id: &str) -> Result<UploadState> {
        let u = self.own_upload(actor, id).await?;
        Ok(UploadState {
            id: u.id,
            length: u.length,
            received: u.received,
            expires_at: u.expires_at,
            file_id: None,
        })
    }

    /// Starts appending at `offset`, which must be where the upload stands (tus `PATCH`).
    pub async fn append_upload(
        &self,
        actor: &Actor,
        id: &str,
        offset: i64,
    ) -> Result<UploadAppender> {
        let upload = self.own_upload(actor, id).await?;
        let Some(busy) = self.busy_uploads.claim(id) else {
            return Err(AppError::Conflict(
                "このアップロードには別の接続が書き込み中です".into(),
            ));
        };
        if offset != upload.received {
            return Err(AppError::Conflict(format!(
                "送信位置が違います（受信済み {} バイト、指定 {} バイト）",
                upload.received, offset
            )));
        }
        if upload.expires_at <= self.now().0 {
            return Err(AppError::NotFound);
        }
        let writer = self
            .objects()?
            .append_staged(&upload.id, upload.received as u64)
            .await?;
        Ok(UploadAppender {
            upload,
            writer,
            actor: actor.clone(),
            _busy: busy,
        })
    }

    /// Moves a complete upload into the object store and records the file.
    async fn store_upload(&self, actor: &Actor, upload: &Upload) -> Result<i64> {
        let objects = self.objects()?;
        let key = match upload.case_id {
            Some(case_id) => format!("case/{case_id}/{}", random_id()?),
            None => format!("box/{}", random_id()?),
        };
        objects.commit_staged(&upload.id, &key).await?;
        let now = self.now().0;
        let expires_at = match upload.case_id {
            Some(_) => None,
            None => Some(now + BOX_RETENTION_SECONDS * SECOND),
        };
        let event = self.event(
            actor,
            if upload.case_id.is_some() {
                "case.file.upload"
            } else {
                "box.upload"
            },
            String::new(),
            AuditOutcome::Success,
            &format!(
                "{} bytes{}",
                upload.length,
                upload
                    .case_id
                    .map(|c| format!(", case:{c}"))
                    .unwrap_or_default()
            ),
        );
        match self
            .store
            .finish_upload(&upload.id, &key, expires_at, now, event)
            .await
        {
            Ok(id) => Ok(id),
            Err(e) => {
                // Nothing half-stored: the object goes if its row could not be written.
                let _ = objects.delete(&key).await;
                Err(e.into())
            }
        }
    }

    /// Cancels an upload (tus `DELETE`): its staged bytes and its reservation go.
    pub async fn cancel_upload(&self, actor: &Actor, id: &str) -> Result<()> {
        let upload = self.own_upload(actor, id).await?;
        let Some(_busy) = self.busy_uploads.claim(id) else {
            return Err(AppError::Conflict(
                "このアップロードには別の接続が書き込み中です".into(),
            ));
        };
        self.store.delete_upload(&upload.id).await?;
        self.objects()?.discard_staged(&upload.id).await?;
        Ok(())
    }

    /// Drops uploads left unfinished past their time (a job); returns how many.
    pub async fn expire_uploads(&self) -> Result<usize> {
        let objects = self.objects()?;
        let mut n = 0;
        for id in self.store.expired_uploads(self.now().0).await? {
            let Some(_busy) = self.busy_uploads.claim(&id) else {
                continue;
            };
            if self.store.delete_upload(&id).await? {
                n += 1;
            }
            objects.discard_staged(&id).await?;
        }
        Ok(n)
    }

    /// Deletes HM-Box files whose time is up, from the object store and then the database, each
    /// deletion audited (a job); returns how many.
    pub async fn expire_files(&self) -> Result<usize> {
        let objects = self.objects()?;
        let system = Actor::system("box-expiry");
        let mut n = 0;
        loop {
            let due = self.store.expired_files(self.now().0, 100).await?;
            if due.is_empty() {
                return Ok(n);
            }
            for file in due {
                objects.delete(&file.object_key).await?;
                let event = self.event(
                    &system,
                    "box.expire",
                    format!("file:{}", file.id),
                    AuditOutcome::Success,
                    &format!("owner user:{}, {} bytes", file.user_id, file.size),
                );
                self.store.delete_file(file.id, event).await?;
                n += 1;
            }
        }
    }

    /// The actor's HM-Box: own files with their shares, files shared with them, usage.
    pub async fn hm_box(&self, actor: &Actor) -> Result<BoxView> {
        let (user_id, _) = Self::user_of(actor)?;
        let mut files = Vec::new();
        for f in self.store.box_files(user_id).await? {
            let shares = self.store.file_shares(f.id).await?;
            files.push((f, shares));
        }
        Ok(BoxView {
            files,
            shared_with_me: self.store.files_shared_with(user_id).await?,
            used: self.store.box_usage(user_id).await?,
            quota: BOX_QUOTA,
        })
    }

    /// An HM-Box file of the actor's own; anything else is not found.
    async fn own_box_file(&self, actor: &Actor, file_id: i64) -> Result<StoredFile> {
        let (user_id, _) = Self::user_of(actor)?;
        match self.store.file(file_id).await? {
            Some(f) if f.case_id.is_none() && f.user_id == user_id => Ok(f),
            _ => Err(AppError::NotFound),
        }
    }

    /// Shares an HM-Box file with the named users (login IDs); returns their names.
    pub async fn share_box_file(
        &self,
        actor: &Actor,
        file_id: i64,
        logins: &str,
    ) -> Result<Vec<String>> {
        let (user_id, _) = Self::user_of(actor)?;
        let file = self.own_box_file(actor, file_id).await?;
        if split_logins(logins).is_empty() {
            return Err(AppError::Invalid(
                "共有する相手の利用者IDを入力してください".into(),
            ));
        }
        let found = self.users_named(logins, "利用者IDが見つかりません").await?;
        let mut names = Vec::new();
        for (id, login, name, _) in found {
            if id == user_id {
                continue;
            }
            let event = self.event(
                actor,
                "box.share",
                format!("file:{}", file.id),
                AuditOutcome::Success,
                &format!("with user:{id} ({login})"),
            );
            self.store
                .share_file(file.id, id, self.now().0, event)
                .await?;
            names.push(name);
        }
        Ok(names)
    }

    /// Stops sharing an HM-Box file with one user.
    pub async fn unshare_box_file(&self, actor: &Actor, file_id: i64, user_id: i64) -> Result<()> {
        let file = self.own_box_file(actor, file_id).await?;
        let event = self.event(
            actor,
            "box.unshare",
            format!("file:{}", file.id),
            AuditOutcome::Success,
            &format!("with user:{user_id}"),
        );
        Ok(self.store.unshare_file(file.id, user_id, event).await?)
    }

    /// Deletes an HM-Box file before its time (its owner).
    pub async fn delete_box_file(&self, actor: &Actor, file_id: i64) -> Result<()> {
        let file = self.own_box_file(actor, file_id).await?;
        self.objects()?.delete(&file.object_key).await?;
        let event = self.event(
            actor,
            "box.delete",
            format!("file:{}", file.id),
            AuditOutcome::Success,
            &format!("{} bytes", file.size),
        );
        Ok(self.store.delete_file(file.id, event).await?)
    }

    /// Checks that the actor may have a file for `purpose`, audits the attempt either way, and
    /// returns the file's record. Denied: not found to strangers; forbidden to a case participant
    /// who may look but not download.
    pub async fn file_access(
        &self,
        actor: &Actor,
        file_id: i64,
        purpose: FileUse,
    ) -> Result<StoredFile> {
        let action = match purpose {
            FileUse::Download => "file.download",
            FileUse::View => "file.view",
        };
        let target = format!("file:{file_id}");
        let verdict = self.file_verdict(actor, file_id, purpose).await;
        let (outcome, detail) = match &verdict {
            Ok(_) => (AuditOutcome::Success, ""),
            Err(AppError::Forbidden) => (AuditOutcome::Denied, "download not allowed"),
            Err(AppError::NotFound) => (AuditOutcome::Denied, "no access"),
            Err(_) => (AuditOutcome::Failure, "error"),
        };
        self.append_audit(self.event(actor, action, target, outcome, detail))
            .await?;
        verdict
    }

    async fn file_verdict(
        &self,
        actor: &Actor,
        file_id: i64,
        purpose: FileUse,
    ) -> Result<StoredFile> {
        let (user_id, facility_id) = Self::user_of(actor).map_err(|_| AppError::NotFound)?;
        let Some(file) = self.store.file(file_id).await? else {
            return Err(AppError::NotFound);
        };
        match file.case_id {
            None => {
                if file.user_id == user_id
                    || self.store.is_file_shared_with(file.id, user_id).await?
                {
                    Ok(file)
                } else {
                    Err(AppError::NotFound)
                }
            }
            Some(case_id) => {
                let Some(case) = self.store.case(case_id).await? else {
                    return Err(AppError::NotFound);
                };
                let sender = case.user_id == user_id;
                if !sender
                    && !self
                        .store
                        .is_case_recipient(case.id, user_id, facility_id)
                        .await?
                {
                    return Err(AppError::NotFound);
                }
                if purpose == FileUse::Download
                    && !sender
                    && file.user_id != user_id
                    && !case.allow_download
                {
                    return Err(AppError::Forbidden);
                }
                Ok(file)
            }
        }
    }

    /// The bytes of a file the actor was allowed ([`App::file_access`]), or of a range of them.
    pub async fn open_file(
        &self,
        file: &StoredFile,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ByteStream> {
        Ok(self.objects()?.get(&file.object_key, range).await?)
    }

    /// All the bytes of an allowed file, for rendering it as a picture.
    pub async fn file_bytes(&self, file: &StoredFile) -> Result<Vec<u8>> {
        if file.size > MAX_PREVIEW_BYTES {
            return Err(AppError::Invalid(format!(
                "{} を超えるファイルは画面に表示できません。ダウンロードしてください",
                human_size(MAX_PREVIEW_BYTES)
            )));
        }
        Ok(self.objects()?.get_all(&file.object_key).await?)
    }

    /// Opens a consultation case for the named recipients; returns its id.
    pub async fn create_case(&self, actor: &Actor, input: &CaseInput) -> Result<i64> {
        let (user_id, facility_id) = Self::user_of(actor)?;
        let title = input.title.trim();
        if title.is_empty() {
            return Err(AppError::Invalid("件名を入力してください".into()));
        }
        if title.chars().count() > 200 {
            return Err(AppError::Invalid("件名は 200 文字までです".into()));
        }
        if input.body.chars().count() > 20_000 {
            return Err(AppError::Invalid("相談内容は 20,000 文字までです".into()));
        }
        let mut recipients: Vec<(Option<i64>, Option<i64>)> = Vec::new();
        for &f in &input.recipient_facilities {
            let facility = self
                .store
                .facility(f)
                .await
                .map_err(|_| AppError::Invalid("宛先の施設が見つかりません".into()))?;
            if !facility.active {
                return Err(AppError::Invalid(format!(
                    "{} は現在参加していません",
                    facility.name
                )));
            }
            if !recipients.contains(&(Some(f), None)) {
                recipients.push((Some(f), None));
            }
        }
        let found = self
            .users_named(&input.recipient_logins, "宛先の利用者IDが見つかりません")
            .await?;
        for (id, _, _, _) in found {
            if id != user_id && !recipients.contains(&(None, Some(id))) {
                recipients.push((None, Some(id)));
            }
        }
        if recipients.is_empty() {
            return Err(AppError::Invalid(
                "宛先（施設または利用者）を 1 つ以上指定してください".into(),
            ));
        }
        let person_id = if input.card.trim().is_empty() {
            None
        } else {
            let payload = renkei_identity::CardPayload::parse(input.card.trim())
                .map_err(|e| AppError::Invalid(e.to_string()))?;
            let Some(mut person) = self.store.person_by_common_id(&payload.id.digits()).await?
            else {
                return Err(AppError::Invalid(
                    "このカードは使用できません。発行施設または事務局にお問い合わせください".into(),
                ));
            };
            if let Some(survivor) = person.merged_into {
                person = self.store.person(survivor).await?;
            }
            // A patient who opted out of this facility's sharing is not consulted about.
            if self
                .store
                .consent_context(person.id)
                .await?
                .opt_outs
                .contains(&facility_id)
            {
                return Err(AppError::Invalid(
                    "この患者さんは貴施設からの情報共有を拒否（オプトアウト）しているため、相談に紐づけられません"
                        .into(),
                ));
            }
            Some(person.id)
        };
        let event = self.event(
            actor,
            "case.create",
            String::new(),
            AuditOutcome::Success,
            &format!(
                "{} recipients{}",
                recipients.len(),
                person_id
                    .map(|p| format!(", person:{p}"))
                    .unwrap_or_default()
            ),
        );
        Ok(self
            .store
            .create_case(
                &NewCase {
                    facility_id,
                    user_id,
                    title: title.to_string(),
                    body: input.body.trim().to_string(),
                    person_id,
                    allow_download: input.allow_download,
                    double_reading: input.double_reading,
                    created_at: self.now().0,
                },
                &recipients,
                event,
            )
            .await?)
    }

    /// A case the actor takes part in (sender or recipient); otherwise not found.
    async fn case_for(&self, actor: &Actor, case_id: i64) -> Result<Case> {
        let (user_id, facility_id) = Self::user_of(actor).map_err(|_| AppError::NotFound)?;
        let Some(case) = self.store.case(case_id).await? else {
            return Err(AppError::NotFound);
        };
        if case.user_id == user_id
            || self
                .store
                .is_case_recipient(case.id, user_id, facility_id)
                .await?
        {
            Ok(case)
        } else {
            Err(AppError::NotFound)
        }
    }

    /// The active users named by login IDs (separated as [`split_logins`] reads them):
    /// (id, login, name, facility). Any that is not found is an error listing them after
    /// `missing`.
    async fn users_named(
        &self,
        logins: &str,
        missing: &str,
    ) -> Result<Vec<(i64, String, String, i64)>> {
        let wanted = split_logins(logins);
        let found = self.store.users_by_logins(&wanted).await?;
        let absent: Vec<&str> = wanted
            .iter()
            .filter(|w| !found.iter().any(|(_, l, _, _)| l == *w))
            .map(String::as_str)
            .collect();
        if !absent.is_empty() {
            return Err(AppError::Invalid(format!(
                "{missing}: {}",
                absent.join("、")
            )));
        }
        Ok(found)
    }

    /// Cases the actor sent or received, newest first.
    pub async fn cases(&self, actor: &Actor) -> Result<Vec<Case>> {
        let (user_id, facility_id) = Self::user_of(actor)?;
        Ok(self.store.cases_for(user_id, facility_id).await?)
    }

    /// A case as the actor may see it; audited, allowed or denied.
    pub async fn case_view(&self, actor: &Actor, case_id: i64) -> Result<CaseView> {
        let verdict = self.case_for(actor, case_id).await;
        let outcome = match &verdict {
            Ok(_) => AuditOutcome::Success,
            Err(AppError::NotFound) => AuditOutcome::Denied,
            Err(_) => AuditOutcome::Failure,
        };
        self.append_audit(self.event(actor, "case.read", format!("case:{case_id}"), outcome, ""))
            .await?;
        let case = verdict?;
        let (user_id, _) = Self::user_of(actor)?;
        let is_sender = case.user_id == user_id;
        let all = self.store.case_readings(case.id).await?;
        let readings_in = all.len();
        let mine = all.iter().any(|r| r.user_id == user_id);
        let readings = if readings_in as i64 >= READERS {
            all
        } else {
            all.into_iter().filter(|r| r.user_id == user_id).collect()
        };
        let patient = match case.person_id {
            Some(p) => {
                let person = self.store.person(p).await?;
                Some((person.common_id, person.kanji_name))
            }
            None => None,
        };
        Ok(CaseView {
            recipients: self.store.case_recipients(case.id).await?,
            files: self.store.case_files(case.id).await?,
            messages: self.store.case_messages(case.id).await?,
            readings,
            readings_in,
            is_sender,
            can_read: case.double_reading && !is_sender && !mine && (readings_in as i64) < READERS,
            can_download: is_sender || case.allow_download,
            patient,
            used: self.store.case_usage(case.id).await?,
            case,
        })
    }

    /// Adds a message to a case's thread.
    pub async fn reply_case(&self, actor: &Actor, case_id: i64, body: &str) -> Result<()> {
        let (user_id, _) = Self::user_of(actor)?;
        let case = self.case_for(actor, case_id).await?;
        let body = body.trim();
        if body.is_empty() {
            return Err(AppError::Invalid("返信を入力してください".into()));
        }
        if body.chars().count() > 20_000 {
            return Err(AppError::Invalid("返信は 20,000 文字までです".into()));
        }
        let event = self.event(
            actor,
            "case.reply",
            format!("case:{}", case.id),
            AuditOutcome::Success,
            "",
        );
        self.store
            .add_case_message(case.id, user_id, body, self.now().0, event)
            .await?;
        Ok(())
    }

    /// Records a reader's findings in a double reading. Each recipient reader records once and
    /// does not see the other's findings until both are in.
    pub async fn submit_reading(&self, actor: &Actor, case_id: i64, findings: &str) -> Result<()> {
        let (user_id, _) = Self::user_of(actor)?;
        let case = self.case_for(actor, case_id).await?;
        if !case.double_reading {
            return Err(AppError::Invalid(
                "この相談は二重読影の依頼ではありません".into(),
            ));
        }
        if case.user_id == user_id {
            return Err(AppError::Invalid(
                "依頼した方は読影結果を登録できません".into(),
            ));
        }
        let findings = findings.trim();
        if findings.is_empty() {
            return Err(AppError::Invalid("所見を入力してください".into()));
        }
        let event = self.event(
            actor,
            "case.reading",
            format!("case:{}", case.id),
            AuditOutcome::Success,
            "",
        );
        match self
            .store
            .submit_reading(case.id, user_id, findings, (self.now().0, READERS), event)
            .await
        {
            Ok(()) => Ok(()),
            Err(renkei_store::StoreError::Conflict(rule)) if rule == "reading_done" => Err(
                AppError::Conflict("所見はすでに登録済みです（変更はできません）".into()),
            ),
            Err(renkei_store::StoreError::Conflict(rule)) if rule == "reading_full" => Err(
                AppError::Conflict("二人の読影医の所見がすでに揃っています".into()),
            ),
            Err(e) => Err(e.into()),
        }
    }
}

/// Login IDs separated by spaces, commas (also 、，) or new lines, without duplicates.
fn split_logins(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in text.split(|c: char| c.is_whitespace() || matches!(c, ',' | '、' | '，' | ';')) {
        let p = part.trim();
        if !p.is_empty() && !out.iter().any(|o| o == p) {
            out.push(p.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_directories_and_control_characters() {
        assert_eq!(
            clean_file_name("C:\\Users\\x\\胸部X線.dcm").ok().as_deref(),
            Some("胸部X線.dcm")
        );
        assert_eq!(
            clean_file_name("../../etc/passwd").ok().as_deref(),
            Some("passwd")
        );
        assert_eq!(
            clean_file_name("a\u{0}b\nc.pdf").ok().as_deref(),
            Some("abc.pdf")
        );
        assert!(clean_file_name("dir/").is_err());
        assert!(clean_file_name("..").is_err());
    }

    #[test]
    fn sizes_read_as_people_expect() {
        assert_eq!(human_size(20 * MIB), "20.0 MB");
        assert_eq!(human_size(5 * 1024 * MIB), "5.0 GB");
        assert_eq!(human_size(512), "512 バイト");
    }

    #[test]
    fn logins_split_on_japanese_and_ascii_separators() {
        assert_eq!(
            split_logins("dr1、dr2, dr3\ndr1"),
            vec!["dr1".to_string(), "dr2".into(), "dr3".into()]
        );
    }
}
