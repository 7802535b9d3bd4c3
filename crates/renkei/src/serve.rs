//! `renkei serve`: HTTP on loopback for development, HTTPS (rustls) everywhere else.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum_server::tls_rustls::RustlsConfig;
use renkei_web::{WebShared, WebState};

use crate::config::Settings;

pub async fn serve(
    settings: Settings,
    demo: bool,
    mllp: Option<SocketAddr>,
    mllp_allow_plain: bool,
) -> Result<()> {
    if settings.tls.is_none() && !settings.listen.ip().is_loopback() {
        bail!(
            "{} はループバックではないため、平文 HTTP では待ち受けできません。--tls-cert と --tls-key（または設定ファイルの tls_cert / tls_key）で証明書を指定してください",
            settings.listen
        );
    }
    if let Some(addr) = mllp
        && settings.tls.is_none()
        && !addr.ip().is_loopback()
        && !mllp_allow_plain
    {
        bail!(
            "MLLP を {addr} で平文のまま待ち受けることはできません。TLS 証明書を設定するか、IPsec VPN の内側であれば --mllp-allow-plain を指定してください"
        );
    }
    let tls = match &settings.tls {
        Some((cert, key)) => {
            // One process-wide crypto provider (ring); a second install is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = RustlsConfig::from_pem_file(cert, key).await.with_context(|| {
                format!("TLS 証明書 {} または秘密鍵 {} を読み込めません（PEM 形式か、対応しているかを確認してください）", cert.display(), key.display())
            })?;
            Some(config)
        }
        None => None,
    };
    let app = crate::open(&settings, crate::Open::CreateIfMissing).await?;
    if demo {
        crate::demo::seed_if_empty(&app, &settings.data_dir).await?;
    }
    let listener = std::net::TcpListener::bind(settings.listen).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "{} は別のプログラムが使用中です。--listen で別のポートを指定するか、使用中のプログラムを停止してください",
            settings.listen
        ),
        std::io::ErrorKind::PermissionDenied => anyhow::anyhow!("{} で待ち受ける権限がありません（1024 未満のポートには権限が必要です）", settings.listen),
        _ => anyhow::anyhow!("{} で待ち受けできません: {e}", settings.listen),
    })?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut mllp_line = None;
    if let Some(addr) = mllp {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => anyhow::anyhow!("MLLP の {addr} は別のプログラムが使用中です。--mllp-listen で別のポートを指定してください"),
            _ => anyhow::anyhow!("MLLP を {addr} で待ち受けできません: {e}"),
        })?;
        let bound = listener.local_addr()?;
        let acceptor = match (&settings.tls, &settings.mllp.client_ca) {
            (Some((cert, key)), Some(ca)) => {
                Some(crate::mllp_auth::acceptor_with_client_ca(cert, key, ca)?)
            }
            _ => tls
                .as_ref()
                .map(|c| tokio_rustls::TlsAcceptor::from(c.get_inner())),
        };
        let scheme = if acceptor.is_some() {
            "mllp+tls"
        } else {
            "mllp"
        };
        mllp_line = Some(format!("Renkei MLLP listening on {scheme}://{bound}"));
        tokio::spawn(crate::mllp::run(
            app.clone(),
            listener,
            acceptor,
            settings.mllp.clone(),
        ));
    }
    tokio::spawn(crate::webhooks::run(
        app.clone(),
        Duration::from_secs(settings.webhook_poll_seconds.max(1)),
    ));
    if !settings.jahis_watch.is_empty() {
        tokio::spawn(crate::jahis_watch::run(
            app.clone(),
            settings.jahis_watch.clone(),
            Duration::from_secs(settings.jahis_watch_poll_seconds.max(1)),
        ));
    }
    let expiry = app.clone();
    let every = Duration::from_secs(settings.file_expiry_poll_seconds.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match expiry.expire_files().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "expired HM-Box files deleted"),
                Err(e) => tracing::warn!(code = e.code(), "HM-Box expiry failed"),
            }
            if let Err(e) = expiry.expire_uploads().await {
                tracing::warn!(code = e.code(), "abandoned uploads could not be dropped");
            }
        }
    });
    let anchor_file = crate::anchor::path_for(&settings.audit_key_file);
    let key = crate::audit_key(&settings.audit_key_file)?;
    tokio::spawn(crate::anchor::run(
        app.clone(),
        key.clone(),
        anchor_file.clone(),
    ));
    if let Some(source) = settings.office_discovery_url.clone() {
        tokio::spawn(crate::discovery::run(app.clone(), source));
    }
    let purge = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tick.tick().await;
            if let Err(e) = purge.purge_idle_sessions().await {
                tracing::warn!(code = e.code(), "idle session purge failed");
            }
        }
    });

    let card_font = match std::fs::read(&settings.card_font) {
        Ok(bytes) => Some(std::sync::Arc::new(bytes)),
        Err(_) => {
            tracing::warn!(path = %settings.card_font.display(), "no Japanese font for printable cards (install fonts-noto-cjk or set card_font)");
            None
        }
    };
    let router = renkei_web::router(WebState::new(WebShared {
        app: app.clone(),
        secure_cookies: tls.is_some(),
        card_font,
        public_url: settings.public_url.clone(),
    }));
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    // The ready lines come once everything that answers is built: scripts and tests wait for
    // them (the HTTP line first).
    println!("Renkei listening on {scheme}://{addr}");
    if let Some(line) = mllp_line {
        println!("{line}");
    }
    tracing::info!(%addr, scheme, backend = ?app.backend(), "ready");
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let limits = crate::limits::LimitAcceptor::new(settings.http.clone());
    let mut server = axum_server::from_tcp(listener)?;
    // Without a timer hyper applies no header-read timeout at all.
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(settings.http.header_read);
    match tls {
        Some(config) => {
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config)
                .handshake_timeout(settings.http.tls_handshake)
                .acceptor(limits);
            server
                .acceptor(acceptor)
                .handle(handle)
                .serve(service)
                .await?
        }
        None => {
            server
                .acceptor(limits)
                .handle(handle)
                .serve(service)
                .await?
        }
    }
    if let Err(e) = crate::anchor::write(&app, &key, &anchor_file).await {
        tracing::warn!(error = %e, "the audit anchor could not be written");
    }
    app.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
