//! File bytes: an object store (local disk by default, any S3-compatible service by
//! configuration) behind the `object_store` crate, and a staging area on local disk where
//! resumable uploads grow chunk by chunk until they are complete.
//!
//! Object keys are random and never contain file names (which may name patients); the database
//! maps keys to names. Errors name the operation and the kind of failure, never a key or a name.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload, WriteMultipart};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::{Result, StoreError};

/// A stream of file bytes (a download), in constant memory.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Where files are kept, as configured.
#[derive(Clone, Debug, Default)]
pub struct ObjectStoreConfig {
    /// `file:///var/lib/renkei/files` (or a plain path) or `s3://bucket/prefix`.
    pub url: String,
    /// S3 only: the service's endpoint (`https://s3.example.jp`, `http://127.0.0.1:9000`).
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// S3 only: allow a plain-HTTP endpoint (a service on loopback or inside the VPN).
    pub allow_http: bool,
}

#[derive(Debug)]
enum Backend {
    /// Local disk: files live under `root`; a finished upload is renamed into place.
    Local { root: PathBuf },
    /// An S3-compatible service: a finished upload is streamed up in parts.
    S3 { prefix: String },
}

/// The file store: object store plus staging area. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    backend: Arc<Backend>,
    staging: PathBuf,
}

/// Parts of this size are sent to S3 while a finished upload is copied up (S3's minimum is
/// 5 MiB); at most two are in flight, so the copy runs in constant memory.
const PART_SIZE: usize = 8 * 1024 * 1024;

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

fn object_error(what: &str, e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::NotFound,
        // The store's messages name the path; keep only the kind.
        object_store::Error::Generic { store, .. } => {
            StoreError::Unavailable(format!("{what}（{store}）に失敗しました"))
        }
        other => {
            let kind = match other {
                object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. } => "権限がありません",
                object_store::Error::AlreadyExists { .. } => "既に存在します",
                object_store::Error::Precondition { .. } => "前提条件が満たされません",
                _ => "保存先がエラーを返しました",
            };
            StoreError::Unavailable(format!("{what}に失敗しました（{kind}）"))
        }
    }
}

impl Objects {
    /// Opens the configured store, with `staging` (a local directory, created if missing) for
    /// uploads in progress. For local disk, keep `staging` on the same file system as the
    /// store so that finishing an upload is a rename.
    pub fn open(config: &ObjectStoreConfig, staging: &Path) -> Result<Objects> {
        std::fs::create_dir_all(staging)
            .map_err(|e| unavailable("アップロード用の作業ディレクトリを作れません", e))?;
        let url = config.url.trim();
        let (store, backend): (Arc<dyn ObjectStore>, Backend) =
            if let Some(rest) = url.strip_prefix("s3://") {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(StoreError::Config(
                        "file_store の s3:// URL にバケット名がありません（s3://バケット名/接頭辞）"
                            .into(),
                    ));
                }
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_allow_http(config.allow_http);
                if !config.endpoint.is_empty() {
                    b = b
                        .with_endpoint(config.endpoint.trim_end_matches('/'))
                        .with_virtual_hosted_style_request(false);
                }
                if !config.region.is_empty() {
                    b = b.with_region(&config.region);
                }
                if !config.access_key_id.is_empty() {
                    b = b.with_access_key_id(&config.access_key_id);
                }
                if !config.secret_access_key.is_empty() {
                    b = b.with_secret_access_key(&config.secret_access_key);
                }
                let s3 = b.build().map_err(|e| {
                    StoreError::Config(format!("S3 互換ストレージの設定に誤りがあります: {e}"))
                })?;
                (
                    Arc::new(s3),
                    Backend::S3 {
                        prefix: prefix.trim_matches('/').to_string(),
                    },
                )
            } else {
                let path = url.strip_prefix("file://").unwrap_or(url);
                if path.is_empty() {
                    return Err(StoreError::Config(
                        "file_store が空です（file:///ディレクトリ または s3://バケット名）".into(),
                    ));
                }
                let root = PathBuf::from(path);
                std::fs::create_dir_all(&root)
                    .map_err(|e| unavailable("ファイル保存先のディレクトリを作れません", e))?;
                let root = root
                    .canonicalize()
                    .map_err(|e| unavailable("ファイル保存先のディレクトリを開けません", e))?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(&root)
                    .map_err(|e| object_error("ファイル保存先を開く", e))?;
                (Arc::new(local), Backend::Local { root })
            };
        Ok(Objects {
            store,
            backend: Arc::new(backend),
            staging: staging.to_path_buf(),
        })
    }

    /// `local disk (…)` or `S3 (…)`, for the startup line.
    pub fn describe(&self) -> String {
        match &*self.backend {
            Backend::Local { root } => format!("local disk ({})", root.display()),
            Backend::S3 { .. } => format!("S3 ({})", self.store),
        }
    }

    fn path(&self, key: &str) -> ObjectPath {
        match &*self.backend {
            Backend::S3 { prefix } if !prefix.is_empty() => {
                ObjectPath::from(format!("{prefix}/{key}"))
            }
            _ => ObjectPath::from(key),
        }
    }

    fn staged(&self, upload_id: &str) -> PathBuf {
        self.staging.join(format!("{upload_id}.part"))
    }

    /// Opens an upload's staged bytes to append at `offset`. Bytes past `offset` (the tail of an
    /// interrupted chunk that was never confirmed) are discarded first.
    pub async fn append_staged(&self, upload_id: &str, offset: u64) -> Result<StagingWriter> {
        let path = self.staged(upload_id);
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .await
            .map_err(|e| unavailable("アップロード中のファイルを開けません", e))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| unavailable("アップロード中のファイルを調べられません", e))?
            .len();
        if len < offset {
            return Err(StoreError::Internal(
                "アップロード中のファイルが記録より短くなっています".into(),
            ));
        }
        if len > offset {
            file.set_len(offset)
                .await
                .map_err(|e| unavailable("アップロード中のファイルを切り詰められません", e))?;
        }
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| unavailable("アップロード中のファイルを開けません", e))?;
        Ok(StagingWriter {
            file: tokio::io::BufWriter::with_capacity(1 << 20, file),
            written: 0,
        })
    }

    /// Moves a complete staged upload into the store under `key`.
    pub async fn commit_staged(&self, upload_id: &str, key: &str) -> Result<()> {
        let staged = self.staged(upload_id);
        match &*self.backend {
            Backend::Local { root } => {
                let target = root.join(key);
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|e| unavailable("ファイル保存先のディレクトリを作れません", e))?;
                }
                if tokio::fs::rename(&staged, &target).await.is_err() {
                    // Another file system: copy, make it durable, then drop the staged copy.
                    tokio::fs::copy(&staged, &target)
                        .await
                        .map_err(|e| unavailable("ファイルを保存先へ移せません", e))?;
                    let f = tokio::fs::File::open(&target)
                        .await
                        .map_err(|e| unavailable("保存したファイルを開けません", e))?;
                    f.sync_all()
                        .await
                        .map_err(|e| unavailable("保存したファイルを書き切れません", e))?;
                    let _ = tokio::fs::remove_file(&staged).await;
                }
                if let Some(parent) = target.parent() {
                    // The rename is durable once the directory is.
                    if let Ok(dir) = tokio::fs::File::open(parent).await {
                        let _ = dir.sync_all().await;
                    }
                }
                Ok(())
            }
            Backend::S3 { .. } => {
                let upload = self
                    .store
                    .put_multipart(&self.path(key))
                    .await
                    .map_err(|e| object_error("保存先への送信開始", e))?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
                let file = tokio::fs::File::open(&staged)
                    .await
                    .map_err(|e| unavailable("アップロードしたファイルを開けません", e))?;
                let mut reader = tokio::io::BufReader::with_capacity(1 << 20, file);
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = tokio::io::AsyncReadExt::read(&mut reader, &mut buf)
                        .await
                        .map_err(|e| unavailable("アップロードしたファイルを読めません", e))?;
                    if n == 0 {
                        break;
                    }
                    writer
                        .wait_for_capacity(2)
                        .await
                        .map_err(|e| object_error("保存先への送信", e))?;
                    writer.write(&buf[..n]);
                }
                writer
                    .finish()
                    .await
                    .map_err(|e| object_error("保存先への送信完了", e))?;
                let _ = tokio::fs::remove_file(&staged).await;
                Ok(())
            }
        }
    }

    /// Drops an upload's staged bytes (cancelled or expired); absent is fine.
    pub async fn discard_staged(&self, upload_id: &str) -> Result<()> {
        match tokio::fs::remove_file(self.staged(upload_id)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable("アップロード中のファイルを削除できません", e)),
        }
    }

    /// Stores `bytes` under `key` (replacing what was there).
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.store
            .put(&self.path(key), PutPayload::from(bytes))
            .await
            .map_err(|e| object_error("ファイルの保存", e))?;
        Ok(())
    }

    /// Streams the bytes of `key`, or of `range` within it.
    pub async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(&self.path(key), options)
            .await
            .map_err(|e| object_error("ファイルの読み出し", e))?;
        Ok(Box::pin(result.into_stream().map_err(|e| {
            std::io::Error::other(object_error("ファイルの読み出し", e))
        })))
    }

    /// All the bytes of `key` (previews of files of at most a few tens of MB).
    pub async fn get_all(&self, key: &str) -> Result<Vec<u8>> {
        let mut stream = self.get(key, None).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.map_err(|e| unavailable("ファイルを読み出せません", e))?);
        }
        Ok(out)
    }

    /// Whether `key` is in the store (tests and checks).
    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self.store.head(&self.path(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(object_error("ファイルの確認", e)),
        }
    }

    /// Removes `key`; absent is fine (a deletion that is retried after a crash).
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(object_error("ファイルの削除", e)),
        }
    }
}

/// Appends to a staged upload. Call [`StagingWriter::finish`] to make what was written durable
/// before recording the new offset.
pub struct StagingWriter {
    file: tokio::io::BufWriter<tokio::fs::File>,
    written: u64,
}

impl StagingWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| unavailable("アップロードを書き込めません", e))?;
        self.written += chunk.len() as u64;
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes and syncs; returns the number of bytes this writer appended.
    pub async fn finish(mut self) -> Result<u64> {
        self.file
            .flush()
            .await
            .map_err(|e| unavailable("アップロードを書き込めません", e))?;
        self.file
            .get_ref()
            .sync_data()
            .await
            .map_err(|e| unavailable("アップロードを書き切れません", e))?;
        Ok(self.written)
    }
}
