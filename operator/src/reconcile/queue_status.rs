//! A Queue's status from the Universal queue: pure, unit-tested without a cluster.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use uni_proto::v1 as pb;

use super::conditions::{merge, Computed};
use crate::crd::queue::QueueUsage;
use crate::crd::status::condition;
use crate::crd::QueueStatus;

/// A Queue's status from the Universal queue: pure.
pub fn queue_status(
    previous: Option<&QueueStatus>,
    generation: Option<i64>,
    verdict: &Result<(), String>,
    observed: Option<&pb::Queue>,
    now: &Time,
) -> QueueStatus {
    let computed = match verdict {
        Ok(()) => vec![
            Computed::new(
                condition::ACCEPTED,
                true,
                "Accepted",
                "mirrored as a Universal queue",
            ),
            Computed::new(condition::FAILED, false, "NoFailure", ""),
        ],
        Err(message) => vec![
            Computed::new(condition::ACCEPTED, false, "InvalidSpec", message.clone()),
            Computed::new(condition::FAILED, true, "InvalidSpec", message.clone()),
        ],
    };
    let s = observed.and_then(|q| q.status).unwrap_or_default();
    let amounts = |a: Option<pb::ResourceAmounts>| {
        let a = a.unwrap_or_default();
        observed.map(|_| QueueUsage {
            compute_milli: a.compute_milli,
            memory_bytes: a.memory_bytes,
            device_milli: a.device_milli,
            device_memory_bytes: a.device_memory_bytes,
        })
    };
    QueueStatus {
        observed_generation: generation,
        usage: amounts(s.usage),
        borrowed: amounts(s.borrowed),
        lent: amounts(s.lent),
        pending_workloads: observed.map(|_| s.pending_workloads),
        running_workloads: observed.map(|_| s.running_workloads),
        conditions: merge(
            previous.map_or(&[][..], |p| &p.conditions[..]),
            computed,
            generation,
            now,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::conditions::is_true;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn status_reports_usage_and_rejections() {
        let now = Time(Timestamp::from_second(5).expect("time"));
        let q = pb::Queue {
            status: Some(pb::QueueStatus {
                usage: Some(pb::ResourceAmounts {
                    compute_milli: 4000,
                    ..pb::ResourceAmounts::default()
                }),
                pending_workloads: 2,
                running_workloads: 1,
                borrowed: Some(pb::ResourceAmounts {
                    device_milli: 2000,
                    ..pb::ResourceAmounts::default()
                }),
                lent: None,
            }),
            ..pb::Queue::default()
        };
        let s = queue_status(None, Some(4), &Ok(()), Some(&q), &now);
        assert!(is_true(&s.conditions, condition::ACCEPTED));
        assert_eq!(s.usage.as_ref().map(|u| u.compute_milli), Some(4000));
        assert_eq!(s.borrowed.as_ref().map(|u| u.device_milli), Some(2000));
        assert_eq!(s.lent.as_ref().map(|u| u.device_milli), Some(0));
        assert_eq!(
            (s.pending_workloads, s.running_workloads),
            (Some(2), Some(1))
        );
        let bad = queue_status(
            Some(&s),
            Some(5),
            &Err("spec.max.compute: bad".into()),
            None,
            &now,
        );
        assert!(!is_true(&bad.conditions, condition::ACCEPTED));
        assert!(is_true(&bad.conditions, condition::FAILED));
        assert_eq!(bad.observed_generation, Some(5));
    }
}
