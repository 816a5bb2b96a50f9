//! The spam-loop gate: repeated side effects on one (account, action, target) in a sliding window.

use std::collections::VecDeque;

use crate::call::{Denial, Reason};
use crate::clock::Millis;

/// Limits of the spam-loop guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_repeats: u32,
    pub within_ms: Millis,
}

/// Drops dispatches that left the window, then refuses if one more would exceed the limit.
pub fn check(window: &mut VecDeque<Millis>, now: Millis, limits: &Limits) -> Result<(), Denial> {
    while window.front().is_some_and(|&t| t <= now - limits.within_ms) {
        window.pop_front();
    }
    if window.len() as u32 >= limits.max_repeats {
        return Err(Denial::new(
            Reason::SpamLoop,
            format!(
                "{} identical side effects on this account and target within {} s; refusing the next one (spam loop)",
                window.len(),
                limits.within_ms / 1000
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourth_repeat_within_the_window_is_refused() {
        let limits = Limits {
            max_repeats: 3,
            within_ms: 3_600_000,
        };
        let mut w = VecDeque::new();
        for t in [0, 10, 20] {
            check(&mut w, t, &limits).unwrap();
            w.push_back(t);
        }
        assert_eq!(
            check(&mut w, 30, &limits).unwrap_err().reason,
            Reason::SpamLoop
        );
        // An hour after the first, one slot is free again.
        assert!(check(&mut w, 3_600_000, &limits).is_ok());
        assert_eq!(w.len(), 2);
    }
}
