//! What long runs show on standard error: `kpl put`'s progress display (on a terminal
//! only, drawn by indicatif) and `kpl tail --follow -v`'s periodic status line. Both lines
//! are pure functions of the counts ([`put_line`], [`tail_line`]).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The counts behind `kpl put`'s progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PutCounts {
    /// User records read from the input (refused ones included).
    pub read: u64,
    /// User records Kinesis stored.
    pub stored: u64,
    /// User records that failed: refused by the input or the sink, or given up on.
    pub failed: u64,
    /// Kinesis records stored (aggregates and records sent alone).
    pub kinesis_records: u64,
    /// Time since the first record was read.
    pub elapsed: Duration,
}

/// `kpl put`'s progress line: records read, stored and failed, the aggregation ratio (user
/// records per stored Kinesis record) and the rate (user records stored per second).
///
/// ```
/// use std::time::Duration;
/// use kpl_cli::status::{put_line, PutCounts};
///
/// let counts = PutCounts { read: 1000, stored: 900, failed: 2, kinesis_records: 9,
///                          elapsed: Duration::from_secs(3) };
/// assert_eq!(put_line(&counts),
///            "1000 read, 900 stored, 2 failed, 9 Kinesis records (100.0 user records each), 300 records/s");
/// ```
pub fn put_line(c: &PutCounts) -> String {
    let ratio = if c.kinesis_records == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}", c.stored as f64 / c.kinesis_records as f64)
    };
    let secs = c.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        format!("{:.0}", c.stored as f64 / secs)
    } else {
        "-".to_owned()
    };
    format!(
        "{} read, {} stored, {} failed, {} Kinesis records ({ratio} user records each), {rate} records/s",
        c.read, c.stored, c.failed, c.kinesis_records
    )
}

/// How often the progress line is recomputed (indicatif redraws the spinner on its own).
const PUT_REFRESH: Duration = Duration::from_millis(250);

/// `kpl put`'s progress display: a spinner and [`put_line`] on standard error, drawn only
/// when it is shown (a terminal, no `--quiet`).
#[derive(Debug)]
pub struct PutProgress {
    bar: ProgressBar,
    last: Option<Instant>,
}

impl PutProgress {
    /// A display on standard error when `shown`, else one that draws nothing.
    pub fn new(shown: bool) -> Self {
        let bar = if shown {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        } else {
            ProgressBar::hidden()
        };
        PutProgress { bar, last: None }
    }

    /// Shows the counts, at most every quarter second (`counts` is only called then).
    pub fn update(&mut self, counts: impl FnOnce() -> PutCounts) {
        if self.bar.is_hidden() || self.last.is_some_and(|t| t.elapsed() < PUT_REFRESH) {
            return;
        }
        self.last = Some(Instant::now());
        self.bar.set_message(put_line(&counts()));
    }

    /// Shows the final counts and leaves the line on the terminal.
    pub fn finish(&self, counts: &PutCounts) {
        if !self.bar.is_hidden() {
            self.bar.finish_with_message(put_line(counts));
        }
    }
}

/// The counts behind `kpl tail --follow -v`'s status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TailCounts {
    /// User records printed so far.
    pub records: u64,
    /// User records printed over the last `window`.
    pub recent: u64,
    /// The window the status lines come every.
    pub window: Duration,
    /// Shards read so far (finished ones included), as of the last record.
    pub shards: usize,
    /// How far behind the last record printed was: the time from its arrival in Kinesis
    /// to its printing (it stays while no record comes); `None` before the first record,
    /// or when Kinesis did not say when it arrived.
    pub behind: Option<Duration>,
}

/// `kpl tail --follow -v`'s status line: records so far and the shards read, the rate
/// over the last window, and how far behind the last record was (how long after its
/// arrival in Kinesis it was read).
///
/// ```
/// use std::time::Duration;
/// use kpl_cli::status::{tail_line, TailCounts};
///
/// let counts = TailCounts { records: 1200, recent: 350, window: Duration::from_secs(10),
///                           shards: 4, behind: Some(Duration::from_millis(2140)) };
/// assert_eq!(tail_line(&counts),
///            "kpl tail: 1200 records from 4 shards, 35.0/s over the last 10 s, the last read 2.1 s after it arrived");
/// ```
pub fn tail_line(c: &TailCounts) -> String {
    let secs = c.window.as_secs_f64();
    let rate = if secs > 0.0 {
        c.recent as f64 / secs
    } else {
        0.0
    };
    let behind = match c.behind {
        Some(behind) => format!(
            "the last read {:.1} s after it arrived",
            behind.as_secs_f64()
        ),
        None => "no arrival time yet".to_owned(),
    };
    format!(
        "kpl tail: {} records from {} shard{}, {rate:.1}/s over the last {} s, {behind}",
        c.records,
        c.shards,
        if c.shards == 1 { "" } else { "s" },
        c.window.as_secs(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_line_before_anything_is_stored() {
        assert_eq!(
            put_line(&PutCounts::default()),
            "0 read, 0 stored, 0 failed, 0 Kinesis records (- user records each), - records/s"
        );
    }

    #[test]
    fn put_line_ratio_and_rate() {
        // 5 records alone and 2 aggregates of 500: 1005 user records in 7 Kinesis records.
        let counts = PutCounts {
            read: 1010,
            stored: 1005,
            failed: 5,
            kinesis_records: 7,
            elapsed: Duration::from_millis(500),
        };
        assert_eq!(
            put_line(&counts),
            "1010 read, 1005 stored, 5 failed, 7 Kinesis records (143.6 user records each), 2010 records/s"
        );
    }

    #[test]
    fn tail_line_without_records_yet() {
        let counts = TailCounts {
            shards: 1,
            window: Duration::from_secs(10),
            ..TailCounts::default()
        };
        assert_eq!(
            tail_line(&counts),
            "kpl tail: 0 records from 1 shard, 0.0/s over the last 10 s, no arrival time yet"
        );
    }

    #[test]
    fn tail_line_caught_up() {
        let counts = TailCounts {
            records: 7,
            recent: 1,
            window: Duration::from_secs(10),
            shards: 2,
            behind: Some(Duration::ZERO),
        };
        assert_eq!(
            tail_line(&counts),
            "kpl tail: 7 records from 2 shards, 0.1/s over the last 10 s, the last read 0.0 s after it arrived"
        );
    }

    #[test]
    fn a_hidden_progress_display_draws_nothing_and_never_asks_for_counts() {
        let mut progress = PutProgress::new(false);
        progress.update(|| unreachable!("counts are not computed for a hidden display"));
        progress.finish(&PutCounts::default());
        assert!(progress.bar.is_hidden());
    }
}
