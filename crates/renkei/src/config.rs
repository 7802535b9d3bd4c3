//! Configuration: command-line flags, then `RENKEI_*` environment variables (clap reads both),
//! then the TOML file, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use renkei_app::AppConfig;
use renkei_core::facility::OidRoot;

/// The TOML file. Every key is optional.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub audit_key_file: Option<PathBuf>,
    pub network_name: Option<String>,
    /// Where a drug's package insert (添付文書) is, by YJ code: a URL with `{yj}` in it.
    pub package_insert_url: Option<String>,
    /// How often queued webhooks are sent (default 5 s).
    pub webhook_poll_seconds: Option<u64>,
    /// The first retry of a failed webhook waits this long, each next twice as long (default 60).
    pub webhook_retry_seconds: Option<i64>,
    /// Folders where pharmacies' receipt computers drop JAHIS files (`[[jahis_watch]]` tables
    /// with `dir` and `facility`).
    #[serde(default)]
    pub jahis_watch: Vec<crate::jahis_watch::Watch>,
    /// How often the watched folders are looked at (default 10 s).
    pub jahis_watch_poll_seconds: Option<u64>,
    pub region_prefecture: Option<u8>,
    pub oid_root: Option<String>,
    pub session_idle_minutes: Option<i64>,
    pub lockout_threshold: Option<i64>,
    pub lockout_minutes: Option<i64>,
    /// Failed logins from one client address within the lockout window after which that
    /// address is refused until the window passes (default 50).
    pub source_lockout_threshold: Option<u32>,
    /// What a card typed by hand needs: `code`, `name_and_birth_date` or `either` (default).
    pub manual_card_check: Option<String>,
    /// Card reads one user may make in ten minutes (default 30).
    pub card_reads_per_user: Option<u32>,
    /// Card reads one facility may make in ten minutes (default 120).
    pub card_reads_per_facility: Option<u32>,
    /// The Japanese font for printable cards (default: Debian's Noto Sans CJK).
    pub card_font: Option<PathBuf>,
    /// MLLP: the largest message accepted, in bytes (default 16 MiB).
    pub mllp_max_message_bytes: Option<usize>,
    /// MLLP: close a connection idle this long (default 300).
    pub mllp_idle_seconds: Option<u64>,
    /// MLLP: a started message must complete within this time (default 60).
    pub mllp_frame_seconds: Option<u64>,
    /// MLLP: connections served at once (default 256).
    pub mllp_max_connections: Option<usize>,
    /// MLLP: connections one peer address may hold at once (default 16).
    pub mllp_max_connections_per_peer: Option<usize>,
    /// MLLP: the sending facilities and what identifies them (`[[mllp_sender]]` tables with
    /// `facility`, `addresses` and/or `certificates`).
    #[serde(default)]
    pub mllp_sender: Vec<crate::mllp_auth::Sender>,
    /// MLLP: the CA that sending facilities' TLS client certificates chain to (PEM); needed
    /// when an `[[mllp_sender]]` lists certificates.
    pub mllp_client_ca: Option<PathBuf>,
    /// HTTP: a request's headers must arrive within this time (default 20).
    pub http_header_seconds: Option<u64>,
    /// HTTP: close a connection on which no byte moved for this long (default 300).
    pub http_idle_seconds: Option<u64>,
    /// HTTPS: a TLS handshake must finish within this time (default 10).
    pub tls_handshake_seconds: Option<u64>,
    /// HTTP: connections served at once (default 8192).
    pub http_max_connections: Option<usize>,
    /// HTTP: connections one peer address may hold at once (default 512).
    pub http_max_connections_per_peer: Option<usize>,
    /// The server's public base URL (`https://renkei.example.jp`): OAuth client assertions must
    /// name `<public_url>/oauth/token` as their audience. Unset, the request's host is used.
    pub public_url: Option<String>,
    /// Where consultation and HM-Box files are kept: `file:///dir` (default `DATA_DIR/files`) or
    /// `s3://bucket/prefix` for an S3-compatible service (then the `s3_*` keys, or the usual
    /// `AWS_*` environment variables).
    pub file_store: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    /// Allow an `http://` S3 endpoint (loopback or inside the VPN only).
    pub s3_allow_http: Option<bool>,
    /// Uploads in progress are kept here (default `DATA_DIR/uploads`); on local disk keep it on
    /// the same file system as `file_store`, so that finishing an upload is a rename.
    pub upload_dir: Option<PathBuf>,
    /// How often expired HM-Box files and abandoned uploads are deleted (default 60 s).
    pub file_expiry_poll_seconds: Option<u64>,
    /// The office server's editor URL for in-place editing of HM-Box files (WOPI), e.g.
    /// Collabora's `https://office.example.jp/browser/dist/cool.html?`.
    pub office_url: Option<String>,
    /// The office server's WOPI discovery document (`https://office.example.jp/hosting/discovery`,
    /// or a local copy's path): its proof keys are checked on every WOPI request.
    pub office_discovery_url: Option<String>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "設定ファイル {} を読めません（パスを確認してください）",
                path.display()
            )
        })?;
        toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "設定ファイル {} の書式が正しくありません: {}",
                path.display(),
                e.to_string().trim()
            )
        })
    }
}

/// Everything resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub database_url: String,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub audit_key_file: PathBuf,
    pub app: AppConfig,
    pub mllp: crate::mllp::Limits,
    pub http: crate::limits::HttpLimits,
    pub card_font: PathBuf,
    pub office_discovery_url: Option<String>,
    pub public_url: Option<String>,
    pub webhook_poll_seconds: u64,
    pub jahis_watch: Vec<crate::jahis_watch::Watch>,
    pub jahis_watch_poll_seconds: u64,
    pub file_store: renkei_store::objects::ObjectStoreConfig,
    pub upload_dir: PathBuf,
    pub file_expiry_poll_seconds: u64,
}

/// What came from flags or the environment (`None` when not given).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

fn http_limits(file: &FileConfig) -> crate::limits::HttpLimits {
    let seconds = |s: u64| std::time::Duration::from_secs(s.max(1));
    let mut http = crate::limits::HttpLimits::default();
    if let Some(s) = file.http_header_seconds {
        http.header_read = seconds(s);
    }
    if let Some(s) = file.http_idle_seconds {
        http.idle = seconds(s);
    }
    if let Some(s) = file.tls_handshake_seconds {
        http.tls_handshake = seconds(s);
    }
    if let Some(n) = file.http_max_connections {
        http.max_connections = n.max(1);
    }
    if let Some(n) = file.http_max_connections_per_peer {
        http.max_connections_per_peer = n.max(1);
    }
    http
}

pub fn resolve(file: FileConfig, o: Overrides) -> Result<Settings> {
    let http = http_limits(&file);
    let data_dir = o
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("data"));
    let listen_text = o
        .listen
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listen: SocketAddr = listen_text
        .parse()
        .map_err(|_| anyhow::anyhow!("待ち受けアドレス「{listen_text}」を解釈できません（例: 127.0.0.1:8080, [::1]:8443, 0.0.0.0:443）"))?;
    let database_url = o
        .database_url
        .or(file.database_url)
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("renkei.db").display()));
    let tls = match (o.tls_cert.or(file.tls_cert), o.tls_key.or(file.tls_key)) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => bail!("TLS には証明書（--tls-cert）と秘密鍵（--tls-key）の両方を指定してください"),
    };
    let mut app = AppConfig::default();
    if let Some(u) = file.package_insert_url {
        app.package_insert_url = u;
    }
    app.wopi_proof_required = file.office_discovery_url.is_some();
    if let Some(u) = file.office_url {
        app.office_url = u.trim().to_string();
    }
    if let Some(s) = file.webhook_retry_seconds {
        app.webhook_retry_seconds = s.max(1);
    }
    if let Some(n) = file.network_name {
        app.network_name = n;
    }
    if let Some(p) = file.region_prefecture {
        if !(1..=47).contains(&p) {
            bail!("region_prefecture は 1〜47 の都道府県番号です（{p} が指定されました）");
        }
        app.region_prefecture = p;
    }
    if let Some(root) = file.oid_root {
        app.oid_root = OidRoot::parse(&root).map_err(|e| anyhow::anyhow!(e))?;
    }
    if let Some(m) = file.session_idle_minutes {
        if !(1..=24 * 60).contains(&m) {
            bail!("session_idle_minutes は 1〜1440 で指定してください");
        }
        app.session_idle_seconds = m * 60;
    }
    if let Some(n) = file.lockout_threshold {
        if !(1..=100).contains(&n) {
            bail!("lockout_threshold は 1〜100 で指定してください");
        }
        app.lockout_threshold = n;
    }
    if let Some(check) = file.manual_card_check.as_deref() {
        app.manual_card_check = match check {
            "code" => renkei_app::ManualCardCheck::Code,
            "name_and_birth_date" => renkei_app::ManualCardCheck::NameAndBirthDate,
            "either" => renkei_app::ManualCardCheck::Either,
            other => bail!(
                "manual_card_check「{other}」は code、name_and_birth_date、either のいずれかで指定してください"
            ),
        };
    }
    if let Some(n) = file.card_reads_per_user {
        app.card_reads_per_user = n.max(1);
    }
    if let Some(n) = file.card_reads_per_facility {
        app.card_reads_per_facility = n.max(1);
    }
    if let Some(n) = file.source_lockout_threshold {
        app.source_lockout_threshold = n.max(1);
    }
    if let Some(m) = file.lockout_minutes {
        app.lockout_seconds = m.max(1) * 60;
    }
    let audit_key_file = file
        .audit_key_file
        .unwrap_or_else(|| data_dir.join("audit.key"));
    let mut mllp = crate::mllp::Limits::default();
    if let Some(n) = file.mllp_max_message_bytes {
        mllp.max_message = n.max(64);
    }
    if let Some(s) = file.mllp_idle_seconds {
        mllp.idle = std::time::Duration::from_secs(s.max(1));
    }
    if let Some(s) = file.mllp_frame_seconds {
        mllp.frame_deadline = std::time::Duration::from_secs(s.max(1));
    }
    for sender in &file.mllp_sender {
        sender.check().map_err(|e| anyhow::anyhow!(e))?;
    }
    if file.mllp_sender.iter().any(|s| !s.certificates.is_empty()) && file.mllp_client_ca.is_none()
    {
        bail!(
            "mllp_sender に certificates を指定するときは mllp_client_ca（クライアント証明書の CA）も指定してください"
        );
    }
    mllp.senders = file.mllp_sender.clone();
    mllp.client_ca = file.mllp_client_ca.clone();
    if let Some(n) = file.mllp_max_connections_per_peer {
        mllp.max_connections_per_peer = n.max(1);
    }
    if let Some(n) = file.mllp_max_connections {
        mllp.max_connections = n.max(1);
    }
    let card_font = file
        .card_font
        .unwrap_or_else(|| PathBuf::from(renkei_web::DEFAULT_CARD_FONT));
    let file_store = renkei_store::objects::ObjectStoreConfig {
        url: file
            .file_store
            .or_else(|| std::env::var("RENKEI_FILE_STORE").ok())
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| format!("file://{}", data_dir.join("files").display())),
        endpoint: file
            .s3_endpoint
            .or_else(|| std::env::var("RENKEI_S3_ENDPOINT").ok())
            .unwrap_or_default(),
        region: file.s3_region.unwrap_or_default(),
        access_key_id: file.s3_access_key_id.unwrap_or_default(),
        secret_access_key: file.s3_secret_access_key.unwrap_or_default(),
        allow_http: file.s3_allow_http.unwrap_or(false),
    };
    if let Some(endpoint) = file_store.endpoint.strip_prefix("http://")
        && !file_store.allow_http
    {
        bail!(
            "S3 のエンドポイント http://{endpoint} は平文です。VPN の内側などで平文を許す場合は s3_allow_http = true を指定してください"
        );
    }
    let upload_dir = file.upload_dir.unwrap_or_else(|| data_dir.join("uploads"));
    Ok(Settings {
        file_store,
        upload_dir,
        file_expiry_poll_seconds: file.file_expiry_poll_seconds.unwrap_or(60),
        data_dir,
        listen,
        database_url,
        tls,
        audit_key_file,
        app,
        mllp,
        http,
        card_font,
        office_discovery_url: file.office_discovery_url.clone(),
        webhook_poll_seconds: file.webhook_poll_seconds.unwrap_or(5),
        jahis_watch: file.jahis_watch,
        jahis_watch_poll_seconds: file.jahis_watch_poll_seconds.unwrap_or(10),
        public_url: file
            .public_url
            .or_else(|| std::env::var("RENKEI_PUBLIC_URL").ok())
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let file: FileConfig =
            toml::from_str("listen = \"0.0.0.0:9000\"\nregion_prefecture = 33\n").unwrap();
        let s = resolve(
            file,
            Overrides {
                listen: Some("127.0.0.1:1".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.listen.port(), 1);
        assert_eq!(s.app.region_prefecture, 33);
        assert!(s.database_url.starts_with("sqlite://data"));
    }

    #[test]
    fn bad_values_are_named() {
        let e = toml::from_str::<FileConfig>("lissen = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lissen"), "{e}");
        let e = resolve(
            FileConfig::default(),
            Overrides {
                listen: Some("here".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("here"));
        let file = FileConfig {
            tls_cert: Some("c.pem".into()),
            ..Default::default()
        };
        assert!(
            resolve(file, Overrides::default())
                .unwrap_err()
                .to_string()
                .contains("秘密鍵")
        );
    }
}
