//! Readiness and liveness probes: an HTTP GET that must answer 2xx or 3xx, or a TCP connection
//! that must be accepted, against the replica on this host. A [`Prober`] runs a probe on its
//! period and reports only transitions past the failure and success thresholds.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use uni_core::model::{Probe, ProbeAction};

/// Runs `action` once against `127.0.0.1`; port 0 means the replica's serving port.
pub async fn check(
    action: &ProbeAction,
    serving_port: u16,
    timeout: Duration,
) -> Result<(), String> {
    let port_of = |p: u16| if p == 0 { serving_port } else { p };
    let work = async {
        match action {
            ProbeAction::TcpSocket { port } => {
                let port = port_of(*port);
                TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map(drop)
                    .map_err(|e| format!("tcp 127.0.0.1:{port}: {e}"))
            }
            ProbeAction::HttpGet { path, port } => http_get(port_of(*port), path).await,
        }
    };
    tokio::time::timeout(timeout.max(Duration::from_millis(100)), work)
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {}s", timeout.as_secs_f64())))
}

async fn http_get(port: u16, path: &str) -> Result<(), String> {
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let what = format!("GET http://127.0.0.1:{port}{path}");
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: uni-agent-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = s.read(&mut buf).await.map_err(|e| format!("{what}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{what}: not an HTTP answer"))?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("{what}: status {status}"))
    }
}

/// A transition of a probe's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// `success_threshold` consecutive successes.
    Passing,
    /// `failure_threshold` consecutive failures, with the last error.
    Failing(String),
}

/// Runs one probe on its schedule. [`Prober::next`] is cancel-safe: the schedule lives in
/// the struct, so a `select!` that drops it loses nothing.
pub struct Prober {
    probe: Probe,
    serving_port: u16,
    next_at: Instant,
    successes: u32,
    failures: u32,
    passing: Option<bool>,
}

impl Prober {
    pub fn new(probe: Probe, serving_port: u16) -> Self {
        let next_at = Instant::now() + Duration::from_secs(u64::from(probe.initial_delay_seconds));
        Self {
            probe,
            serving_port,
            next_at,
            successes: 0,
            failures: 0,
            passing: None,
        }
    }

    fn period(&self) -> Duration {
        Duration::from_secs(u64::from(self.probe.period_seconds.max(1)))
    }

    /// Probes until the state changes; `on_failure` sees every failed attempt.
    pub async fn next(&mut self, mut on_failure: impl FnMut(&str)) -> Transition {
        loop {
            tokio::time::sleep_until(self.next_at).await;
            self.next_at = Instant::now() + self.period();
            let timeout = Duration::from_secs(u64::from(self.probe.timeout_seconds.max(1)));
            match check(&self.probe.action, self.serving_port, timeout).await {
                Ok(()) => {
                    self.failures = 0;
                    self.successes += 1;
                    if self.passing != Some(true)
                        && self.successes >= self.probe.success_threshold.max(1)
                    {
                        self.passing = Some(true);
                        return Transition::Passing;
                    }
                }
                Err(e) => {
                    on_failure(&e);
                    self.successes = 0;
                    self.failures += 1;
                    if self.passing != Some(false)
                        && self.failures >= self.probe.failure_threshold.max(1)
                    {
                        self.passing = Some(false);
                        return Transition::Failing(e);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    async fn serve_once(answer: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn http_probe_judges_the_status_code() {
        let ok = serve_once("HTTP/1.1 204 No Content\r\n\r\n").await;
        let bad = serve_once("HTTP/1.1 503 Unavailable\r\n\r\n").await;
        let get = |port| ProbeAction::HttpGet {
            path: "healthz".into(),
            port,
        };
        let t = Duration::from_secs(2);
        assert_eq!(check(&get(0), ok, t).await, Ok(()));
        let err = check(&get(bad), 1, t).await.unwrap_err();
        assert!(err.contains("status 503"), "{err}");
    }

    #[tokio::test]
    async fn tcp_probe_and_thresholds() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let probe = Probe {
            action: ProbeAction::TcpSocket { port: 0 },
            period_seconds: 1,
            failure_threshold: 1,
            ..Probe::default()
        };
        let mut p = Prober::new(probe, port);
        assert_eq!(p.next(|_| {}).await, Transition::Passing);
        drop(l);
        let mut failures = 0;
        match p.next(|_| failures += 1).await {
            Transition::Failing(e) => assert!(e.contains("tcp 127.0.0.1"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(failures, 1);
    }
}
