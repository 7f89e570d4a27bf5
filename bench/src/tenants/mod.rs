//! `uni-bench tenants`: several teams sharing a fleet, replayed in simulated time through the
//! scheduler's own queue order, admission, preemption, resizing and placement (see `sim`),
//! once per policy, with the same arrivals.

mod measure;
mod policy;
mod scenario;
mod sim;

use std::path::PathBuf;

use anyhow::Context;

use measure::{Report, Waits};
pub use policy::Policy;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Hours of arrivals.
    #[arg(long, default_value_t = 8.0)]
    hours: f64,
    /// Hours the replay goes on after the last arrival, for the work still waiting.
    #[arg(long, default_value_t = 8.0)]
    drain_hours: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Policies to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    policy: Vec<Policy>,
    /// Also write the reports as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

const HOUR_MS: f64 = 3_600_000.0;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let policies = if args.policy.is_empty() {
        Policy::ALL.to_vec()
    } else {
        args.policy.clone()
    };
    let teams = scenario::teams();
    let arrivals = scenario::arrivals(&teams, args.hours, args.seed);
    let longest_ms = arrivals
        .iter()
        .filter(|a| matches!(a.shape, scenario::Shape::Train { .. }))
        .map(|a| a.duration_ms)
        .max()
        .unwrap_or(0);
    println!(
        "{} arrivals over {} h on {} GPUs ({} nodes of {}); seed {}",
        arrivals.len(),
        args.hours,
        scenario::FLEET_GPUS,
        scenario::NODES,
        scenario::GPUS_PER_NODE,
        args.seed
    );
    let measure_until = (args.hours * HOUR_MS) as i64;
    let until = ((args.hours + args.drain_hours) * HOUR_MS) as i64;
    let mut reports = Vec::new();
    for p in policies {
        let started = std::time::Instant::now();
        let mut sim = sim::Sim::new(p, scenario::teams(), arrivals.clone())
            .await
            .with_context(|| format!("setting up {}", p.name()))?;
        sim.run(until, measure_until)
            .await
            .with_context(|| format!("replaying {}", p.name()))?;
        let r = measure::report(p.name(), &teams, &sim.jobs, &sim.record, until);
        eprintln!(
            "{}: replayed in {:.1}s",
            p.name(),
            started.elapsed().as_secs_f64()
        );
        reports.push(r);
    }
    print_reports(&reports, longest_ms as f64 / 60_000.0);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&reports)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn w(x: &Waits) -> String {
    if x.count == 0 {
        return "-".into();
    }
    let left = if x.unplaced > 0 {
        format!(" ({} left)", x.unplaced)
    } else {
        String::new()
    };
    format!(
        "{:.0}/{:.0}/{:.0}{left}",
        x.p50_minutes, x.p99_minutes, x.max_minutes
    )
}

fn print_reports(reports: &[Report], longest_minutes: f64) {
    println!();
    println!(
        "{:<10} {:>6} {:>9} {:>9} {:>16} {:>16} {:>16} {:>6} {:>8}",
        "policy",
        "util%",
        "dev mean",
        "dev max",
        "reclaim min",
        "small gang min",
        "large gang min",
        "stops",
        "GPU-h"
    );
    for r in reports {
        let stops: u32 = r
            .preemptions
            .iter()
            .filter(|(k, _)| *k != "Resized")
            .map(|(_, n)| n)
            .sum();
        println!(
            "{:<10} {:>6.1} {:>9.2} {:>9.2} {:>16} {:>16} {:>16} {:>6} {:>8.1}",
            r.policy,
            r.utilization_pct,
            r.mean_deviation_pts,
            r.max_deviation_pts,
            w(&r.reclaim),
            w(&r.small_gangs),
            w(&r.large_gangs),
            stops,
            r.gpu_hours_lost
        );
    }
    println!("(waits p50/p99/max in minutes; deviation from max-min fair entitlement in points of the fleet)");
    for r in reports {
        println!();
        println!("{}: per team", r.policy);
        println!(
            "  {:<9} {:>5} {:>7} {:>9} {:>9} {:>16} {:>16} {:>6} {:>7}",
            "team",
            "guar",
            "share%",
            "dev mean",
            "dev max",
            "reclaim min",
            "wait min",
            "stops",
            "GPU-h"
        );
        for t in &r.teams {
            println!(
                "  {:<9} {:>5} {:>7.1} {:>9.2} {:>9.2} {:>16} {:>16} {:>6} {:>7.1}",
                t.team,
                t.guaranteed_gpus,
                t.mean_share_pct,
                t.mean_deviation_pts,
                t.max_deviation_pts,
                w(&t.reclaim),
                w(&t.waits),
                t.preemptions,
                t.gpu_hours_lost
            );
        }
        let resized = r.preemptions.get("Resized").copied().unwrap_or(0);
        let by_reason: Vec<String> = r
            .gpu_hours_lost_by_reason
            .iter()
            .map(|(reason, h)| format!("{reason} {h:.1}"))
            .collect();
        println!(
            "  resizes: {resized}; GPU-h lost by reason: {}; steps past the pass limit: {}",
            if by_reason.is_empty() {
                "-".to_string()
            } else {
                by_reason.join(", ")
            },
            r.unsettled_steps
        );
    }
    let find = |name: &str| reports.iter().find(|r| r.policy == name);
    if let Some(u) = find("universal") {
        println!();
        if let Some(f) = find("fifo") {
            println!(
                "utilization: universal {:.1}% against no-quota fifo {:.1}% ({:+.1} points; target within 3)",
                u.utilization_pct,
                f.utilization_pct,
                u.utilization_pct - f.utilization_pct
            );
        }
        println!(
            "entitlement: mean deviation {:.2} points, worst team mean {:.2} (target within 5)",
            u.mean_deviation_pts,
            u.teams
                .iter()
                .map(|t| t.mean_deviation_pts)
                .fold(0.0, f64::max)
        );
        println!(
            "large gangs: longest wait {:.0} min against twice the longest job, {:.0} min",
            u.large_gangs.max_minutes,
            2.0 * longest_minutes
        );
        if let Some(k) = find("kueue") {
            println!(
                "preemption cost: universal {:.1} GPU-h against kueue-style {:.1}",
                u.gpu_hours_lost, k.gpu_hours_lost
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short replay under a baseline and under Universal: the fleet is never exceeded,
    /// every job is accounted for, and only a policy that preempts stops anything.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_replay_keeps_within_the_fleet_and_accounts_for_every_job() {
        let teams = scenario::teams();
        let arrivals = scenario::arrivals(&teams, 1.0, 3);
        assert!(arrivals.len() > 50, "{}", arrivals.len());
        let hour = HOUR_MS as i64;
        for p in [Policy::Fifo, Policy::Universal] {
            let mut sim = sim::Sim::new(p, scenario::teams(), arrivals.clone())
                .await
                .expect("sim");
            sim.run(2 * hour, hour).await.expect("replay");
            let fleet = f64::from(scenario::FLEET_GPUS);
            assert!(sim.record.samples.len() > 50);
            for s in &sim.record.samples {
                assert!(s.held.iter().sum::<f64>() <= fleet, "{:?}", s.held);
            }
            let mut placed = 0;
            for j in &sim.jobs {
                if let Some(at) = j.placed_at {
                    assert!(at >= j.arrival.at_ms);
                    placed += 1;
                }
                if let (Some(done), scenario::Shape::Train { .. }) = (j.done_at, &j.arrival.shape) {
                    assert!(j.placed_at.is_some_and(|at| done > at), "{}", j.r);
                }
            }
            assert!(
                placed * 10 > sim.jobs.len() * 9,
                "{} of {}",
                placed,
                sim.jobs.len()
            );
            if p == Policy::Fifo {
                assert!(sim.record.stops.is_empty());
            }
        }
    }
}
