//! What a replay measured, and the figures reported from it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::scenario::{self, Shape, Team};
use super::sim::Job;

/// Held and wanted GPUs per team at one moment.
pub struct Sample {
    pub held: Vec<f64>,
    pub demand: Vec<f64>,
}

#[derive(Default)]
pub struct Record {
    pub samples: Vec<Sample>,
    /// Runs stopped, by team and reason, with the GPU-hours they lost.
    pub stops: BTreeMap<(usize, String), (u32, f64)>,
    /// Steps where the planner still had work after its pass limit.
    pub unsettled: u32,
}

impl Record {
    pub fn stopped(&mut self, team: usize, reason: &str, gpu_hours: f64) {
        let e = self.stops.entry((team, reason.to_string())).or_default();
        e.0 += 1;
        e.1 += gpu_hours;
    }
}

/// Moving average over this many samples (minutes) for the worst deviation.
const WINDOW: usize = 15;
/// Gangs of at most this many GPUs are small; of at least `LARGE` large.
const SMALL: u32 = 8;
const LARGE: u32 = 32;

#[derive(Serialize, Default, Clone)]
pub struct Waits {
    pub count: usize,
    pub p50_minutes: f64,
    pub p99_minutes: f64,
    pub max_minutes: f64,
    /// Still waiting when the replay ended (counted in the figures with their wait so far).
    pub unplaced: usize,
}

#[derive(Serialize)]
pub struct TeamReport {
    pub team: String,
    pub guaranteed_gpus: u32,
    /// Mean share of the fleet held, in percent.
    pub mean_share_pct: f64,
    /// Held minus max-min fair entitlement, in points of the fleet, while the team had demand:
    /// mean of the absolute value, and the worst 15-minute average.
    pub mean_deviation_pts: f64,
    pub max_deviation_pts: f64,
    pub reclaim: Waits,
    pub waits: Waits,
    pub preemptions: u32,
    pub gpu_hours_lost: f64,
}

#[derive(Serialize)]
pub struct Report {
    pub policy: String,
    pub utilization_pct: f64,
    pub mean_deviation_pts: f64,
    pub max_deviation_pts: f64,
    pub reclaim: Waits,
    pub small_gangs: Waits,
    pub large_gangs: Waits,
    pub preemptions: BTreeMap<String, u32>,
    pub gpu_hours_lost: f64,
    /// GPU-hours lost by why the run stopped.
    pub gpu_hours_lost_by_reason: BTreeMap<String, f64>,
    pub teams: Vec<TeamReport>,
    pub unsettled_steps: u32,
}

fn waits(mut w: Vec<f64>, unplaced: usize) -> Waits {
    if w.is_empty() {
        return Waits::default();
    }
    w.sort_by(f64::total_cmp);
    let at = |p: f64| w[((w.len() - 1) as f64 * p).round() as usize] / 60_000.0;
    Waits {
        count: w.len(),
        p50_minutes: at(0.5),
        p99_minutes: at(0.99),
        max_minutes: at(1.0),
        unplaced,
    }
}

/// Waits (ms) of `jobs`, those still unplaced counted until `end_ms`.
fn waits_of<'a>(jobs: impl Iterator<Item = &'a Job>, end_ms: i64) -> Waits {
    let mut unplaced = 0;
    let w = jobs
        .map(|j| match j.placed_at {
            Some(p) => (p - j.arrival.at_ms) as f64,
            None => {
                unplaced += 1;
                (end_ms - j.arrival.at_ms) as f64
            }
        })
        .collect();
    waits(w, unplaced)
}

fn gang(j: &Job) -> Option<u32> {
    matches!(j.arrival.shape, Shape::Train { .. }).then(|| j.arrival.shape.size())
}

/// Per-sample deviation from entitlement (points of the fleet), per team; `None` while the
/// team wants nothing.
fn deviations(teams: &[Team], samples: &[Sample]) -> Vec<Vec<Option<f64>>> {
    let capacity = f64::from(scenario::FLEET_GPUS);
    samples
        .iter()
        .map(|s| {
            let ent = scenario::entitlements(teams, &s.demand, capacity);
            (0..teams.len())
                .map(|i| (s.demand[i] > 0.0).then(|| (s.held[i] - ent[i]) / capacity * 100.0))
                .collect()
        })
        .collect()
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Worst moving average of |deviation| over runs of samples with demand.
fn worst_window(devs: &[Option<f64>]) -> f64 {
    devs.windows(WINDOW.min(devs.len()).max(1))
        .filter(|w| w.iter().all(Option::is_some))
        .map(|w| mean(w.iter().flatten().copied()).abs())
        .fold(0.0, f64::max)
}

pub fn report(policy: &str, teams: &[Team], jobs: &[Job], record: &Record, end_ms: i64) -> Report {
    let capacity = f64::from(scenario::FLEET_GPUS);
    let samples = &record.samples;
    let devs = deviations(teams, samples);
    let column = |i: usize| devs.iter().map(|d| d[i]).collect::<Vec<_>>();
    let lost_of = |team: Option<usize>| {
        record
            .stops
            .iter()
            .filter(|((t, _), _)| team.is_none_or(|x| x == *t))
            .map(|(_, (_, h))| h)
            .fold(0.0, |a, b| a + b)
    };
    let team_reports: Vec<TeamReport> = teams
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let col = column(i);
            let mine = || jobs.iter().filter(move |j| j.arrival.team == i);
            TeamReport {
                team: t.name.to_string(),
                guaranteed_gpus: t.guaranteed_gpus,
                mean_share_pct: mean(samples.iter().map(|s| s.held[i] / capacity * 100.0)),
                mean_deviation_pts: mean(col.iter().flatten().map(|d| d.abs())),
                max_deviation_pts: worst_window(&col),
                reclaim: waits_of(mine().filter(|j| j.reclaim), end_ms),
                waits: waits_of(mine(), end_ms),
                preemptions: record
                    .stops
                    .iter()
                    .filter(|((t, r), _)| *t == i && r != "Resized")
                    .map(|(_, (n, _))| n)
                    .sum(),
                gpu_hours_lost: lost_of(Some(i)),
            }
        })
        .collect();
    let mut preemptions = BTreeMap::new();
    let mut gpu_hours_lost_by_reason = BTreeMap::new();
    for ((_, reason), (n, h)) in &record.stops {
        *preemptions.entry(reason.clone()).or_default() += n;
        *gpu_hours_lost_by_reason.entry(reason.clone()).or_default() += h;
    }
    Report {
        policy: policy.to_string(),
        utilization_pct: mean(
            samples
                .iter()
                .map(|s| s.held.iter().sum::<f64>() / capacity * 100.0),
        ),
        mean_deviation_pts: mean(team_reports.iter().map(|t| t.mean_deviation_pts)),
        max_deviation_pts: team_reports
            .iter()
            .map(|t| t.max_deviation_pts)
            .fold(0.0, f64::max),
        reclaim: waits_of(jobs.iter().filter(|j| j.reclaim), end_ms),
        small_gangs: waits_of(
            jobs.iter().filter(|j| gang(j).is_some_and(|g| g <= SMALL)),
            end_ms,
        ),
        large_gangs: waits_of(
            jobs.iter().filter(|j| gang(j).is_some_and(|g| g >= LARGE)),
            end_ms,
        ),
        preemptions,
        gpu_hours_lost: lost_of(None),
        gpu_hours_lost_by_reason,
        teams: team_reports,
        unsettled_steps: record.unsettled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_percentiles_in_minutes() {
        let w = waits((1..=100).map(|m| m as f64 * 60_000.0).collect(), 0);
        assert_eq!(w.count, 100);
        assert_eq!(w.p50_minutes, 51.0);
        assert_eq!(w.p99_minutes, 99.0);
        assert_eq!(w.max_minutes, 100.0);
    }

    #[test]
    fn the_worst_window_skips_gaps_without_demand() {
        let mut devs = vec![Some(1.0); WINDOW];
        devs.push(None);
        devs.extend(vec![Some(-3.0); WINDOW]);
        assert_eq!(worst_window(&devs), 3.0);
    }
}
