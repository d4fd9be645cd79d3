//! The arithmetic of the limiter, apart from DynamoDB: how a provider's documented window is
//! spent, what the backfill lane may take, and how long a refused take has to wait.

use std::time::Duration;

use crate::registry::{RateLimit, WindowShape};

/// A rolling window is spent in this many slots.
pub const SLOTS_PER_WINDOW: u64 = 10;

/// Windows at least this long are allocations (hourly, daily) rather than burst limits: the
/// backfill lane leaves a fifth of them to live leads instead of a third of each slot.
const ALLOCATION: Duration = Duration::from_secs(60 * 60);

/// How one of a provider's windows is counted in the shared item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowPlan {
    /// Length of one counted slot, in milliseconds.
    pub slot_ms: u64,
    /// Requests one slot may hold, for the live lane.
    pub cap: u32,
    /// Requests one slot may hold before the backfill lane stops taking.
    pub backfill_cap: u32,
    /// Whether this is an hourly or daily allocation.
    pub allocation: bool,
}

impl WindowPlan {
    pub fn new(limit: &RateLimit) -> WindowPlan {
        let window_ms = (limit.window.as_millis() as u64).max(1);
        let allocation = limit.window >= ALLOCATION;
        let slot_ms = match limit.shape {
            WindowShape::Rolling => (window_ms / SLOTS_PER_WINDOW).max(1),
            WindowShape::Fixed => window_ms,
        };
        let mut plan = WindowPlan {
            slot_ms,
            cap: 0,
            backfill_cap: 0,
            allocation,
        };
        plan.set_limit(limit.shape, limit.requests);
        plan
    }

    /// The caps for a window limit of `requests` (seeded, or as the provider last said).
    pub fn set_limit(&mut self, shape: WindowShape, requests: u32) {
        self.cap = slot_cap(shape, requests);
        self.backfill_cap = backfill_cap(self.cap, self.allocation);
    }

    /// The slot `now_ms` falls in.
    pub fn slot(&self, now_ms: u64) -> u64 {
        now_ms / self.slot_ms
    }

    /// Time from `now_ms` to the start of the slot after `slot`.
    pub fn until_after(&self, slot: u64, now_ms: u64) -> Duration {
        Duration::from_millis(((slot + 1) * self.slot_ms).saturating_sub(now_ms))
    }
}

/// What one slot may hold. A rolling window of the provider's overlaps at most
/// `SLOTS_PER_WINDOW + 1` of our slots, whatever its phase, so capping each slot at
/// `limit / (SLOTS_PER_WINDOW + 1)` keeps every rolling window within the limit (100 per 10 s:
/// 9 per second, 90 % of the limit). A fixed window is counted whole.
pub fn slot_cap(shape: WindowShape, requests: u32) -> u32 {
    match shape {
        WindowShape::Rolling => (requests / (SLOTS_PER_WINDOW as u32 + 1)).max(1),
        WindowShape::Fixed => requests.max(1),
    }
}

/// What the backfill lane may fill a slot to: two thirds of a burst slot (a third stays for
/// live leads arriving inside it), four fifths of an hourly or daily allocation (a backfill
/// never spends the day's budget live leads will need). At least one, so a backfill moves.
pub fn backfill_cap(cap: u32, allocation: bool) -> u32 {
    let reserve = if allocation { cap / 5 } else { cap / 3 };
    cap.saturating_sub(reserve).max(1)
}

/// How long after a live take the backfill lane stays off: two slots of the shortest window,
/// between 1 s and 60 s (a daily-only provider would otherwise stay off all day).
pub fn live_gap(shortest: &WindowPlan) -> Duration {
    Duration::from_millis((2 * shortest.slot_ms).clamp(1_000, 60_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests: u32, secs: u64, shape: WindowShape) -> RateLimit {
        RateLimit {
            requests,
            window: Duration::from_secs(secs),
            shape,
        }
    }

    #[test]
    fn hubspot_ten_secondly_limit_is_spent_nine_a_second() {
        let plan = WindowPlan::new(&limit(100, 10, WindowShape::Rolling));
        assert_eq!(plan.slot_ms, 1_000);
        assert_eq!(plan.cap, 9);
        assert_eq!(plan.backfill_cap, 6);
        assert!(!plan.allocation);
        // Paid portals: 190 per 10 s.
        let mut paid = plan;
        paid.set_limit(WindowShape::Rolling, 190);
        assert_eq!(paid.cap, 17);
    }

    /// Whatever the phase of a rolling window, the slots it overlaps hold no more than the
    /// provider's limit.
    #[test]
    fn no_rolling_window_holds_more_than_the_limit() {
        for requests in [2, 60, 100, 110, 190, 1_000] {
            let plan = WindowPlan::new(&limit(requests, 10, WindowShape::Rolling));
            let overlapped = SLOTS_PER_WINDOW as u32 + 1;
            if requests >= overlapped {
                assert!(plan.cap * overlapped <= requests, "{requests}");
                // And most of it is used.
                assert!(
                    plan.cap * SLOTS_PER_WINDOW as u32 * 100 >= requests * 80,
                    "{requests}"
                );
            }
        }
    }

    #[test]
    fn daily_allocations_are_one_fixed_slot_and_leave_a_fifth_to_live_leads() {
        let plan = WindowPlan::new(&limit(15_000, 24 * 60 * 60, WindowShape::Fixed));
        assert_eq!(plan.slot_ms, 86_400_000);
        assert_eq!(plan.cap, 15_000);
        assert_eq!(plan.backfill_cap, 12_000);
        assert!(plan.allocation);
        // Midnight UTC is a slot boundary.
        let day = plan.slot(1_765_000_000_000);
        assert_eq!(plan.slot(day * 86_400_000), day);
        assert_eq!(
            plan.until_after(day, day * 86_400_000 + 1_000),
            Duration::from_millis(86_399_000)
        );
    }

    #[test]
    fn small_limits_still_let_both_lanes_take() {
        let bitrix = WindowPlan::new(&limit(2, 1, WindowShape::Fixed));
        assert_eq!((bitrix.cap, bitrix.backfill_cap), (2, 2));
        assert_eq!(live_gap(&bitrix), Duration::from_secs(2));
        let tiny = WindowPlan::new(&limit(5, 10, WindowShape::Rolling));
        assert_eq!((tiny.cap, tiny.backfill_cap), (1, 1));
        let daily = WindowPlan::new(&limit(5_000, 86_400, WindowShape::Fixed));
        assert_eq!(live_gap(&daily), Duration::from_secs(60));
    }
}
