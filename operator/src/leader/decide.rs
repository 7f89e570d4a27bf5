//! The pure rule of leader election over a Lease, as client-go applies it: a lease is free
//! when nobody holds it or when its record has not changed for a whole lease duration as
//! measured on this machine's monotonic clock (so clock skew between machines cannot make
//! two leaders).

use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Take the lease (free, expired, or first creation).
    Acquire,
    /// We hold it: renew.
    Renew,
    /// Someone else holds a live lease.
    Follow { holder: String },
}

/// `unchanged_for`: how long the lease record (holder and renew time) has looked the same
/// from here; `duration`: the lease duration the holder wrote.
pub fn decide(
    me: &str,
    holder: Option<&str>,
    unchanged_for: Duration,
    duration: Duration,
) -> Verdict {
    match holder {
        None | Some("") => Verdict::Acquire,
        Some(h) if h == me => Verdict::Renew,
        Some(_) if unchanged_for >= duration => Verdict::Acquire,
        Some(h) => Verdict::Follow {
            holder: h.to_string(),
        },
    }
}

/// Timings derived from the lease duration, in client-go's proportions (15s / 10s / 2s):
/// a leader that could not renew for `renew_deadline` stops acting before any other replica
/// may take over (`duration`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timings {
    pub duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Timings {
    pub fn from_duration(duration: Duration) -> Self {
        Self {
            duration,
            renew_deadline: duration.mul_f64(2.0 / 3.0),
            retry_period: duration.mul_f64(2.0 / 15.0).max(Duration::from_millis(100)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    #[test]
    fn free_or_expired_leases_are_taken() {
        assert_eq!(decide("a", None, Duration::ZERO, D), Verdict::Acquire);
        assert_eq!(decide("a", Some(""), Duration::ZERO, D), Verdict::Acquire);
        assert_eq!(decide("a", Some("b"), D, D), Verdict::Acquire);
    }

    #[test]
    fn live_leases_are_respected_and_own_ones_renewed() {
        assert_eq!(decide("a", Some("a"), D * 2, D), Verdict::Renew);
        assert_eq!(
            decide("a", Some("b"), D - Duration::from_millis(1), D),
            Verdict::Follow { holder: "b".into() }
        );
    }

    #[test]
    fn a_leader_gives_up_before_others_take_over() {
        let t = Timings::from_duration(D);
        assert_eq!(t.renew_deadline, Duration::from_secs(10));
        assert_eq!(t.retry_period, Duration::from_secs(2));
        assert!(t.renew_deadline + t.retry_period < t.duration);
    }
}
