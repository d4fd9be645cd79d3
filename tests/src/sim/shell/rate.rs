//! One rate-limit window type for every simulator: at most `limit` units
//! (requests, or API credits when calls cost more than one) per key in any
//! sliding `window`. Each provider configures its own windows and keys (a hub,
//! an org, a user, a portal) and renders its own refusal; the window only says
//! yes (with what remains) or no (with when there will be room again).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A sliding window per key.
#[derive(Debug)]
pub struct RateWindow<K> {
    limit: u32,
    window: Duration,
    keys: Mutex<HashMap<K, Usage>>,
}

#[derive(Debug, Default)]
struct Usage {
    /// `(when, cost)` of the admitted hits still inside the window.
    hits: VecDeque<(Instant, u32)>,
    /// This key's own `(limit, window)`, replacing the default.
    own: Option<(u32, Duration)>,
}

impl<K: Eq + Hash + Clone> RateWindow<K> {
    /// `limit` units per key in any sliding `window`.
    pub fn new((limit, window): (u32, Duration)) -> Self {
        RateWindow {
            limit,
            window,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The default `(limit, window)`.
    pub fn limit(&self) -> (u32, Duration) {
        (self.limit, self.window)
    }

    /// Give `key` its own limit (hits already counted stay counted).
    pub fn set_limit(&self, key: &K, limit: u32, window: Duration) {
        self.lock().entry(key.clone()).or_default().own = Some((limit, window));
    }

    /// Count one unit for `key` now: `Ok(remaining)` when admitted,
    /// `Err(retry_after)` when refused (refusals are not counted).
    pub fn take(&self, key: &K) -> Result<u32, Duration> {
        self.take_cost_at(key, 1, Instant::now())
    }

    /// As [`RateWindow::take`] for a call that costs `cost` units.
    pub fn take_cost(&self, key: &K, cost: u32) -> Result<u32, Duration> {
        self.take_cost_at(key, cost, Instant::now())
    }

    /// As [`RateWindow::take_cost`] at a given instant (not before earlier ones).
    pub fn take_cost_at(&self, key: &K, cost: u32, now: Instant) -> Result<u32, Duration> {
        let mut keys = self.lock();
        let usage = keys.entry(key.clone()).or_default();
        let (limit, window) = usage.own.unwrap_or((self.limit, self.window));
        while usage
            .hits
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= window)
        {
            usage.hits.pop_front();
        }
        let used: u32 = usage.hits.iter().map(|(_, cost)| cost).sum();
        if used.saturating_add(cost) <= limit {
            usage.hits.push_back((now, cost));
            return Ok(limit - used - cost);
        }
        // Room comes back as the oldest hits leave the window.
        let mut freed = 0;
        for (at, hit) in &usage.hits {
            freed += hit;
            if used - freed + cost <= limit {
                return Err((*at + window).saturating_duration_since(now));
            }
        }
        // A call costing more than the whole limit never fits.
        Err(window)
    }

    /// Units counted for `key` inside the window as of `now`.
    pub fn used_at(&self, key: &K, now: Instant) -> u32 {
        let keys = self.lock();
        let Some(usage) = keys.get(key) else {
            return 0;
        };
        let window = usage.own.map_or(self.window, |(_, window)| window);
        usage
            .hits
            .iter()
            .filter(|(at, _)| now.duration_since(*at) < window)
            .map(|(_, cost)| cost)
            .sum()
    }

    /// Forget every key's hits (limits set with [`RateWindow::set_limit`] stay).
    pub fn clear(&self) {
        for usage in self.lock().values_mut() {
            usage.hits.clear();
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Usage>> {
        // A panic while holding this lock cannot leave the windows inconsistent.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn admits_up_to_the_limit_then_refuses_with_the_time_to_room() {
        let window = RateWindow::new((3, 10 * SEC));
        let t0 = Instant::now();
        assert_eq!(window.take_cost_at(&"a", 1, t0), Ok(2));
        assert_eq!(window.take_cost_at(&"a", 1, t0 + 2 * SEC), Ok(1));
        assert_eq!(window.take_cost_at(&"a", 1, t0 + 4 * SEC), Ok(0));
        // The oldest hit leaves at t0 + 10 s.
        assert_eq!(window.take_cost_at(&"a", 1, t0 + 6 * SEC), Err(4 * SEC));
        // Refusals are not counted.
        assert_eq!(window.used_at(&"a", t0 + 6 * SEC), 3);
        // Keys are independent.
        assert_eq!(window.take_cost_at(&"b", 1, t0 + 6 * SEC), Ok(2));
    }

    #[test]
    fn slides_hit_by_hit() {
        let window = RateWindow::new((2, 10 * SEC));
        let t0 = Instant::now();
        window.take_cost_at(&1u64, 1, t0).unwrap();
        window.take_cost_at(&1u64, 1, t0 + 5 * SEC).unwrap();
        assert!(window.take_cost_at(&1u64, 1, t0 + 9 * SEC).is_err());
        // At exactly t0 + 10 s the first hit has left; the second has not.
        assert_eq!(window.take_cost_at(&1u64, 1, t0 + 10 * SEC), Ok(0));
        assert_eq!(window.take_cost_at(&1u64, 1, t0 + 12 * SEC), Err(3 * SEC));
    }

    #[test]
    fn weighted_costs_wait_for_enough_room() {
        let window = RateWindow::new((10, 60 * SEC));
        let t0 = Instant::now();
        window.take_cost_at(&"org", 4, t0).unwrap();
        window.take_cost_at(&"org", 4, t0 + 10 * SEC).unwrap();
        // 8 used: a cost of 5 waits for the first hit to leave, 7 for both.
        assert_eq!(window.take_cost_at(&"org", 5, t0 + 20 * SEC), Err(40 * SEC));
        assert_eq!(window.take_cost_at(&"org", 7, t0 + 20 * SEC), Err(50 * SEC));
        assert_eq!(window.take_cost_at(&"org", 2, t0 + 20 * SEC), Ok(0));
        // More than the whole limit never fits.
        assert_eq!(
            window.take_cost_at(&"org", 11, t0 + 20 * SEC),
            Err(60 * SEC)
        );
    }

    #[test]
    fn per_key_limits_and_clear() {
        let window = RateWindow::new((5, 60 * SEC));
        let t0 = Instant::now();
        window.set_limit(&"small", 1, SEC);
        assert_eq!(window.take_cost_at(&"small", 1, t0), Ok(0));
        assert_eq!(window.take_cost_at(&"small", 1, t0), Err(SEC));
        assert_eq!(window.take_cost_at(&"other", 1, t0), Ok(4));
        window.clear();
        assert_eq!(window.used_at(&"other", t0), 0);
        // The key's own limit survives the clear.
        assert_eq!(window.take_cost_at(&"small", 1, t0), Ok(0));
        assert_eq!(window.limit(), (5, 60 * SEC));
    }
}
