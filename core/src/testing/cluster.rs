//! A cluster of etcd members on loopback, for faults one member cannot show: a member lost
//! (the rest keep quorum) and quorum lost (writes fail until members return).

use super::{free_port, EtcdServer};
use crate::store::{EtcdOptions, EtcdStore};
use crate::{Error, Result};

pub struct EtcdCluster {
    members: Vec<EtcdServer>,
}

impl EtcdCluster {
    /// Starts `size` members and waits until each serves reads. Another process may take a
    /// probed port before etcd binds it: a failed start is tried again on fresh ports.
    pub async fn start(size: usize) -> Result<Self> {
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(size).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Unavailable("etcd cluster did not start".into())))
    }

    async fn start_once(size: usize) -> Result<Self> {
        let mut members = (0..size)
            .map(|i| EtcdServer::new(&format!("m{i}"), None))
            .collect::<Result<Vec<_>>>()?;
        for m in &mut members {
            m.client_port = free_port()?;
            m.peer_port = free_port()?;
        }
        let initial = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        for m in &mut members {
            m.initial_cluster = Some(initial.clone());
            m.spawn()?;
        }
        for m in &mut members {
            m.wait_ready().await?;
        }
        Ok(Self { members })
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdServer::endpoint).collect()
    }

    /// A client of the whole cluster (it fails over between members).
    pub async fn store(&self) -> Result<EtcdStore> {
        EtcdStore::connect_with(&self.endpoints(), &EtcdOptions::default()).await
    }

    /// Kills member `i` (as a crash would); its data stays for [`EtcdCluster::restart`].
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Starts member `i` again; waits until it serves reads, which needs quorum.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        let m = self
            .members
            .get_mut(i)
            .ok_or_else(|| Error::Unavailable(format!("no member {i}")))?;
        m.kill();
        m.spawn()?;
        m.wait_ready().await
    }
}
