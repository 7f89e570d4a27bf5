//! Queue resources as the Universal queues they mirror.

use std::collections::HashMap;

use kube::ResourceExt;
use prost::Message;
use uni_proto::v1 as pb;

use super::fingerprint::Fingerprint;
use crate::crd::queue::Quota;
use crate::crd::Queue;
use crate::labels;

/// The Universal queue `q` should be mirrored to, and the fingerprint of its spec.
pub fn desired_queue(q: &Queue) -> (pb::Queue, String) {
    let spec = pb::QueueSpec {
        guaranteed: q.spec.guaranteed.as_ref().map(quota),
        max: q.spec.max.as_ref().map(quota),
        priority: q.spec.priority,
        weight: q.spec.weight.unwrap_or(0),
        parent: q.spec.parent.clone().unwrap_or_default(),
        borrowing_limit: q.spec.borrowing_limit.as_ref().map(quota),
        lending_limit: q.spec.lending_limit.as_ref().map(quota),
    };
    let fingerprint = Fingerprint::default()
        .bytes(b"Queue")
        .bytes(&spec.encode_to_vec())
        .hex();
    let mut annotations = HashMap::new();
    annotations.insert(labels::FINGERPRINT.into(), fingerprint.clone());
    annotations.insert(labels::OWNER_UID.into(), q.uid().unwrap_or_default());
    let mut meta_labels = HashMap::new();
    meta_labels.insert(labels::MANAGED_BY.into(), labels::OPERATOR.into());
    let queue = pb::Queue {
        meta: Some(pb::ObjectMeta {
            name: q.name_any(),
            labels: meta_labels,
            annotations,
            ..pb::ObjectMeta::default()
        }),
        spec: Some(spec),
        status: None,
    };
    (queue, fingerprint)
}

fn quota(q: &Quota) -> pb::Quota {
    pb::Quota {
        compute: q.compute.clone().unwrap_or_default(),
        memory: q.memory.clone().unwrap_or_default(),
        devices: q.devices,
        device_memory: q.device_memory.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::QueueSpec;

    #[test]
    fn quota_fields_map_and_fingerprint_follows_spec() {
        let mut q = Queue::new(
            "research",
            QueueSpec {
                guaranteed: Some(Quota {
                    compute: Some("64".into()),
                    devices: Some(8),
                    ..Quota::default()
                }),
                ..QueueSpec::default()
            },
        );
        let (pbq, fp) = desired_queue(&q);
        let g = pbq.spec.and_then(|s| s.guaranteed).expect("guaranteed");
        assert_eq!((g.compute.as_str(), g.devices), ("64", Some(8)));
        q.spec.priority = Some(900);
        let fp2 = desired_queue(&q).1;
        assert_ne!(fp2, fp);
        q.spec.parent = Some("org".into());
        q.spec.borrowing_limit = Some(Quota {
            devices: Some(2),
            ..Quota::default()
        });
        let (pbq, fp3) = desired_queue(&q);
        let spec = pbq.spec.expect("spec");
        assert_eq!(spec.parent, "org");
        assert_eq!(spec.borrowing_limit.and_then(|b| b.devices), Some(2));
        assert_ne!(fp3, fp2);
    }
}
