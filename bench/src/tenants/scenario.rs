//! The tenants' scenario: a fleet of 8-GPU nodes, a queue tree of four teams under one
//! cohort, and arrivals over time drawn per team from a load profile (what each team would
//! keep busy if it had the fleet to itself), with bursts that make teams borrow and then
//! take their guarantees back.

use crate::replay::rng::Rng;

pub const NODES: u32 = 32;
pub const GPUS_PER_NODE: u32 = 8;
pub const FLEET_GPUS: u32 = NODES * GPUS_PER_NODE;
const HOUR: f64 = 3_600_000.0;

/// What a team submits.
#[derive(Debug, Clone)]
pub enum Shape {
    /// A gang of `workers` (elastic down to `min_workers`) of `gpus` each, running for
    /// `hours` at full size.
    Train {
        workers: u32,
        min_workers: u32,
        gpus: u32,
        hours: (f64, f64),
    },
    /// A service of `replicas` of `gpus` each, kept for `hours`.
    Serve {
        replicas: u32,
        gpus: u32,
        hours: (f64, f64),
    },
}

impl Shape {
    pub fn size(&self) -> u32 {
        match self {
            Self::Train { workers, gpus, .. } => workers * gpus,
            Self::Serve { replicas, gpus, .. } => replicas * gpus,
        }
    }

    fn hours(&self) -> (f64, f64) {
        match self {
            Self::Train { hours, .. } | Self::Serve { hours, .. } => *hours,
        }
    }

    /// Mean of a log-uniform draw over `hours`.
    fn mean_hours(&self) -> f64 {
        let (a, b) = self.hours();
        if (b - a).abs() < f64::EPSILON {
            a
        } else {
            (b - a) / (b / a).ln()
        }
    }
}

pub struct Team {
    pub name: &'static str,
    pub guaranteed_gpus: u32,
    pub weight: u32,
    pub priority: i32,
    pub preemptible: bool,
    /// The mix it submits: relative frequency and shape.
    pub mix: Vec<(f64, Shape)>,
    /// Offered load in GPUs from an hour on: `(from_hour, gpus)`.
    pub load: Vec<(f64, f64)>,
}

impl Team {
    fn mean_gpu_hours(&self) -> f64 {
        let total: f64 = self.mix.iter().map(|(w, _)| w).sum();
        self.mix
            .iter()
            .map(|(w, s)| w / total * f64::from(s.size()) * s.mean_hours())
            .sum()
    }
}

fn train(workers: u32, min_workers: u32, gpus: u32, hours: (f64, f64)) -> Shape {
    Shape::Train {
        workers,
        min_workers,
        gpus,
        hours,
    }
}

/// The four teams. Guarantees sum to the fleet; research weighs twice the others beyond
/// its guarantee.
pub fn teams() -> Vec<Team> {
    vec![
        Team {
            name: "research",
            guaranteed_gpus: 96,
            weight: 2,
            priority: uni_core::model::priority::NORMAL,
            preemptible: true,
            mix: vec![
                (0.30, train(1, 1, 8, (0.5, 3.0))),
                (0.25, train(2, 2, 8, (0.5, 3.0))),
                (0.15, train(4, 2, 8, (1.0, 4.0))),
                (0.15, train(4, 4, 8, (1.0, 4.0))),
                (0.10, train(8, 4, 8, (1.0, 4.0))),
                (0.05, train(8, 8, 8, (1.0, 4.0))),
            ],
            load: vec![(0.0, 70.0), (1.0, 260.0), (5.0, 80.0)],
        },
        Team {
            name: "vision",
            guaranteed_gpus: 64,
            weight: 1,
            priority: uni_core::model::priority::NORMAL,
            preemptible: true,
            mix: vec![
                (0.35, train(1, 1, 4, (0.3, 2.0))),
                (0.35, train(1, 1, 8, (0.3, 2.0))),
                (0.20, train(2, 1, 8, (0.5, 2.0))),
                (0.10, train(4, 4, 8, (0.5, 2.0))),
            ],
            load: vec![(0.0, 15.0), (3.0, 110.0), (6.0, 40.0)],
        },
        Team {
            name: "product",
            guaranteed_gpus: 64,
            weight: 1,
            priority: uni_core::model::priority::HIGH,
            preemptible: false,
            mix: vec![
                (
                    0.45,
                    Shape::Serve {
                        replicas: 2,
                        gpus: 1,
                        hours: (1.0, 4.0),
                    },
                ),
                (
                    0.25,
                    Shape::Serve {
                        replicas: 4,
                        gpus: 2,
                        hours: (1.0, 4.0),
                    },
                ),
                (
                    0.10,
                    Shape::Serve {
                        replicas: 2,
                        gpus: 4,
                        hours: (1.0, 4.0),
                    },
                ),
                (0.20, train(1, 1, 8, (0.5, 1.5))),
            ],
            load: vec![(0.0, 30.0), (6.0, 75.0)],
        },
        Team {
            name: "batch",
            guaranteed_gpus: 32,
            weight: 1,
            priority: uni_core::model::priority::LOW,
            preemptible: true,
            mix: vec![
                (0.7, train(1, 1, 1, (0.1, 0.5))),
                (0.3, train(1, 1, 2, (0.1, 0.5))),
            ],
            load: vec![(0.0, 45.0)],
        },
    ]
}

/// One submission.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at_ms: i64,
    pub team: usize,
    pub shape: Shape,
    /// How long it runs (training: at full size) or is kept (services), in ms.
    pub duration_ms: i64,
}

/// Poisson arrivals per team and load segment until `hours`, in time order.
pub fn arrivals(teams: &[Team], hours: f64, seed: u64) -> Vec<Arrival> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for (t, team) in teams.iter().enumerate() {
        let per_job = team.mean_gpu_hours();
        let total: f64 = team.mix.iter().map(|(w, _)| w).sum();
        for (i, &(from, gpus)) in team.load.iter().enumerate() {
            let to = team.load.get(i + 1).map_or(hours, |n| n.0).min(hours);
            // Jobs per hour that keep `gpus` busy on average (Little's law).
            let rate = gpus / per_job;
            let mut at = from;
            loop {
                at += -uniform(&mut rng).ln() / rate;
                if at >= to {
                    break;
                }
                let mut pick = uniform(&mut rng) * total;
                let shape = team
                    .mix
                    .iter()
                    .find(|(w, _)| {
                        pick -= w;
                        pick <= 0.0
                    })
                    .map_or_else(|| team.mix[0].1.clone(), |(_, s)| s.clone());
                let (a, b) = shape.hours();
                let h = a * (b / a).powf(uniform(&mut rng));
                out.push(Arrival {
                    at_ms: (at * HOUR) as i64,
                    team: t,
                    shape,
                    duration_ms: (h * HOUR) as i64,
                });
            }
        }
    }
    out.sort_by_key(|a| (a.at_ms, a.team));
    out
}

/// Uniform in (0, 1].
fn uniform(rng: &mut Rng) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// Max-min fair entitlement in GPUs: each team first gets its demand up to its guarantee,
/// then what is left is shared by weight among teams that want more (water-filling).
pub fn entitlements(teams: &[Team], demand: &[f64], capacity: f64) -> Vec<f64> {
    let mut ent: Vec<f64> = teams
        .iter()
        .zip(demand)
        .map(|(t, d)| d.min(f64::from(t.guaranteed_gpus)))
        .collect();
    let mut left = capacity - ent.iter().sum::<f64>();
    for _ in 0..teams.len() {
        let wanting: Vec<usize> = (0..teams.len())
            .filter(|&i| demand[i] - ent[i] > 1e-9)
            .collect();
        if wanting.is_empty() || left <= 1e-9 {
            break;
        }
        let weights: f64 = wanting.iter().map(|&i| f64::from(teams[i].weight)).sum();
        let mut given = 0.0;
        for &i in &wanting {
            let share = left * f64::from(teams[i].weight) / weights;
            let take = share.min(demand[i] - ent[i]);
            ent[i] += take;
            given += take;
        }
        left -= given;
    }
    ent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn water_filling_gives_guarantees_then_shares_by_weight() {
        let teams = teams();
        // research wants everything, vision half its guarantee, the rest nothing.
        let ent = entitlements(&teams, &[400.0, 32.0, 0.0, 0.0], 256.0);
        assert_eq!(ent, vec![224.0, 32.0, 0.0, 0.0]);
        // Two teams wanting more split what is left 2:1 by weight.
        let ent = entitlements(&teams, &[400.0, 400.0, 64.0, 32.0], 256.0);
        assert!((ent[0] - 96.0).abs() < 1e-6, "{ent:?}");
        assert!((ent[1] - 64.0).abs() < 1e-6, "{ent:?}");
        let ent = entitlements(&teams, &[400.0, 400.0, 0.0, 0.0], 256.0);
        assert!((ent[0] - (96.0 + 96.0 * 2.0 / 3.0)).abs() < 1e-6, "{ent:?}");
        assert!((ent[1] - (64.0 + 32.0)).abs() < 1e-6, "{ent:?}");
    }

    #[test]
    fn arrivals_follow_the_seed_and_the_load() {
        let teams = teams();
        let a = arrivals(&teams, 8.0, 7);
        let b = arrivals(&teams, 8.0, 7);
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| x.at_ms == y.at_ms));
        assert!(a.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        // research's burst (hours 1-5) brings more of its work than its quiet hour.
        let research = |from: f64, to: f64| {
            a.iter()
                .filter(|x| x.team == 0)
                .filter(|x| (x.at_ms as f64) >= from * HOUR && (x.at_ms as f64) < to * HOUR)
                .count()
        };
        assert!(
            research(1.0, 2.0) > research(0.0, 1.0),
            "{}",
            research(1.0, 2.0)
        );
    }
}
