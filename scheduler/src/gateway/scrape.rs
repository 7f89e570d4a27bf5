//! Scrapes the Prometheus gauge a service scales on (for example an LLM server's waiting
//! requests) from each of its ready replicas, once a tick, on the leader's gateway only (so
//! replicas are scraped once, not once per scheduler replica). The sum over replicas goes
//! into the service's meter and from there, windowed, to the autoscaler.

use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use uni_core::model::{PrometheusMetric, ScalingMetric, WorkloadRef, WorkloadSpec};

use super::route::{self, Backend};
use super::Gateway;

/// A replica that does not answer within this counts as 0 for the tick.
const TIMEOUT: Duration = Duration::from_secs(1);
/// Larger answers are not read.
const MAX_BYTES: usize = 4 << 20;

pub type Scraper = Client<HttpConnector, Empty<Bytes>>;

pub fn client() -> Scraper {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sums every sample of `name` (any labels) in Prometheus text exposition `text`; `None`
/// when there is none.
pub fn sum_of(text: &str, name: &str) -> Option<f64> {
    let mut found: Option<f64> = None;
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = match rest.chars().next() {
            Some('{') => match rest.rfind('}') {
                Some(i) => &rest[i + 1..],
                None => continue,
            },
            Some(' ' | '\t') => rest,
            _ => continue,
        };
        let value = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value.filter(|v| v.is_finite()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

async fn scrape_one(client: &Scraper, b: &Backend, m: &PrometheusMetric) -> Option<f64> {
    let port = if m.port == 0 { b.addr.port() } else { m.port };
    let url = format!(
        "http://{}{}",
        std::net::SocketAddr::new(b.addr.ip(), port),
        m.path
    );
    let req = http::Request::get(url).body(Empty::new()).ok()?;
    let read = async {
        let resp = client.request(req).await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let body = http_body_util::Limited::new(resp.into_body(), MAX_BYTES);
        let bytes = body.collect().await.ok()?.to_bytes();
        sum_of(&String::from_utf8_lossy(&bytes), &m.name)
    };
    tokio::time::timeout(TIMEOUT, read).await.ok().flatten()
}

impl Gateway {
    /// Scrapes every service that scales on a Prometheus metric; records the sums.
    pub async fn scrape(&self) {
        let targets: Vec<(WorkloadRef, PrometheusMetric, Vec<Backend>)> = {
            let st = self.cache.lock();
            st.workloads()
                .iter()
                .filter_map(|(r, w)| {
                    let WorkloadSpec::Inference(s) = &w.value.spec else {
                        return None;
                    };
                    let a = s.autoscaling.as_ref()?;
                    if a.metric != ScalingMetric::Prometheus {
                        return None;
                    }
                    let m = a.prometheus.clone()?;
                    let backends = route::backends(&st, r).unwrap_or_default();
                    Some((r.clone(), m, backends))
                })
                .collect()
        };
        let scrapes = targets.iter().map(|(r, m, backends)| async move {
            let values = join_all(backends.iter().map(|b| scrape_one(&self.scraper, b, m))).await;
            (r, values.into_iter().flatten().sum::<f64>())
        });
        for (r, sum) in join_all(scrapes).await {
            self.meters.record_metric(r, sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_of_the_name_is_summed_and_nothing_else() {
        let text = "# HELP vllm:num_requests_waiting waiting\n\
                    # TYPE vllm:num_requests_waiting gauge\n\
                    vllm:num_requests_waiting{model_name=\"a\"} 3\n\
                    vllm:num_requests_waiting{model_name=\"b}\"} 2.5 1700000000\n\
                    vllm:num_requests_waiting_total 100\n\
                    other 7\n";
        assert_eq!(sum_of(text, "vllm:num_requests_waiting"), Some(5.5));
        assert_eq!(sum_of("queue_depth 4\n", "queue_depth"), Some(4.0));
        assert_eq!(sum_of(text, "missing"), None);
        assert_eq!(sum_of("x NaN\n", "x"), None);
    }
}
