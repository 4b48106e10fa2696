//! Per-shard token buckets, as KPL's limiter: one for Kinesis records per second, one for
//! bytes per second, each holding at most one second of tokens.

use std::time::{Duration, Instant};

/// A token bucket refilled continuously at `rate` tokens per second, holding at most `rate`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u64,
    /// Tokens, in millionths, so that refills of a few microseconds are not lost.
    micro_tokens: u128,
    last: Instant,
}

const MICRO: u128 = 1_000_000;

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u64, now: Instant) -> Self {
        TokenBucket {
            rate,
            micro_tokens: u128::from(rate) * MICRO,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        let capacity = u128::from(self.rate) * MICRO;
        let add = elapsed.as_micros().saturating_mul(u128::from(self.rate));
        self.micro_tokens = self.micro_tokens.saturating_add(add).min(capacity);
    }

    /// Whether `n` tokens are there now. A request larger than the whole bucket is
    /// allowed once the bucket is full, so that nothing waits forever.
    pub fn available(&mut self, n: u64, now: Instant) -> bool {
        self.refill(now);
        let need = (u128::from(n) * MICRO).min(u128::from(self.rate) * MICRO);
        self.micro_tokens >= need
    }

    /// Takes `n` tokens (after [`TokenBucket::available`] said yes); the bucket may go to
    /// zero but never below.
    pub fn take(&mut self, n: u64) {
        self.micro_tokens = self.micro_tokens.saturating_sub(u128::from(n) * MICRO);
    }

    /// When `n` tokens will be there, if not now.
    pub fn ready_at(&mut self, n: u64, now: Instant) -> Instant {
        self.refill(now);
        let need = (u128::from(n) * MICRO).min(u128::from(self.rate) * MICRO);
        if self.micro_tokens >= need {
            return now;
        }
        let missing = need - self.micro_tokens;
        let micros = missing.div_ceil(u128::from(self.rate.max(1)));
        // Counted from the last refill, which may be later than `now`.
        self.last + Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_full_then_refills_at_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, t0);
        assert!(b.available(1000, t0));
        b.take(1000);
        assert!(!b.available(1, t0));
        assert_eq!(b.ready_at(1, t0), t0 + Duration::from_millis(1));
        assert!(!b.available(2, t0 + Duration::from_millis(1)));
        assert!(b.available(10, t0 + Duration::from_millis(10)));
        // Never more than one second's worth.
        assert!(b.available(1000, t0 + Duration::from_secs(5)));
        b.take(1000);
        assert!(!b.available(1, t0 + Duration::from_secs(5)));
    }

    #[test]
    fn oversized_request_passes_on_a_full_bucket() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, t0);
        assert!(b.available(5000, t0));
        b.take(5000);
        assert!(!b.available(5000, t0 + Duration::from_millis(500)));
        assert_eq!(b.ready_at(5000, t0), t0 + Duration::from_secs(1));
    }
}
