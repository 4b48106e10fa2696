//! What the sink's and the source's drivers share about talking to Kinesis: naming the
//! stream, building a client, and reading an SDK error as (code, message, retryable).

use core::fmt;
use std::time::Duration;

use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::Client;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

use crate::sink::{retryable_request_error, ErrorInfo, ShardInfo};

/// One shard of a ListShards answer, as both drivers read it. A missing or unparsable hash
/// key range makes the listing unusable (`BadShard`): a shard is never skipped, since its
/// records would then be lost to the source and misrouted by the sink.
pub(crate) fn shard_info(shard: &aws_sdk_kinesis::types::Shard) -> Result<ShardInfo, ErrorInfo> {
    let bad = |message: String| ErrorInfo {
        code: "BadShard".into(),
        message,
    };
    let range = shard
        .hash_key_range()
        .ok_or_else(|| bad(format!("shard {} has no hash key range", shard.shard_id())))?;
    let open = shard
        .sequence_number_range()
        .is_none_or(|r| r.ending_sequence_number().is_none());
    ShardInfo::parse(
        shard.shard_id(),
        range.starting_hash_key(),
        range.ending_hash_key(),
        open,
    )
    .map_err(|e| bad(e.to_string()))
}

/// A stream, by name or by ARN.
#[derive(Debug, Clone)]
pub(crate) enum Stream {
    Name(String),
    Arn(String),
}

/// Sets the stream on any request builder that takes a name or an ARN.
macro_rules! with_stream {
    ($request:expr, $stream:expr) => {
        match $stream {
            $crate::aws::Stream::Name(name) => $request.stream_name(name),
            $crate::aws::Stream::Arn(arn) => $request.stream_arn(arn),
        }
    };
}
pub(crate) use with_stream;

/// Where the client's settings come from.
pub(crate) struct ClientSettings {
    pub sdk_config: Option<aws_config::SdkConfig>,
    /// Empty: from `sdk_config` or the standard chain, else us-east-1.
    pub region: String,
    /// Empty: AWS.
    pub endpoint: String,
    pub retry: RetryConfig,
    pub attempt_timeout: Option<Duration>,
}

/// A client from the standard chain (or the given configuration), with the region,
/// endpoint, retries and timeout asked for.
pub(crate) async fn client(settings: ClientSettings) -> Client {
    let sdk = match settings.sdk_config {
        Some(sdk) => sdk,
        None => {
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .load()
                .await
        }
    };
    let mut conf = aws_sdk_kinesis::config::Builder::from(&sdk).retry_config(settings.retry);
    if let Some(timeout) = settings.attempt_timeout {
        conf = conf.timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(timeout)
                .build(),
        );
    }
    if !settings.region.is_empty() {
        conf = conf.region(aws_sdk_kinesis::config::Region::new(settings.region));
    } else if sdk.region().is_none() {
        conf = conf.region(aws_sdk_kinesis::config::Region::from_static("us-east-1"));
    }
    if !settings.endpoint.is_empty() {
        conf = conf.endpoint_url(settings.endpoint);
    }
    Client::from_conf(conf.build())
}

/// An error and its causes on one line, outermost first.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

/// `127.0.0.1:9` out of `ConnectError("tcp connect error", 127.0.0.1:9, Os { .. })`.
fn connect_address(debug: &str) -> Option<&str> {
    let (_, rest) = debug.split_once("ConnectError(\"")?;
    let (_, rest) = rest.split_once("\", ")?;
    let address = rest.split([',', ')']).next()?.trim();
    let plausible = !address.is_empty()
        && address.contains(':')
        && address
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']' | '-'));
    plausible.then_some(address)
}

/// The error's code and message (the service's, or a name for a transport failure:
/// `Timeout`, `Dispatch`, `ResponseError`) and whether retrying may help.
pub(crate) fn error_info<E>(error: &SdkError<E, HttpResponse>) -> (ErrorInfo, bool)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (code, message) = match error {
        SdkError::ServiceError(service) => (
            service.err().code().unwrap_or("Unknown").to_owned(),
            service.err().message().unwrap_or_default().to_owned(),
        ),
        SdkError::TimeoutError(_) => ("Timeout".to_owned(), error.to_string()),
        // The whole chain of causes, on one line: "dispatch failure: io error: client
        // error (Connect): tcp connect error: Connection refused (os error 111)".
        // With the address connected to, when the transport's debug form gives it (hyper's
        // connect errors do, their text does not), as ` [address 127.0.0.1:9]`.
        SdkError::DispatchFailure(_) => {
            let mut message = causes(error);
            if let Some(address) = connect_address(&format!("{error:?}")) {
                message.push_str(&format!(" [address {address}]"));
            }
            ("Dispatch".to_owned(), message)
        }
        SdkError::ResponseError(_) => ("ResponseError".to_owned(), causes(error)),
        SdkError::ConstructionFailure(c) => {
            let info = ErrorInfo {
                code: "ConstructionFailure".to_owned(),
                message: format!("{c:?}"),
            };
            return (info, false);
        }
        other => ("Unknown".to_owned(), other.to_string()),
    };
    let status = error.raw_response().map(|r| r.status().as_u16());
    let retryable = retryable_request_error(&code, status);
    (ErrorInfo { code, message }, retryable)
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stream::Name(n) => f.write_str(n),
            Stream::Arn(a) => f.write_str(a),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn connect_address_is_read_from_the_debug_form() {
        let debug = r#"DispatchFailure { source: ConnectorError { kind: Io, source: hyper_util::client::legacy::Error(Connect, ConnectError("tcp connect error", 127.0.0.1:9, Os { code: 111 })) } }"#;
        assert_eq!(super::connect_address(debug), Some("127.0.0.1:9"));
        assert_eq!(super::connect_address("DispatchFailure { other }"), None);
    }
}
