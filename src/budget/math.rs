//! Error-budget arithmetic (§5): SLI, allowed failures, remaining budget, burn rate, exhaustion.
//! Pure functions; no NaN or infinity ever leaves them.

use super::ring::Counts;

/// Smallest error budget used as a divisor: a 100% target has no budget, and any failure
/// burns it "very fast" rather than infinitely.
pub const MIN_BUDGET: f64 = 1e-6;

/// good / valid, or `None` without data.
pub fn sli(c: Counts) -> Option<f64> {
    (c.valid() > 0).then(|| c.good as f64 / c.valid() as f64)
}

/// Failures the budget allows for this many valid events: (1 − target) × valid.
pub fn allowed_bad(target: f64, valid: u64) -> f64 {
    (1.0 - target).max(0.0) * valid as f64
}

/// Budget left, in events (negative once overspent).
pub fn remaining_events(target: f64, c: Counts) -> f64 {
    allowed_bad(target, c.valid()) - c.bad as f64
}

/// Budget left as a fraction of the allowed failures (may be negative); `None` without data.
/// With a 100% target there is no budget: untouched it is 1.0, any failure makes it −1.0
/// per failure.
pub fn remaining_fraction(target: f64, c: Counts) -> Option<f64> {
    if c.valid() == 0 {
        return None;
    }
    let allowed = allowed_bad(target, c.valid());
    if allowed <= 0.0 {
        return Some(if c.bad == 0 { 1.0 } else { -(c.bad as f64) });
    }
    Some((allowed - c.bad as f64) / allowed)
}

/// Burn rate: error ratio / (1 − target); 1.0 spends the budget exactly over the window.
pub fn burn_rate(target: f64, c: Counts) -> Option<f64> {
    (c.valid() > 0).then(|| (c.bad as f64 / c.valid() as f64) / (1.0 - target).max(MIN_BUDGET))
}

/// Seconds until the remaining budget is gone at the recent failure rate (`bad_recent` failures
/// over `recent_secs`); `None` when nothing is burning or it is already gone.
pub fn time_to_exhaustion(remaining_events: f64, bad_recent: u64, recent_secs: f64) -> Option<f64> {
    if bad_recent == 0 || recent_secs <= 0.0 {
        return None;
    }
    let per_sec = bad_recent as f64 / recent_secs;
    Some((remaining_events.max(0.0) / per_sec).round())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(good: u64, bad: u64) -> Counts {
        Counts { good, bad }
    }

    #[test]
    fn hand_computed_values() {
        // Policy §5.1: 99.5% over 10,000 attempts allows 50 failures.
        assert!((allowed_bad(0.995, 10_000) - 50.0).abs() < 1e-9);
        let x = c(9_980, 20);
        assert_eq!(sli(x), Some(0.998));
        assert!((remaining_events(0.995, x) - 30.0).abs() < 1e-9);
        assert!((remaining_fraction(0.995, x).unwrap() - 0.6).abs() < 1e-9);
        // 20 failures in 10,000 at a 0.5% budget: error ratio 0.2% → burn 0.4.
        assert!((burn_rate(0.995, x).unwrap() - 0.4).abs() < 1e-9);
        // Overspent: 80 failures → −60% left.
        assert!((remaining_fraction(0.995, c(9_920, 80)).unwrap() + 0.6).abs() < 1e-9);
        // 1% errors against a 1% budget burns at exactly 1.
        assert!((burn_rate(0.99, c(99, 1)).unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn zero_traffic_is_no_data_not_nan() {
        assert_eq!(sli(c(0, 0)), None);
        assert_eq!(remaining_fraction(0.99, c(0, 0)), None);
        assert_eq!(burn_rate(0.99, c(0, 0)), None);
        assert_eq!(remaining_events(0.99, c(0, 0)), 0.0);
    }

    #[test]
    fn hundred_percent_target_has_no_budget() {
        assert_eq!(remaining_fraction(1.0, c(10, 0)), Some(1.0));
        assert_eq!(remaining_fraction(1.0, c(10, 1)), Some(-1.0));
        let b = burn_rate(1.0, c(99, 1)).unwrap();
        assert!(b.is_finite() && b > 1000.0);
    }

    #[test]
    fn exhaustion_at_current_burn() {
        // 30 events left, 10 failures in the last hour → 3 hours.
        assert_eq!(time_to_exhaustion(30.0, 10, 3600.0), Some(10_800.0));
        assert_eq!(time_to_exhaustion(30.0, 0, 3600.0), None);
        assert_eq!(time_to_exhaustion(-5.0, 10, 3600.0), Some(0.0));
    }
}
