//! The invocation's deadline, carried to the refresh protocol without threading it through
//! every signature: each handler runs its work inside [`within`] with the Lambda context's
//! deadline, and the refresh code asks [`remaining`] before it presents a rotating refresh
//! token (a call killed after the provider rotated would lose the new token).
//!
//! Outside any [`within`] (tests and tools) no deadline is known and time is unbounded.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

tokio::task_local! {
    static DEADLINE: Option<SystemTime>;
}

/// The deadline of a Lambda invocation, from its context (`deadline`, milliseconds since the
/// epoch). Zero, as in a default context, means none is known.
pub fn from_epoch_ms(ms: u64) -> Option<SystemTime> {
    (ms > 0).then(|| UNIX_EPOCH + Duration::from_millis(ms))
}

/// Runs `work` with `deadline` as the invocation's deadline.
pub async fn within<F: Future>(deadline: Option<SystemTime>, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// Time left before the invocation's deadline (zero once it passed), or `None` when no deadline
/// is known.
pub fn remaining() -> Option<Duration> {
    let deadline = DEADLINE.try_with(|d| *d).ok().flatten()?;
    Some(
        deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Whether at least `needed` is left before the deadline (always, when none is known).
pub fn covers(needed: Duration) -> bool {
    remaining().is_none_or(|left| left >= needed)
}

/// `wanted`, shortened so that it ends `keep` before the deadline.
pub fn cap(wanted: Duration, keep: Duration) -> Duration {
    match remaining() {
        Some(left) => wanted.min(left.saturating_sub(keep)),
        None => wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_deadline_outside_a_scope_and_a_short_one_inside() {
        assert_eq!(remaining(), None);
        assert!(covers(Duration::from_secs(3600)));
        let soon = SystemTime::now() + Duration::from_secs(2);
        within(Some(soon), async {
            let left = remaining().unwrap();
            assert!(left <= Duration::from_secs(2) && left > Duration::from_secs(1));
            assert!(!covers(Duration::from_secs(3)));
            assert!(cap(Duration::from_secs(20), Duration::from_secs(1)) < Duration::from_secs(1));
        })
        .await;
        assert_eq!(from_epoch_ms(0), None);
    }

    #[tokio::test]
    async fn a_passed_deadline_leaves_nothing() {
        let past = SystemTime::now() - Duration::from_secs(1);
        within(Some(past), async {
            assert_eq!(remaining(), Some(Duration::ZERO));
        })
        .await;
    }
}
