//! Connections to replicas: HTTP/1.1, kept open and reused; a request goes to the first
//! replica (in the balancer's order) that accepts a connection, so a replica that just died
//! costs a retry, not an error. Bodies stream both ways, unbuffered.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::{combinators::BoxBody, BodyExt, Empty};
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;

use super::route::Backend;

/// Connecting to a replica longer than this counts as a failed connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle connections kept per replica.
const IDLE_PER_REPLICA: usize = 32;
/// A kept connection unused this long is not reused: servers close idle keep-alive
/// connections (uvicorn after 5 s), and one closed just as a request goes out would fail a
/// request that cannot be sent again.
const IDLE_REUSE: std::time::Duration = std::time::Duration::from_secs(3);
/// Replicas one request tries.
pub const TRIES: usize = 3;

/// What a request carries to a replica.
pub type Outgoing = BoxBody<Bytes, hyper::Error>;

/// A connection kept for reuse, and since when.
type Kept = (SendRequest<Outgoing>, std::time::Instant);

#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Kept>>>,
}

/// Why no replica answered.
#[derive(Debug)]
pub enum SendError {
    /// None of the replicas tried accepted a connection.
    Connect(Vec<(SocketAddr, String)>),
    /// The replica took the request and failed before answering. Only a request without a
    /// body and with a method that is safe to repeat is sent again elsewhere.
    Failed(SocketAddr, hyper::Error),
}

/// A request that can be sent again: its head, when it has no body and its method is safe.
fn replayable(req: &Request<Outgoing>) -> Option<http::request::Parts> {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    (safe && req.body().is_end_stream()).then(|| {
        let mut head = Request::new(());
        *head.method_mut() = req.method().clone();
        *head.uri_mut() = req.uri().clone();
        *head.version_mut() = req.version();
        *head.headers_mut() = req.headers().clone();
        head.into_parts().0
    })
}

impl Pool {
    fn take(&self, addr: SocketAddr) -> Option<SendRequest<Outgoing>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(&addr)?;
        list.retain(|(s, at)| !s.is_closed() && at.elapsed() < IDLE_REUSE);
        let at = list.iter().position(|(s, _)| s.is_ready())?;
        Some(list.swap_remove(at).0)
    }

    fn give_back(&self, addr: SocketAddr, s: SendRequest<Outgoing>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(addr).or_default();
        if list.len() < IDLE_PER_REPLICA {
            list.push((s, std::time::Instant::now()));
        }
    }

    /// Sends `req` to the first of `backends` that takes it; returns which one answered.
    pub async fn send(
        &self,
        backends: &[Backend],
        req: Request<Outgoing>,
    ) -> Result<(usize, Response<Incoming>), SendError> {
        let again = replayable(&req);
        let rebuild = || {
            again
                .clone()
                .map(|head| Request::from_parts(head, Empty::new().map_err(|n| match n {}).boxed()))
        };
        let mut req = Some(req);
        let mut refused = Vec::new();
        let mut failed = None;
        for (i, b) in backends.iter().enumerate().take(TRIES) {
            let Some(mut r) = req.take().or_else(rebuild) else {
                break;
            };
            // A kept connection the replica closed meanwhile hands the request back unsent;
            // one that failed with it is retried afresh when the request can be repeated.
            while let Some(mut s) = self.take(b.addr) {
                match s.try_send_request(r).await {
                    Ok(resp) => {
                        self.give_back(b.addr, s);
                        return Ok((i, resp));
                    }
                    Err(mut e) => match e.take_message().or_else(rebuild) {
                        Some(back) => r = back,
                        None => return Err(SendError::Failed(b.addr, e.into_error())),
                    },
                }
            }
            let mut s = match connect(b.addr).await {
                Ok(s) => s,
                Err(e) => {
                    debug!(addr = %b.addr, error = %e, "replica refused a connection");
                    refused.push((b.addr, e));
                    req = Some(r);
                    continue;
                }
            };
            let sent = s.send_request(r);
            self.give_back(b.addr, s);
            match sent.await {
                Ok(resp) => return Ok((i, resp)),
                Err(e) if again.is_some() => failed = Some((b.addr, e)),
                Err(e) => return Err(SendError::Failed(b.addr, e)),
            }
        }
        Err(match failed {
            Some((addr, e)) => SendError::Failed(addr, e),
            None => SendError::Connect(refused),
        })
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Outgoing>, String> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    // The connection's task ends when the replica or the pool closes it.
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!(%addr, error = %e, "replica connection ended");
        }
    });
    Ok(sender)
}
