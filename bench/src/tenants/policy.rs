//! The policies compared, each a configuration of the scheduler's own planner and the
//! queues it is given: nothing here decides a placement or a preemption.

use std::time::Duration;

use uni_core::model::{ObjectMeta, Queue, QueueSpec, Quota};
use uni_scheduler::schedule::{PlanConfig, Preemption, QueueOrder};

use super::scenario::Team;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// No quotas: one first-come, first-served line over the fleet (the utilization
    /// reference).
    Fifo,
    /// What `max` alone gives: each team capped at its share, first come first served, no
    /// borrowing, no preemption.
    FifoMax,
    /// Kueue-style: guarantees with borrowing and reclaim, queues ordered by priority and
    /// submission (no fair share), whole workloads preempted, no reservation for large
    /// gangs, no elastic resizing.
    Kueue,
    /// Universal: the planner as it ships.
    Universal,
}

impl Policy {
    pub const ALL: [Policy; 4] = [Self::Fifo, Self::FifoMax, Self::Kueue, Self::Universal];

    pub fn name(self) -> &'static str {
        match self {
            Self::Fifo => "fifo",
            Self::FifoMax => "fifo-max",
            Self::Kueue => "kueue",
            Self::Universal => "universal",
        }
    }

    pub fn plan_config(self) -> PlanConfig {
        let shipped = PlanConfig::default();
        let config = PlanConfig {
            finished_ttl: None,
            ..shipped.clone()
        };
        match self {
            Self::Universal => config,
            Self::Kueue => PlanConfig {
                queue_order: QueueOrder::Priority,
                preemption: Preemption::Whole,
                starvation_after: Duration::MAX,
                elastic_window: None,
                ..config
            },
            Self::Fifo | Self::FifoMax => PlanConfig {
                queue_order: QueueOrder::Submission,
                preemption: Preemption::Never,
                starvation_after: Duration::MAX,
                elastic_window: None,
                ..config
            },
        }
    }

    /// The queues this policy runs with: one cohort, a child per team.
    pub fn queues(self, teams: &[Team]) -> Vec<Queue> {
        let mut out = vec![queue("org", QueueSpec::default())];
        for t in teams {
            let gpus = Quota {
                devices: Some(t.guaranteed_gpus),
                ..Quota::default()
            };
            let mut spec = QueueSpec {
                parent: "org".into(),
                priority: t.priority,
                ..QueueSpec::default()
            };
            match self {
                Self::Fifo => {}
                Self::FifoMax => spec.max = gpus,
                Self::Kueue | Self::Universal => {
                    spec.guaranteed = gpus;
                    spec.weight = t.weight;
                }
            }
            out.push(queue(t.name, spec));
        }
        out
    }
}

fn queue(name: &str, spec: QueueSpec) -> Queue {
    Queue {
        meta: ObjectMeta::cluster(name),
        spec,
        ..Queue::default()
    }
}
