//! Fixed-size time rings of (good, bad) counts: memory depends on the window, never on traffic.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Slot {
    /// Which absolute slot (time / width) the counts belong to; stale slots read as empty.
    tag: i64,
    good: u32,
    bad: u32,
}

/// Good and bad counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub good: u64,
    pub bad: u64,
}

impl Counts {
    pub fn valid(self) -> u64 {
        self.good + self.bad
    }
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Self) {
        self.good += o.good;
        self.bad += o.bad;
    }
}

/// `len` slots of `width_ms` each, covering the last `len × width_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    width_ms: i64,
    slots: Vec<Slot>,
}

impl Ring {
    pub fn new(width_ms: i64, len: usize) -> Self {
        Self {
            width_ms,
            slots: vec![
                Slot {
                    tag: i64::MIN,
                    good: 0,
                    bad: 0
                };
                len
            ],
        }
    }

    /// Adds (or, with negative deltas, retracts) counts at time `at`. Times older than the ring
    /// covers are ignored: they have left every window.
    pub fn add(&mut self, at: Millis, good: i64, bad: i64) {
        let tag = at.div_euclid(self.width_ms);
        let i = tag.rem_euclid(self.slots.len() as i64) as usize;
        let slot = &mut self.slots[i];
        if slot.tag != tag {
            if slot.tag > tag {
                return; // the slot already holds a newer period
            }
            *slot = Slot {
                tag,
                good: 0,
                bad: 0,
            };
        }
        slot.good = (slot.good as i64 + good).max(0) as u32;
        slot.bad = (slot.bad as i64 + bad).max(0) as u32;
    }

    /// Sum over `[from, to]` (slot granularity: a slot counts when its start lies in range).
    pub fn sum(&self, from: Millis, to: Millis) -> Counts {
        let (lo, hi) = (from.div_euclid(self.width_ms), to.div_euclid(self.width_ms));
        let mut c = Counts::default();
        if hi < lo {
            return c;
        }
        let span = (hi - lo + 1).min(self.slots.len() as i64);
        for tag in (hi - span + 1)..=hi {
            let s = &self.slots[tag.rem_euclid(self.slots.len() as i64) as usize];
            if s.tag == tag {
                c.good += s.good as u64;
                c.bad += s.bad as u64;
            }
        }
        c
    }

    /// Width of one slot.
    pub fn width_ms(&self) -> i64 {
        self.width_ms
    }

    /// Time covered.
    pub fn span_ms(&self) -> i64 {
        self.width_ms * self.slots.len() as i64
    }

    /// Non-empty slots (for compact snapshots).
    pub fn occupied(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.good > 0 || s.bad > 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_windows_and_forgets_old_slots() {
        let mut r = Ring::new(60_000, 60); // one hour of minutes
        r.add(0, 1, 0);
        r.add(30_000, 0, 1);
        r.add(120_000, 2, 0);
        assert_eq!(r.sum(0, 59_999), Counts { good: 1, bad: 1 });
        assert_eq!(r.sum(0, 180_000), Counts { good: 3, bad: 1 });
        // An hour later minute 0's slot is reused; the old counts vanish.
        r.add(3_600_000, 5, 0);
        assert_eq!(r.sum(3_600_000, 3_600_000), Counts { good: 5, bad: 0 });
        assert_eq!(
            r.sum(0, 3_600_000).good,
            7,
            "minute 2 still in range, minute 0 gone"
        );
        // Writes older than a slot's current period are dropped.
        r.add(0, 9, 9);
        assert_eq!(r.sum(0, 0), Counts::default());
    }

    #[test]
    fn retraction_never_underflows() {
        let mut r = Ring::new(1000, 10);
        r.add(5, 0, 1);
        r.add(5, 1, -1);
        r.add(5, 0, -1);
        assert_eq!(r.sum(0, 999), Counts { good: 1, bad: 0 });
    }
}
