//! [`KvStore`] on etcd v3, the store of a real cluster.

mod convert;
mod watch;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    AlarmAction, AlarmType, Client, CompactionOptions, ConnectOptions, DeleteOptions, GetOptions,
    KvClient, PutOptions,
};

use super::{
    prefix_end, KeyValue, KvStore, LeaseId, RangeOptions, RangeResponse, Revision, StoreHealth,
    Txn, TxnResponse, WatchStream,
};
use crate::tls::client::ClientTls;
use crate::{Error, Result};
use convert::{from_kv, map_err, map_lease_err, revision_of, to_etcd_txn, txn_response};

/// Largest KV response accepted. etcd caps each value at its request limit (1.5 MiB by
/// default) but not a range: pages are cut by count, and a page that still comes back over
/// this fails with [`Error::TooLarge`] so that the reader asks for a smaller one
/// ([`super::Pager`]). tonic's default of 4 MiB would fail a page of a few large workloads.
pub const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// A handle to an etcd cluster; cheap to clone (connections are shared).
#[derive(Clone)]
pub struct EtcdStore {
    /// Over every endpoint: watches, leases, maintenance.
    client: Client,
    /// KV clients with [`MAX_RESPONSE_BYTES`] (`client`'s own keeps tonic's default), one per
    /// endpoint. Calls go to one member until it cannot be reached, then to the next, as
    /// etcd's own client pins an endpoint: a balanced channel keeps choosing a dead member
    /// (it has the fewest calls pending) and fails the calls sent to it.
    kv: Arc<Vec<KvClient>>,
    /// The same members' clients, for leases: a keep-alive sent to a dead member would let
    /// the lease expire although the others are up.
    members: Arc<Vec<Client>>,
    current: Arc<AtomicUsize>,
}

/// How to reach a secured etcd.
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    /// TLS for `https://` endpoints: the etcd CA and, for client-certificate auth, our
    /// certificate.
    pub tls: Option<ClientTls>,
    /// etcd user name and password.
    pub user: Option<(String, String)>,
}

impl EtcdOptions {
    /// TLS from PEM files: with a CA, a client certificate or both, endpoints must be
    /// `https://`; with none, no TLS.
    pub fn from_files(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> Result<Self> {
        let tls = if ca.is_some() || cert.is_some() || key.is_some() {
            Some(ClientTls::from_files(ca, cert, key)?)
        } else {
            None
        };
        Ok(Self { tls, user: None })
    }
}

impl EtcdStore {
    /// Connects to `endpoints` (`host:port` or `http://host:port`) without TLS.
    pub async fn connect<S: AsRef<str>>(endpoints: &[S]) -> Result<Self> {
        Self::connect_with(endpoints, &EtcdOptions::default()).await
    }

    /// Connects to `endpoints` with `opts`; with TLS, endpoints are `https://host:port`.
    pub async fn connect_with<S: AsRef<str>>(endpoints: &[S], opts: &EtcdOptions) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(Error::invalid(
                "etcd_endpoints",
                "at least one endpoint is required",
            ));
        }
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(15))
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3));
        if let Some(tls) = &opts.tls {
            if let Some(e) = endpoints
                .iter()
                .find(|e| !e.as_ref().starts_with("https://"))
            {
                return Err(Error::invalid(
                    "etcd_endpoints",
                    format!(
                        "{} must be https:// when etcd TLS is configured",
                        e.as_ref()
                    ),
                ));
            }
            connect = connect.with_tls(tls.to_tonic());
        }
        if let Some((user, password)) = &opts.user {
            connect = connect.with_user(user.clone(), password.clone());
        }
        let client = Client::connect(endpoints, Some(connect.clone()))
            .await
            .map_err(map_err)?;
        let mut members = Vec::new();
        for e in endpoints {
            // Lazy, except that etcd user auth asks for a token: a member down now is
            // skipped, the others serve.
            match Client::connect([e.as_ref()], Some(connect.clone())).await {
                Ok(c) => members.push(c),
                Err(err) => {
                    tracing::warn!(endpoint = e.as_ref(), error = %err, "etcd member unreachable; using the others")
                }
            }
        }
        if members.is_empty() {
            members.push(client.clone());
        }
        let kv = members
            .iter()
            .map(|c| c.kv_client().max_decoding_message_size(MAX_RESPONSE_BYTES))
            .collect();
        Ok(Self {
            client,
            kv: Arc::new(kv),
            members: Arc::new(members),
            current: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Runs `call` on the current member's KV client; when it fails before reaching etcd
    /// (nothing was sent, so even a write is safe to repeat), on the next member's, and after
    /// a round of all of them again after a pause (50 ms, doubling): at most
    /// [`UNSENT_ROUNDS`] rounds.
    async fn kv_call<T, Fut>(
        &self,
        call: impl Fn(KvClient) -> Fut,
    ) -> std::result::Result<T, etcd_client::Error>
    where
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.pinned(|i| call(self.kv[i].clone())).await
    }

    /// [`EtcdStore::kv_call`] for any call, given the index of the member to use.
    async fn pinned<T, Fut>(
        &self,
        call: impl Fn(usize) -> Fut,
    ) -> std::result::Result<T, etcd_client::Error>
    where
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let n = self.kv.len();
        let mut delay = Duration::from_millis(50);
        for attempt in 1..n * UNSENT_ROUNDS {
            let i = self.current.load(Ordering::Relaxed) % n;
            match call(i).await {
                Err(etcd_client::Error::TransportError(_)) => {
                    let _ = self.current.compare_exchange(
                        i,
                        (i + 1) % n,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    if attempt % n == 0 {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
                other => return other,
            }
        }
        let i = self.current.load(Ordering::Relaxed) % n;
        call(i).await
    }
}

/// Rounds over the members for a call that fails before reaching etcd.
const UNSENT_ROUNDS: usize = 4;

#[async_trait]
impl KvStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self
            .kv_call(|mut kv| async move { kv.get(key, None).await })
            .await
            .map_err(map_err)?;
        resp.kvs().first().map(from_kv).transpose()
    }

    async fn range(&self, prefix: &str, opts: RangeOptions) -> Result<RangeResponse> {
        let start = match &opts.start_after {
            // The smallest key strictly greater than `after`.
            Some(after) => format!("{after}\0"),
            None => prefix.to_string(),
        };
        let mut get = GetOptions::new().with_range(prefix_end(prefix));
        if let Some(limit) = opts.limit {
            get = get.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let resp = self
            .kv_call(|mut kv| {
                let (start, get) = (start.clone(), get.clone());
                async move { kv.get(start, Some(get)).await }
            })
            .await
            .map_err(map_err)?;
        Ok(RangeResponse {
            kvs: resp.kvs().iter().map(from_kv).collect::<Result<_>>()?,
            more: resp.more(),
            revision: revision_of(resp.header()),
        })
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: LeaseId) -> Result<Revision> {
        let opts = (lease != 0).then(|| PutOptions::new().with_lease(lease));
        let resp = self
            .kv_call(|mut kv| {
                let (value, opts) = (value.clone(), opts.clone());
                async move { kv.put(key, value, opts).await }
            })
            .await
            .map_err(|e| map_lease_err(e, lease))?;
        Ok(revision_of(resp.header()))
    }

    async fn delete(&self, key: &str) -> Result<(Revision, bool)> {
        let resp = self
            .kv_call(|mut kv| async move { kv.delete(key, None::<DeleteOptions>).await })
            .await
            .map_err(map_err)?;
        Ok((revision_of(resp.header()), resp.deleted() > 0))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let lease = txn_lease(&txn);
        let resp = self
            .kv_call(|mut kv| {
                let txn = to_etcd_txn(txn.clone());
                async move { kv.txn(txn).await }
            })
            .await
            .map_err(|e| map_lease_err(e, lease))?;
        txn_response(resp)
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        // Resolve "from now" before returning, so no write after this call can be missed.
        let from = if from <= 0 {
            self.revision().await? + 1
        } else {
            from
        };
        Ok(watch::spawn(self.client.clone(), prefix.to_string(), from))
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId> {
        let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let resp = self
            .pinned(|i| {
                let mut c = self.members[i].clone();
                async move { c.lease_grant(secs, None).await }
            })
            .await
            .map_err(map_err)?;
        Ok(resp.id())
    }

    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        let answer = self
            .pinned(|i| {
                let mut c = self.members[i].clone();
                async move {
                    let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
                    keeper.keep_alive().await?;
                    stream.message().await
                }
            })
            .await
            .map_err(|e| map_lease_err(e, lease))?;
        match answer {
            Some(r) if r.ttl() > 0 => Ok(Duration::from_secs(r.ttl().unsigned_abs())),
            _ => Err(Error::LeaseNotFound(lease)),
        }
    }

    async fn lease_revoke(&self, lease: LeaseId) -> Result<()> {
        self.pinned(|i| {
            let mut c = self.members[i].clone();
            async move { c.lease_revoke(lease).await }
        })
        .await
        .map_err(|e| map_lease_err(e, lease))?;
        Ok(())
    }

    async fn revision(&self) -> Result<Revision> {
        // A count-only read of one key returns the header, which carries the store revision.
        let resp = self
            .client
            .clone()
            .get("\0", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(map_err)?;
        Ok(revision_of(resp.header()))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.client
            .clone()
            .compact(revision, Some(CompactionOptions::new().with_physical()))
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn health(&self) -> Result<StoreHealth> {
        let mut client = self.client.clone();
        let status = client.status().await.map_err(map_err)?;
        // Listing alarms is an admin call under etcd auth: without it, report none.
        let alarms = client
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .ok();
        let mut names: Vec<String> = alarms
            .iter()
            .flat_map(|a| a.alarms())
            .map(|a| match a.alarm() {
                AlarmType::Nospace => "NOSPACE".to_string(),
                AlarmType::Corrupt => "CORRUPT".to_string(),
                other => format!("{other:?}").to_ascii_uppercase(),
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(StoreHealth {
            db_size_bytes: u64::try_from(status.db_size()).unwrap_or(0),
            db_size_in_use_bytes: u64::try_from(status.raft_used_db_size()).unwrap_or(0),
            alarms: names,
        })
    }
}

/// The lease a transaction attaches keys to, to name it if etcd reports it missing.
fn txn_lease(txn: &Txn) -> LeaseId {
    txn.success
        .iter()
        .chain(&txn.failure)
        .find_map(|op| match op {
            super::TxnOp::Put { lease, .. } if *lease != 0 => Some(*lease),
            _ => None,
        })
        .unwrap_or(0)
}
