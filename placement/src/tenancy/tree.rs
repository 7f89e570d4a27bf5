//! The queue tree. Each queue has a guarantee (its nominal quota), a maximum, a borrowing limit
//! (how far beyond its guarantee it may go) and a lending limit (how much of its unused
//! guarantee others may use). Every amount is tracked on its own (compute, memory, devices,
//! device memory).
//!
//! What a queue *occupies* of its parent is what it uses, but at least the part of its
//! guarantee it does not lend (the guarantee less the lending limit); an interior queue
//! occupies what its children occupy together, but at least what it keeps itself. A workload
//! is admitted when, with it counted, every queue on its path stays within its maximum and
//! its borrowing ceiling (guarantee plus borrowing limit), the children of every queue on the
//! path occupy no more than that queue's ceiling, and the top-level queues together occupy no
//! more than the fleet.

use std::collections::HashMap;
use std::fmt;

use uni_core::model::{Queue, ResourceAmounts};
use uni_core::quantity::{format_bytes, format_milli};

use super::{add, sub, Amounts};

/// Which limit refused a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Max,
    BorrowingLimit,
    /// Capacity the queue's siblings keep for themselves (their guarantee beyond their
    /// lending limit).
    KeptBySiblings,
    /// The fleet is spoken for: what runs plus what other queues keep.
    Fleet,
    /// Workloads go to queues without children.
    NotALeaf,
}

/// Why a queue cannot take a workload now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub queue: String,
    pub limit: Limit,
    /// How far over the limit, per amount.
    pub over: Amounts,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = &self.queue;
        if self.limit == Limit::NotALeaf {
            return write!(f, "queue {q} has child queues; submit to one of them");
        }
        let over = describe(self.over);
        match self.limit {
            Limit::Max => write!(f, "queue {q}: {over} over its maximum quota"),
            Limit::BorrowingLimit => write!(f, "queue {q}: {over} over its borrowing limit"),
            Limit::KeptBySiblings => write!(
                f,
                "queue {q}: {over} more than is left once its sibling queues keep their \
                 guarantees"
            ),
            Limit::Fleet => write!(
                f,
                "queue {q}: {over} more than the fleet has once other queues keep their \
                 guarantees"
            ),
            Limit::NotALeaf => Ok(()),
        }
    }
}

/// `3 devices, 8 compute`: the nonzero amounts as people write them.
pub fn describe(a: Amounts) -> String {
    let mut parts = Vec::new();
    if a[2] > 0 {
        let d = a[2] as f64 / 1000.0;
        parts.push(format!(
            "{} device{}",
            trim(d),
            if d == 1.0 { "" } else { "s" }
        ));
    }
    if a[3] > 0 {
        parts.push(format!("{} device memory", format_bytes(a[3])));
    }
    if a[0] > 0 {
        parts.push(format!("{} compute", format_milli(a[0])));
    }
    if a[1] > 0 {
        parts.push(format!("{} memory", format_bytes(a[1])));
    }
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Serving order between queues, smallest first: queues below their guarantee, then by
/// queue priority, then by weighted dominant share beyond the guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrderKey {
    /// 0 below its guarantee, 1 otherwise.
    pub tier: u8,
    /// Negated queue priority.
    pub priority: i64,
    /// Dominant share beyond the guarantee over weight, in parts per billion.
    pub share: u64,
}

#[derive(Debug, Clone)]
struct Node {
    name: String,
    parent: Option<usize>,
    children: Vec<usize>,
    guaranteed: Amounts,
    /// Which guarantee amounts are set: only those count for "within its guarantee".
    guaranteed_set: [bool; 4],
    max: Amounts,
    /// Guarantee plus borrowing limit, capped by max.
    ceiling: Amounts,
    /// The guarantee less the lending limit: never lent.
    kept: Amounts,
    weight: u64,
    priority: i32,
    /// What the queue and everything below it use.
    usage: Amounts,
}

/// The queues with what each uses, and the fleet's capacity.
#[derive(Debug, Clone, Default)]
pub struct QueueTree {
    nodes: Vec<Node>,
    index: HashMap<String, usize>,
    capacity: Amounts,
}

impl QueueTree {
    /// The tree of `queues`, with what each uses (`usage`, by queue name; a name no queue
    /// has becomes a top-level queue with no guarantee and no limits), on a fleet of
    /// `capacity`. A parent that does not exist (or a cycle, which validation refuses) makes a
    /// queue top-level.
    pub fn new<'a>(
        queues: impl IntoIterator<Item = &'a Queue>,
        usage: impl IntoIterator<Item = (&'a str, ResourceAmounts)>,
        capacity: ResourceAmounts,
    ) -> Self {
        let mut t = Self {
            capacity: capacity.to_array(),
            ..Self::default()
        };
        let mut parents = Vec::new();
        for q in queues {
            let s = &q.spec;
            t.index.insert(q.meta.name.clone(), t.nodes.len());
            parents.push(s.parent.clone());
            t.nodes.push(Node {
                name: q.meta.name.clone(),
                parent: None,
                children: Vec::new(),
                guaranteed: s.guaranteed_amounts().to_array(),
                guaranteed_set: s.guaranteed.set(),
                max: s.max_amounts().to_array(),
                ceiling: s.borrowing_ceiling().to_array(),
                kept: s.kept_amounts().to_array(),
                weight: u64::from(s.weight.max(1)),
                priority: s.priority,
                usage: [0; 4],
            });
        }
        for (i, parent) in parents.iter().enumerate() {
            let Some(&p) = t.index.get(parent.as_str()) else {
                continue;
            };
            // Refuse a link that would close a cycle.
            let mut at = Some(p);
            let mut cycle = false;
            while let Some(a) = at {
                if a == i {
                    cycle = true;
                    break;
                }
                at = t.nodes[a].parent;
            }
            if !cycle {
                t.nodes[i].parent = Some(p);
                t.nodes[p].children.push(i);
            }
        }
        for (name, used) in usage {
            let i = t.ensure(name);
            t.charge(i, used.to_array(), true);
        }
        t
    }

    /// The index of `name`, adding it as an unconstrained top-level queue if unknown.
    fn ensure(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.nodes.len();
        self.index.insert(name.to_string(), i);
        self.nodes.push(Node {
            name: name.to_string(),
            parent: None,
            children: Vec::new(),
            guaranteed: [0; 4],
            guaranteed_set: [false; 4],
            max: [u64::MAX; 4],
            ceiling: [u64::MAX; 4],
            kept: [0; 4],
            weight: 1,
            priority: uni_core::model::priority::NORMAL,
            usage: [0; 4],
        });
        i
    }

    /// The queue `name`, from the leaf to the top.
    fn path(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(Some(i), |&a| self.nodes[a].parent)
    }

    fn charge(&mut self, i: usize, amounts: Amounts, add_it: bool) {
        let path: Vec<usize> = self.path(i).collect();
        for a in path {
            let u = &mut self.nodes[a].usage;
            *u = if add_it {
                add(*u, amounts)
            } else {
                sub(*u, amounts)
            };
        }
    }

    /// Counts `amounts` more (or, with `add_it` false, less) against queue `name`.
    pub fn record(&mut self, name: &str, amounts: ResourceAmounts, add_it: bool) {
        let i = self.ensure(name);
        self.charge(i, amounts.to_array(), add_it);
    }

    /// What `usage` makes queue `i` occupy of its parent.
    fn occupancy(&self, i: usize, usage: &[Amounts]) -> Amounts {
        let n = &self.nodes[i];
        if n.children.is_empty() {
            return std::array::from_fn(|d| usage[i][d].max(n.kept[d]));
        }
        let children = self.children_occupancy(i, usage);
        std::array::from_fn(|d| children[d].max(n.kept[d]))
    }

    fn children_occupancy(&self, i: usize, usage: &[Amounts]) -> Amounts {
        self.nodes[i]
            .children
            .iter()
            .fold([0; 4], |acc, &c| add(acc, self.occupancy(c, usage)))
    }

    /// Whether queue `name` may take `extra` more once the queues in `freed` use that much
    /// less (victims chosen but still running).
    pub fn admit(
        &self,
        name: &str,
        extra: ResourceAmounts,
        freed: &[(&str, ResourceAmounts)],
    ) -> Result<(), Refusal> {
        let extra = extra.to_array();
        let Some(&q) = self.index.get(name) else {
            return Ok(());
        };
        if !self.nodes[q].children.is_empty() {
            return Err(Refusal {
                queue: name.to_string(),
                limit: Limit::NotALeaf,
                over: [0; 4],
            });
        }
        let mut usage: Vec<Amounts> = self.nodes.iter().map(|n| n.usage).collect();
        for (f, amounts) in freed {
            if let Some(&i) = self.index.get(*f) {
                for a in self.path(i) {
                    usage[a] = sub(usage[a], amounts.to_array());
                }
            }
        }
        for a in self.path(q) {
            usage[a] = add(usage[a], extra);
        }
        let refuse = |a: usize, limit, over| Refusal {
            queue: self.nodes[a].name.clone(),
            limit,
            over,
        };
        for a in self.path(q) {
            let n = &self.nodes[a];
            let over = sub(usage[a], n.max);
            if over != [0; 4] && (0..4).any(|d| extra[d] > 0 && over[d] > 0) {
                return Err(refuse(a, Limit::Max, over));
            }
            let over = sub(usage[a], n.ceiling);
            if over != [0; 4] && (0..4).any(|d| extra[d] > 0 && over[d] > 0) {
                return Err(refuse(a, Limit::BorrowingLimit, over));
            }
            if !n.children.is_empty() {
                let over = sub(self.children_occupancy(a, &usage), n.ceiling);
                if (0..4).any(|d| extra[d] > 0 && over[d] > 0) {
                    return Err(refuse(q, Limit::KeptBySiblings, over));
                }
            }
        }
        let top = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].parent.is_none())
            .fold([0; 4], |acc, i| add(acc, self.occupancy(i, &usage)));
        let over = sub(top, self.capacity);
        if (0..4).any(|d| extra[d] > 0 && over[d] > 0 && self.capacity[d] > 0) {
            return Err(refuse(q, Limit::Fleet, over));
        }
        Ok(())
    }

    fn node(&self, name: &str) -> Option<&Node> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// Whether queue `name` with `extra` more stays within its guarantee in every amount its
    /// guarantee sets (and it sets one that `extra` needs): the condition for taking capacity
    /// back from queues that borrow.
    pub fn within_guarantee(&self, name: &str, extra: ResourceAmounts) -> bool {
        let Some(n) = self.node(name) else {
            return false;
        };
        let extra = extra.to_array();
        let needed = (0..4).any(|d| n.guaranteed_set[d] && extra[d] > 0);
        needed
            && (0..4).all(|d| {
                !n.guaranteed_set[d] || n.usage[d].saturating_add(extra[d]) <= n.guaranteed[d]
            })
    }

    /// Whether work holding `amounts` in queue `victim` may be stopped so that `preemptor`
    /// gets its guarantee: the victim's queue, and each queue above it up to the one it
    /// shares with the preemptor, borrows in what the work holds: it uses more than its
    /// guarantee in some amount the work holds that the guarantee sets (an interior queue: in
    /// what it occupies), or its guarantee sets none of them.
    ///
    /// This, with reclaiming only for a queue that stays within its guarantee, keeps reclaim
    /// from looping: the reclaiming queue ends within its guarantee in every amount it sets,
    /// so its work is never borrowing in those amounts, and the victim's queue can never take
    /// it back the same way.
    pub fn may_reclaim_from(
        &self,
        victim: &str,
        preemptor: &str,
        amounts: ResourceAmounts,
    ) -> bool {
        let (Some(&v), Some(&p)) = (self.index.get(victim), self.index.get(preemptor)) else {
            return false;
        };
        if v == p {
            return false;
        }
        let above_preemptor: Vec<usize> = self.path(p).collect();
        let held = amounts.to_array();
        let usage: Vec<Amounts> = self.nodes.iter().map(|n| n.usage).collect();
        self.path(v)
            .take_while(|a| !above_preemptor.contains(a))
            .all(|a| {
                let n = &self.nodes[a];
                let holds = if n.children.is_empty() {
                    n.usage
                } else {
                    self.occupancy(a, &usage)
                };
                let guarded: Vec<usize> = (0..4)
                    .filter(|&d| held[d] > 0 && n.guaranteed_set[d])
                    .collect();
                guarded.is_empty() || guarded.iter().any(|&d| holds[d] > n.guaranteed[d])
            })
    }

    /// What queue `name` uses beyond its guarantee.
    pub fn borrowed(&self, name: &str) -> ResourceAmounts {
        self.node(name).map_or(ResourceAmounts::ZERO, |n| {
            ResourceAmounts::from_array(sub(n.usage, n.guaranteed))
        })
    }

    /// What queue `name` and its children use.
    pub fn usage(&self, name: &str) -> ResourceAmounts {
        self.node(name).map_or(ResourceAmounts::ZERO, |n| {
            ResourceAmounts::from_array(n.usage)
        })
    }

    /// Unused guarantee of `name` that others are using: its lendable idle guarantee, up to
    /// what its siblings (top-level queues: the other top-level queues) borrow.
    pub fn lent(&self, name: &str) -> ResourceAmounts {
        let Some(&i) = self.index.get(name) else {
            return ResourceAmounts::ZERO;
        };
        let n = &self.nodes[i];
        let lendable = sub(sub(n.guaranteed, n.usage), n.kept);
        let siblings: Vec<usize> = match n.parent {
            Some(p) => self.nodes[p].children.clone(),
            None => (0..self.nodes.len())
                .filter(|&s| self.nodes[s].parent.is_none())
                .collect(),
        };
        let borrowed = siblings
            .into_iter()
            .filter(|&s| s != i)
            .fold([0; 4], |acc, s| {
                add(acc, sub(self.nodes[s].usage, self.nodes[s].guaranteed))
            });
        ResourceAmounts::from_array(std::array::from_fn(|d| lendable[d].min(borrowed[d])))
    }

    /// Where queue `name` stands in the serving order now.
    pub fn order(&self, name: &str) -> OrderKey {
        let Some(n) = self.node(name) else {
            return OrderKey {
                tier: 1,
                priority: -i64::from(uni_core::model::priority::NORMAL),
                share: 0,
            };
        };
        let below = (0..4).any(|d| n.guaranteed_set[d] && n.usage[d] < n.guaranteed[d]);
        let beyond = sub(n.usage, n.guaranteed);
        let share = (0..4)
            .filter(|&d| self.capacity[d] > 0)
            .map(|d| beyond[d] as f64 / self.capacity[d] as f64)
            .fold(0.0_f64, f64::max);
        OrderKey {
            tier: u8::from(!below),
            priority: -i64::from(n.priority),
            share: (share / n.weight as f64 * 1e9) as u64,
        }
    }

    /// The fleet's capacity the tree was built with.
    pub fn capacity(&self) -> ResourceAmounts {
        ResourceAmounts::from_array(self.capacity)
    }
}

#[cfg(test)]
mod tests {
    use uni_core::model::{ObjectMeta, QueueSpec, Quota};

    use super::*;

    fn gpus(n: u32) -> ResourceAmounts {
        ResourceAmounts::devices(n, 0)
    }

    fn queue(name: &str, parent: &str, guaranteed: Option<u32>, spec: QueueSpec) -> Queue {
        Queue {
            meta: ObjectMeta::cluster(name),
            spec: QueueSpec {
                parent: parent.into(),
                guaranteed: Quota {
                    devices: guaranteed,
                    ..Quota::default()
                },
                ..spec
            },
            ..Queue::default()
        }
    }

    fn devices_quota(n: u32) -> Quota {
        Quota {
            devices: Some(n),
            ..Quota::default()
        }
    }

    /// Two teams of 4 GPUs each on an 8-GPU fleet.
    fn two_teams(a_used: u32, b_used: u32, b_spec: QueueSpec) -> QueueTree {
        let queues = [
            queue("a", "", Some(4), QueueSpec::default()),
            queue("b", "", Some(4), b_spec),
        ];
        QueueTree::new(&queues, [("a", gpus(a_used)), ("b", gpus(b_used))], gpus(8))
    }

    #[test]
    fn idle_guarantee_is_lent_and_taken_back() {
        let t = two_teams(0, 4, QueueSpec::default());
        // b borrows a's idle guarantee.
        assert!(t.admit("b", gpus(4), &[]).is_ok());
        let t = two_teams(0, 8, QueueSpec::default());
        assert_eq!(t.borrowed("b"), gpus(4));
        assert_eq!(t.lent("a"), gpus(4));
        // a is within its guarantee, b runs on borrowed capacity: a may reclaim 4, not 5.
        assert!(t.within_guarantee("a", gpus(4)));
        assert!(!t.within_guarantee("a", gpus(5)));
        assert!(t.may_reclaim_from("b", "a", gpus(4)));
        // a comes first: it is below its guarantee.
        assert!(t.order("a") < t.order("b"));
        // Nothing is taken from a queue within its guarantee.
        assert!(!t.may_reclaim_from("a", "b", gpus(1)));
        let t = two_teams(4, 4, QueueSpec::default());
        assert!(!t.may_reclaim_from("b", "a", gpus(1)));
    }

    #[test]
    fn limits_name_the_queue_and_the_amount() {
        let spec = QueueSpec {
            borrowing_limit: devices_quota(1),
            ..QueueSpec::default()
        };
        let t = two_teams(0, 4, spec);
        let r = t.admit("b", gpus(3), &[]).expect_err("over");
        assert_eq!(r.limit, Limit::BorrowingLimit);
        assert_eq!(r.to_string(), "queue b: 2 devices over its borrowing limit");
        let spec = QueueSpec {
            max: devices_quota(5),
            ..QueueSpec::default()
        };
        let t = two_teams(0, 4, spec);
        let r = t.admit("b", gpus(2), &[]).expect_err("over");
        assert_eq!(r.to_string(), "queue b: 1 device over its maximum quota");
    }

    #[test]
    fn a_lending_limit_keeps_part_of_the_guarantee() {
        let queues = [
            queue(
                "a",
                "",
                Some(4),
                QueueSpec {
                    lending_limit: devices_quota(1),
                    ..QueueSpec::default()
                },
            ),
            queue("b", "", Some(4), QueueSpec::default()),
        ];
        let t = QueueTree::new(&queues, [("b", gpus(4))], gpus(8));
        // a keeps 3 of its 4: b may borrow only 1.
        assert!(t.admit("b", gpus(1), &[]).is_ok());
        let r = t.admit("b", gpus(2), &[]).expect_err("kept");
        assert_eq!(r.limit, Limit::Fleet);
    }

    #[test]
    fn cohorts_nest_and_share_inside_first() {
        // org (6) = research (3) + prod (3); other (2) at the top.
        let queues = [
            queue("org", "", Some(6), QueueSpec::default()),
            queue("research", "org", Some(3), QueueSpec::default()),
            queue(
                "prod",
                "org",
                Some(3),
                QueueSpec {
                    lending_limit: devices_quota(0),
                    ..QueueSpec::default()
                },
            ),
            queue("other", "", Some(2), QueueSpec::default()),
        ];
        let t = QueueTree::new(&queues, [("research", gpus(3))], gpus(8));
        // prod keeps its 3; other's 2 are idle and lent: research may grow by 2, not 3.
        assert!(t.admit("research", gpus(2), &[]).is_ok());
        assert!(t.admit("research", gpus(3), &[]).is_err());
        let r = t.admit("org", gpus(1), &[]).expect_err("interior");
        assert_eq!(r.limit, Limit::NotALeaf);
        // research borrowing from other: other may take it back, prod's guarantee is its own.
        let t = QueueTree::new(&queues, [("research", gpus(5))], gpus(8));
        assert!(t.within_guarantee("other", gpus(2)));
        assert!(t.may_reclaim_from("research", "other", gpus(2)));
        // Within org, prod reclaims from research (which is above its own 3).
        assert!(t.may_reclaim_from("research", "prod", gpus(2)));
        // research within its own 3 (org occupies 6 with prod's kept 3): nothing to take.
        let t = QueueTree::new(&queues, [("research", gpus(3))], gpus(8));
        assert!(!t.may_reclaim_from("research", "prod", gpus(1)));
        assert!(!t.may_reclaim_from("research", "other", gpus(1)));
        // Freed capacity counts: with research's 2 borrowed freed, other fits.
        let t = QueueTree::new(
            &queues,
            [("research", gpus(3)), ("other", gpus(0))],
            gpus(6),
        );
        assert!(t.admit("other", gpus(2), &[]).is_err());
        assert!(t.admit("other", gpus(2), &[("research", gpus(2))]).is_ok());
    }

    #[test]
    fn weighted_dominant_share_orders_borrowers() {
        let queues = [
            queue(
                "a",
                "",
                Some(0),
                QueueSpec {
                    weight: 2,
                    ..QueueSpec::default()
                },
            ),
            queue("b", "", Some(0), QueueSpec::default()),
        ];
        // a holds twice b's share with twice the weight: equal; a little more and b is first.
        let t = QueueTree::new(&queues, [("a", gpus(4)), ("b", gpus(2))], gpus(8));
        assert_eq!(t.order("a"), t.order("b"));
        let t = QueueTree::new(&queues, [("a", gpus(5)), ("b", gpus(2))], gpus(8));
        assert!(t.order("b") < t.order("a"));
    }
}
