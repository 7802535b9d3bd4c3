//! The MLLP listener: HL7 v2 messages over TCP (optionally TLS), one ACK per message, sent
//! only after the message is durably stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use renkei_app::App;
use renkei_hl7v2::mllp::{self, FrameError};
use renkei_hl7v2::{AckCode, AckError, ack};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Limits that protect the listener from large, idle and slow senders.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest message accepted (bytes).
    pub max_message: usize,
    /// A connection with no bytes for this long is closed.
    pub idle: Duration,
    /// A started message must be complete within this time of its first byte, however the
    /// bytes trickle in.
    pub frame_deadline: Duration,
    /// Connections served at once; more wait for a free slot.
    pub max_connections: usize,
    /// Connections one peer address may hold at once; more are closed at once, so that one
    /// host cannot take the slots of the others.
    pub max_connections_per_peer: usize,
    /// Which facility each sender is (`[[mllp_sender]]`): a message whose MSH-4 names
    /// another facility is refused. With none configured, only loopback senders are trusted
    /// to name themselves.
    pub senders: Vec<crate::mllp_auth::Sender>,
    /// The CA of the senders' TLS client certificates (`mllp_client_ca`).
    pub client_ca: Option<std::path::PathBuf>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: 16 * 1024 * 1024,
            idle: Duration::from_secs(300),
            frame_deadline: Duration::from_secs(60),
            max_connections: 256,
            max_connections_per_peer: 16,
            senders: Vec::new(),
            client_ca: None,
        }
    }
}

/// Accepts connections until the task is dropped.
pub async fn run(
    app: App,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let peers = crate::limits::PeerCounts::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "MLLP accept failed");
                continue;
            }
        };
        // One host's connections beyond its share are closed at once, before they wait for
        // (or take) a slot that a real sender needs.
        let Some(peer_slot) = peers.take(peer.ip(), limits.max_connections_per_peer) else {
            tracing::warn!(%peer, "MLLP connection refused: too many from this address");
            drop(stream);
            continue;
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let (app, tls, limits) = (app.clone(), tls.clone(), limits.clone());
        tokio::spawn(async move {
            let result = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(limits.frame_deadline, acceptor.accept(stream)).await
                    {
                        Ok(Ok(s)) => {
                            let cert = s
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|c| c.as_ref().to_vec());
                            let sender =
                                crate::mllp_auth::identify(&limits.senders, peer, cert.as_deref());
                            serve(app, s, sender, &limits).await
                        }
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "TLS handshake timed out",
                        )),
                    }
                }
                None => {
                    let sender = crate::mllp_auth::identify(&limits.senders, peer, None);
                    serve(app, stream, sender, &limits).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "MLLP connection ended");
            }
            drop(permit);
            drop(peer_slot);
        });
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    app: App,
    mut stream: S,
    sender: renkei_app::intake::HlSender,
    limits: &Limits,
) -> std::io::Result<()> {
    let peer = sender.peer.clone();
    let mut decoder = mllp::Decoder::new(limits.max_message);
    let mut buffer = vec![0u8; 64 * 1024];
    // When the message being received began: its deadline does not restart with each read.
    let mut frame_started: Option<Instant> = None;
    loop {
        // Answer every complete frame in order before reading more.
        while let Some(frame) = decoder.next_frame() {
            match frame {
                Ok(bytes) => {
                    let receipt = app.receive_hl7_from(&bytes, &sender).await;
                    tracing::info!(%peer, outcome = receipt.outcome, reason = receipt.reason, bytes = bytes.len(), "HL7 message");
                    stream.write_all(&mllp::frame(&receipt.ack)).await?;
                    stream.flush().await?;
                }
                Err(FrameError::TooLong(limit)) => {
                    let error = AckError {
                        code: "207",
                        location: None,
                        text: format!("the message is longer than the limit of {limit} bytes"),
                    };
                    let nak = ack(None, AckCode::Reject, "R0", "", Some(&error));
                    stream.write_all(&mllp::frame(nak.as_bytes())).await?;
                    stream.flush().await?;
                }
                Err(FrameError::OutsideFrame(n)) => {
                    tracing::warn!(%peer, bytes = n, "bytes outside an MLLP frame were discarded")
                }
            }
        }
        let wait = if decoder.pending() > 0 {
            let started = *frame_started.get_or_insert_with(Instant::now);
            limits.frame_deadline.saturating_sub(started.elapsed())
        } else {
            frame_started = None;
            limits.idle
        };
        let n = match tokio::time::timeout(wait, stream.read(&mut buffer)).await {
            Ok(result) => result?,
            Err(_) => {
                let why = if decoder.pending() > 0 {
                    "a message did not complete in time"
                } else {
                    "idle"
                };
                tracing::info!(%peer, why, "MLLP connection closed");
                return Ok(());
            }
        };
        if n == 0 {
            return Ok(());
        }
        decoder.push(buffer.get(..n).unwrap_or_default());
    }
}
