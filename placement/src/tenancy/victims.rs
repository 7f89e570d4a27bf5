//! Choosing preemption victims: the smallest set of running workloads whose removal lets a
//! waiting one in, preferring (in this order) fewer victims, lower priority, less work lost
//! and the most recently started. A gang is a victim whole, or shrunk within its elastic
//! range (candidates of one `group`, of which at most one is taken).

/// One way to free capacity: stopping a workload, or shrinking an elastic gang by some
/// workers. Candidates of the same `group` (one workload) exclude each other.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Which workload: candidates sharing it exclude each other.
    pub group: usize,
    pub priority: i32,
    /// Work lost if stopped: device (or, without devices, compute) milli-seconds run since it
    /// started. Resizing restarts a gang, so a shrink loses as much as a stop.
    pub lost: u64,
    /// When it started (unix millis): the most recent is stopped first.
    pub started: i64,
    /// Workers it frees (a shrink frees fewer than a stop).
    pub frees: u32,
}

/// Most fit tests one choice may make.
pub const MAX_TESTS: usize = 64;

/// The victims (indices into `candidates`) whose removal makes `fits` true, minimal: no
/// victim can be left out (or shrunk less) and still fit. `None` when even all of them do not
/// make room. `fits` receives the candidate indices to remove.
pub fn choose(
    candidates: &[Candidate],
    mut fits: impl FnMut(&[usize]) -> bool,
) -> Option<Vec<usize>> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&i| {
        let c = &candidates[i];
        (c.priority, c.lost, std::cmp::Reverse(c.started), c.frees)
    });
    let mut tests = 0;
    // One victim, the cheapest that is enough.
    for &i in &order {
        if tests >= MAX_TESTS / 2 {
            break;
        }
        tests += 1;
        if fits(&[i]) {
            return Some(vec![i]);
        }
    }
    // Several: add the cheapest until enough (a larger candidate of a group replacing a
    // smaller), then leave out what is not needed, most expensive first.
    let mut chosen: Vec<usize> = Vec::new();
    let mut enough = false;
    for &i in &order {
        if tests >= MAX_TESTS {
            return None;
        }
        let group = candidates[i].group;
        match chosen.iter().position(|&c| candidates[c].group == group) {
            Some(at) if candidates[chosen[at]].frees >= candidates[i].frees => continue,
            Some(at) => chosen[at] = i,
            None => chosen.push(i),
        }
        tests += 1;
        if fits(&chosen) {
            enough = true;
            break;
        }
    }
    if !enough {
        return None;
    }
    for at in (0..chosen.len()).rev() {
        let victim = chosen[at];
        // Smaller candidates of the same group, smallest first, then none at all.
        let mut lighter: Vec<Option<usize>> = vec![None];
        let mut smaller: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&c| {
                candidates[c].group == candidates[victim].group
                    && candidates[c].frees < candidates[victim].frees
            })
            .collect();
        smaller.sort_by_key(|&c| candidates[c].frees);
        lighter.extend(smaller.into_iter().map(Some));
        for option in lighter {
            if tests >= MAX_TESTS {
                break;
            }
            let mut trial = chosen.clone();
            match option {
                None => {
                    trial.remove(at);
                }
                Some(c) => trial[at] = c,
            }
            tests += 1;
            if fits(&trial) {
                chosen = trial;
                break;
            }
        }
    }
    Some(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(group: usize, priority: i32, lost: u64, frees: u32) -> Candidate {
        Candidate {
            group,
            priority,
            lost,
            started: 0,
            frees,
        }
    }

    #[test]
    fn one_victim_is_the_cheapest_that_is_enough() {
        // Sizes by group: 0 frees 1, 1 frees 4, 2 frees 4 at a higher priority.
        let cands = [c(0, 100, 0, 1), c(1, 200, 10, 4), c(2, 300, 0, 4)];
        let sizes = [1, 4, 4];
        let got = choose(&cands, |set| {
            set.iter().map(|&i| sizes[i]).sum::<u32>() >= 3
        });
        assert_eq!(got, Some(vec![1]));
    }

    #[test]
    fn several_victims_are_pruned_to_what_is_needed() {
        let cands = [c(0, 100, 0, 1), c(1, 100, 1, 1), c(2, 100, 2, 3)];
        let sizes = [1, 1, 3];
        let got = choose(&cands, |set| {
            set.iter().map(|&i| sizes[i]).sum::<u32>() >= 4
        })
        .expect("enough");
        // 0 + 1 + 2 fit; 1 is not needed once 2 is in (0 + 2 = 4): the cheapest two remain.
        let mut got = got;
        got.sort();
        assert_eq!(got, vec![0, 2]);
        assert_eq!(
            choose(&cands, |set| set.iter().map(|&i| sizes[i]).sum::<u32>()
                >= 9),
            None
        );
    }

    #[test]
    fn a_gang_is_shrunk_rather_than_stopped_when_that_is_enough() {
        // Group 0: shrink by 1, shrink by 2, stop (4 workers).
        let cands = [c(0, 100, 5, 1), c(0, 100, 5, 2), c(0, 100, 5, 4)];
        let got = choose(&cands, |set| {
            set.iter().map(|&i| cands[i].frees).sum::<u32>() >= 2
        });
        assert_eq!(got, Some(vec![1]));
    }
}
