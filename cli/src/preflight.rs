//! Before `kpl put` and `kpl tail` touch records: one bounded DescribeStreamSummary, so
//! that a wrong endpoint, missing credentials, a missing stream or a denied action ends
//! the run in seconds with one line (exit code 2) instead of after retries.

use std::time::Duration;

use kpl_kinesis::check::{check_stream, StreamCheck, StreamSummary};

use crate::error::CliError;

/// Checks that `stream` exists and can be described at `endpoint` in `region` (empty:
/// the defaults), within `timeout`. The error is the one line for a person; with
/// `verbose`, followed by the raw code and message.
pub async fn stream_ready(
    stream: &str,
    endpoint: &str,
    region: &str,
    timeout: Duration,
    verbose: bool,
) -> Result<StreamSummary, CliError> {
    let mut check = StreamCheck::new(stream);
    check.endpoint = endpoint.to_owned();
    check.region = region.to_owned();
    check.timeout = timeout;
    check_stream(check).await.map_err(|e| {
        if verbose {
            CliError::input(format!("{e} [{}]", e.detail()))
        } else {
            CliError::input(e.to_string())
        }
    })
}

/// An error's line, with its raw detail (`{:#}`) too when `verbose`.
pub fn message<E: std::fmt::Display>(error: &E, verbose: bool) -> String {
    if verbose {
        format!("{error} [{error:#}]")
    } else {
        error.to_string()
    }
}
