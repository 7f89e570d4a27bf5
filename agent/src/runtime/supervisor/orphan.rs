//! What a previous agent left for an allocation that no longer exists: its process is stopped
//! and its cgroup, status and files removed.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{status_key, Replica, Signals};
use crate::runtime::host::ReplicaHost;
use crate::runtime::state::ReplicaDir;

/// Stops and removes what a previous agent left for an allocation that no longer exists.
pub async fn remove_orphan(host: Arc<ReplicaHost>, dir: ReplicaDir) {
    let state = match dir.load() {
        Ok(Some(s)) => s,
        _ => {
            dir.remove();
            return;
        }
    };
    let Ok(key) = status_key(&state.allocation) else {
        dir.remove();
        return;
    };
    // Never signalled: it stops and cleans up at once.
    let sig = Signals {
        remove: CancellationToken::new(),
        halt: CancellationToken::new(),
        notice: tokio::sync::watch::channel(None).1,
    };
    let mut r = Replica::new(host, state.allocation.clone(), dir, key, sig, state);
    info!(id = %r.alloc.id, "allocation no longer exists: stopping what is left of it");
    r.recover_launch().await;
    if let Some(Ok(mut run)) = r.adopt() {
        r.terminate(&mut run).await;
    }
    r.cleanup().await;
}
