//! Serving TLS: an acceptor whose certificate, key and client CA are reloaded from their
//! files when they change (rotation without restart), and the accepted connections as a
//! stream for tonic, each carrying the peer's verified client certificate, if it sent one.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures::Stream;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;
use tracing::{debug, info, warn};

use super::pem::{load_certs, load_key};
use crate::{Error, Result};

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The files a TLS server is configured from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates signed by this CA are verified and accepted; clients without one
    /// still connect (and must then authenticate another way).
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.cert, &self.key].into_iter().chain(&self.client_ca)
    }

    fn mtimes(&self) -> Vec<Option<SystemTime>> {
        self.paths()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// A server configuration from the files as they are now.
    pub fn server_config(&self) -> Result<ServerConfig> {
        let certs = load_certs(&self.cert)?;
        let key = load_key(&self.key)?;
        let provider = super::provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in load_certs(ca)? {
                    roots
                        .add(c)
                        .map_err(|e| Error::Tls(format!("{}: {e}", ca.display())))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| Error::Tls(format!("{}: {e}", ca.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut cfg = builder
            .with_single_cert(certs, key)
            .map_err(|e| Error::Tls(format!("{}: {e}", self.cert.display())))?;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(cfg)
    }
}

/// A TLS acceptor that picks up new certificate files; cheap to clone.
#[derive(Clone)]
pub struct ReloadingAcceptor {
    inner: Arc<Inner>,
    /// Offers HTTP/1.1 beside HTTP/2 (the gateway); the API offers only HTTP/2 (gRPC).
    http1: bool,
}

struct Inner {
    files: TlsFiles,
    /// For HTTP/2 only, and for HTTP/2 and HTTP/1.1.
    current: RwLock<(TlsAcceptor, TlsAcceptor)>,
    seen: Mutex<Vec<Option<SystemTime>>>,
}

/// Acceptors from one configuration: ALPN `h2`, and `h2` then `http/1.1`.
fn acceptors(cfg: ServerConfig) -> (TlsAcceptor, TlsAcceptor) {
    let mut both = cfg.clone();
    both.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (
        TlsAcceptor::from(Arc::new(cfg)),
        TlsAcceptor::from(Arc::new(both)),
    )
}

impl ReloadingAcceptor {
    /// Loads the files; an error names the file that is missing or wrong.
    pub fn load(files: TlsFiles) -> Result<Self> {
        let seen = files.mtimes();
        let cfg = files.server_config()?;
        Ok(Self {
            inner: Arc::new(Inner {
                current: RwLock::new(acceptors(cfg)),
                seen: Mutex::new(seen),
                files,
            }),
            http1: false,
        })
    }

    /// The same certificate (reloaded with it), offering HTTP/1.1 too.
    pub fn for_http(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            http1: true,
        }
    }

    fn acceptor(&self) -> TlsAcceptor {
        let current = self.inner.current.read().expect("acceptor lock");
        if self.http1 {
            current.1.clone()
        } else {
            current.0.clone()
        }
    }

    /// Reloads when any file changed since the last load. On an error (say a half-written
    /// rotation) the previous certificate stays in use and the next call tries again.
    pub fn reload_if_changed(&self) -> Result<bool> {
        let now = self.inner.files.mtimes();
        if *self.inner.seen.lock().expect("mtimes lock") == now {
            return Ok(false);
        }
        let cfg = self.inner.files.server_config()?;
        *self.inner.current.write().expect("acceptor lock") = acceptors(cfg);
        *self.inner.seen.lock().expect("mtimes lock") = now;
        Ok(true)
    }

    /// Checks the files every `interval` until `cancel`.
    pub async fn watch(self, interval: Duration, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            match self.reload_if_changed() {
                Ok(true) => {
                    info!(cert = %self.inner.files.cert.display(), "TLS certificate reloaded")
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(error = %e, "TLS certificate not reloaded; keeping the previous one")
                }
            }
        }
    }
}

/// Who is on the other end of a TLS connection.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote_addr: Option<std::net::SocketAddr>,
    /// The chain the client presented, verified against the client CA.
    pub client_certs: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// An accepted, handshaken TLS connection.
pub struct TlsConn {
    stream: TlsStream<TcpStream>,
    peer: PeerInfo,
}

impl TlsConn {
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

impl Connected for TlsConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The TLS connections accepted on `listener`. Each handshake runs in its own task, so a
/// slow or silent client holds up no one; failed handshakes are logged and dropped. The
/// accept loop ends when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    acceptor: ReloadingAcceptor,
) -> impl Stream<Item = io::Result<TlsConn>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<TlsConn>>(64);
    tokio::spawn(async move {
        loop {
            let (tcp, addr) = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let tls = acceptor.acceptor();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let client_certs =
                            stream.get_ref().1.peer_certificates().map(|c| {
                                Arc::new(c.iter().map(|c| c.clone().into_owned()).collect())
                            });
                        let peer = PeerInfo {
                            remote_addr: Some(addr),
                            client_certs,
                        };
                        let _ = tx.send(Ok(TlsConn { stream, peer })).await;
                    }
                    Ok(Err(e)) => debug!(%addr, error = %e, "TLS handshake failed"),
                    Err(_) => debug!(%addr, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
