//! Per-shard token buckets, as KPL's limiter: one for Kinesis records per second, one for
//! bytes per second, each holding at most one second of tokens; and [`ShardLimiter`], the
//! pair, which (unlike KPL) slows down when the shard throttles.

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

    /// Changes the rate from `now` on (tokens beyond the new capacity are dropped).
    pub fn set_rate(&mut self, rate: u64, now: Instant) {
        self.refill(now);
        self.rate = rate.max(1);
        self.micro_tokens = self.micro_tokens.min(u128::from(self.rate) * MICRO);
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

/// A shard's send limits: the two buckets at the configured rates, scaled down when the
/// shard throttles (ProvisionedThroughputExceeded: other producers use it too, or it is hot)
/// and back up while it does not. Halved at most once per [`ShardLimiter::DECREASE_EVERY`]
/// (one burst of throttled entries is one signal), down to a hundredth; raised by a tenth
/// per second without throttling, up to the configured rate. Sending close to what the
/// shard takes keeps retries few, so that records are not throttled again and again until
/// their TTL.
#[derive(Debug, Clone)]
pub struct ShardLimiter {
    records_rate: u64,
    bytes_rate: u64,
    /// Per mille of the configured rates.
    scale: u64,
    changed: Instant,
    records: TokenBucket,
    bytes: TokenBucket,
}

impl ShardLimiter {
    /// Least time between two decreases.
    pub const DECREASE_EVERY: Duration = Duration::from_millis(500);
    const MIN_SCALE: u64 = 10;

    /// Limits at the configured rates (Kinesis records and bytes per second).
    pub fn new(records_rate: u64, bytes_rate: u64, now: Instant) -> Self {
        ShardLimiter {
            records_rate,
            bytes_rate,
            scale: 1000,
            changed: now,
            records: TokenBucket::new(records_rate, now),
            bytes: TokenBucket::new(bytes_rate, now),
        }
    }

    /// The current fraction of the configured rates, per mille.
    pub fn scale(&self) -> u64 {
        self.scale
    }

    fn apply(&mut self, now: Instant) {
        let at = |rate: u64| (rate.saturating_mul(self.scale) / 1000).max(1);
        self.records.set_rate(at(self.records_rate), now);
        self.bytes.set_rate(at(self.bytes_rate), now);
    }

    /// Raises the rates by a tenth per whole second since the last change, if below.
    fn recover(&mut self, now: Instant) {
        while self.scale < 1000
            && now.saturating_duration_since(self.changed) >= Duration::from_secs(1)
        {
            self.scale = (self.scale + self.scale.div_ceil(10)).min(1000);
            self.changed += Duration::from_secs(1);
            self.apply(now);
        }
    }

    /// The shard throttled an entry at `now`.
    pub fn on_throttled(&mut self, now: Instant) {
        self.recover(now);
        if now.saturating_duration_since(self.changed) < Self::DECREASE_EVERY && self.scale < 1000 {
            return;
        }
        self.scale = (self.scale / 2).max(Self::MIN_SCALE);
        self.changed = now;
        self.apply(now);
    }

    /// Whether a Kinesis record of `size` bytes may go now.
    pub fn available(&mut self, size: u64, now: Instant) -> bool {
        self.recover(now);
        self.records.available(1, now) && self.bytes.available(size, now)
    }

    /// Takes the tokens of one Kinesis record of `size` bytes.
    pub fn take(&mut self, size: u64) {
        self.records.take(1);
        self.bytes.take(size);
    }

    /// When a record of `size` bytes may go.
    pub fn ready_at(&mut self, size: u64, now: Instant) -> Instant {
        self.recover(now);
        self.records
            .ready_at(1, now)
            .max(self.bytes.ready_at(size, now))
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
    fn throttling_halves_the_rates_then_they_recover_by_a_tenth_a_second() {
        let t0 = Instant::now();
        let mut l = ShardLimiter::new(1000, 1_000_000, t0);
        l.on_throttled(t0);
        assert_eq!(l.scale(), 500);
        // A burst of throttled entries is one signal.
        l.on_throttled(t0 + Duration::from_millis(100));
        assert_eq!(l.scale(), 500);
        l.on_throttled(t0 + Duration::from_millis(500));
        assert_eq!(l.scale(), 250);
        // 250 per mille of 1,000 records/s: the bucket holds 250 records now.
        assert!(l.available(1, t0 + Duration::from_millis(500)));
        for _ in 0..250 {
            l.take(1);
        }
        assert!(!l.available(1, t0 + Duration::from_millis(500)));
        // Two seconds without throttling: 250 -> 275 -> 303.
        assert!(l.available(1, t0 + Duration::from_millis(2500)));
        assert_eq!(l.scale(), 303);
        for _ in 0..20 {
            l.on_throttled(t0 + Duration::from_secs(10 + 1));
        }
        let floor = t0 + Duration::from_secs(100);
        for i in 0..20 {
            l.on_throttled(floor + ShardLimiter::DECREASE_EVERY * i);
        }
        assert_eq!(l.scale(), 10, "never below a hundredth");
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
