//! The sandbox's clock: the real time plus an offset that tests and demos move forward, so code,
//! access-token and refresh-token expiry can be shown without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use time::{Duration, OffsetDateTime};

/// Wall time plus an adjustable offset. Optionally frozen at a fixed instant.
#[derive(Debug)]
pub struct SandboxClock {
    offset_ms: AtomicI64,
    /// When set (milliseconds since the epoch), the clock does not move by itself.
    frozen_at_ms: Option<i64>,
}

impl SandboxClock {
    /// A clock that follows the system time.
    pub fn system() -> Self {
        Self {
            offset_ms: AtomicI64::new(0),
            frozen_at_ms: None,
        }
    }

    /// A clock that stands still at `at` until advanced.
    pub fn frozen(at: OffsetDateTime) -> Self {
        let ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        Self {
            offset_ms: AtomicI64::new(0),
            frozen_at_ms: Some(ms),
        }
    }

    /// The sandbox's current time.
    pub fn now(&self) -> OffsetDateTime {
        let base_ms = match self.frozen_at_ms {
            Some(ms) => ms,
            None => {
                // The one place the sandbox reads the system time.
                #[allow(clippy::disallowed_methods)]
                let now = OffsetDateTime::now_utc();
                i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
            }
        };
        let ms = base_ms.saturating_add(self.offset_ms.load(Ordering::SeqCst));
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Seconds since the epoch (JWT `iat`/`exp` unit).
    pub fn now_unix(&self) -> i64 {
        self.now().unix_timestamp()
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.whole_milliseconds()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// The total offset applied so far.
    pub fn offset(&self) -> Duration {
        Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_clock_moves_only_when_advanced() {
        let start = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let clock = SandboxClock::frozen(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::minutes(31));
        assert_eq!(clock.now_unix(), 1_800_000_000 + 31 * 60);
        assert_eq!(clock.offset(), Duration::minutes(31));
    }
}
