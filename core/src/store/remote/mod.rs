//! [`KvStore`] through a scheduler's AgentGatewayService: how node agents reach the store
//! without etcd credentials. The gateway confines each node's credential to its own keys;
//! store errors keep their kind across the wire ([`wire`]).

pub mod wire;

use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use uni_proto::v1 as pb;
use uni_proto::v1::agent_gateway_service_client::AgentGatewayServiceClient;

use super::{
    KeyValue, KvStore, LeaseId, RangeOptions, RangeResponse, Revision, Txn, TxnOp, TxnResponse,
    WatchStream,
};
use crate::client::AuthChannel;
use crate::{Error, Result};
use wire::{error_of, events_from_wire, kv_from_wire, txn_response_from_wire, txn_to_wire};

/// Largest message either way: a page of allocations or a node object.
const MAX_MESSAGE: usize = 16 << 20;

type Client = AgentGatewayServiceClient<AuthChannel>;

/// The store as a gateway serves it. [`RemoteStore::replace_channel`] swaps the connection
/// (a renewed client certificate) without disturbing callers.
pub struct RemoteStore {
    client: RwLock<Client>,
}

fn client(channel: AuthChannel) -> Client {
    AgentGatewayServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

impl RemoteStore {
    pub fn new(channel: AuthChannel) -> Self {
        Self {
            client: RwLock::new(client(channel)),
        }
    }

    /// Calls from now on go over `channel`; calls and watches in flight finish on the old one.
    pub fn replace_channel(&self, channel: AuthChannel) {
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = client(channel);
    }

    fn c(&self) -> Client {
        self.client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl KvStore for RemoteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let r = self
            .c()
            .get(pb::KvGetRequest { key: key.into() })
            .await
            .map_err(error_of)?;
        Ok(r.into_inner().kv.map(kv_from_wire))
    }

    async fn range(&self, prefix: &str, opts: RangeOptions) -> Result<RangeResponse> {
        let r = self
            .c()
            .range(pb::KvRangeRequest {
                prefix: prefix.into(),
                start_after: opts.start_after,
                limit: opts.limit.map(|l| l as u64),
            })
            .await
            .map_err(error_of)?
            .into_inner();
        Ok(RangeResponse {
            kvs: r.kvs.into_iter().map(kv_from_wire).collect(),
            more: r.more,
            revision: r.revision,
        })
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: LeaseId) -> Result<Revision> {
        let txn = Txn::new().and_then([TxnOp::Put {
            key: key.into(),
            value,
            lease,
        }]);
        Ok(self.txn(txn).await?.revision)
    }

    async fn delete(&self, key: &str) -> Result<(Revision, bool)> {
        let r = self.txn(Txn::new().and_then([TxnOp::delete(key)])).await?;
        let existed = matches!(r.results.first(), Some(super::TxnOpResult::Delete(n)) if *n > 0);
        Ok((r.revision, existed))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let r = self.c().txn(txn_to_wire(&txn)).await.map_err(error_of)?;
        Ok(txn_response_from_wire(r.into_inner()))
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        let stream = self
            .c()
            .watch(pb::KvWatchRequest {
                prefix: prefix.into(),
                from,
            })
            .await
            .map_err(error_of)?
            .into_inner();
        Ok(Box::pin(stream.map(|r| match r {
            Ok(batch) => Ok(events_from_wire(batch)),
            Err(s) => Err(error_of(s)),
        })))
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId> {
        let r = self
            .c()
            .lease_grant(pb::LeaseGrantRequest {
                ttl_seconds: ttl.as_secs().max(1) as u32,
            })
            .await
            .map_err(error_of)?;
        Ok(r.into_inner().lease)
    }

    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        let r = self
            .c()
            .lease_keep_alive(pb::LeaseKeepAliveRequest { lease })
            .await
            .map_err(error_of)?;
        Ok(Duration::from_secs(r.into_inner().ttl_seconds.into()))
    }

    async fn lease_revoke(&self, lease: LeaseId) -> Result<()> {
        self.c()
            .lease_revoke(pb::LeaseRevokeRequest { lease })
            .await
            .map_err(error_of)?;
        Ok(())
    }

    async fn revision(&self) -> Result<Revision> {
        let r = self
            .c()
            .revision(pb::RevisionRequest {})
            .await
            .map_err(error_of)?;
        Ok(r.into_inner().revision)
    }

    async fn compact(&self, _revision: Revision) -> Result<()> {
        Err(Error::invalid(
            "compact",
            "compaction is the control plane's, not a node's",
        ))
    }
}
