//! Fail fast: one bounded DescribeStreamSummary before putting or reading, so that a wrong
//! endpoint, missing credentials, a stream that does not exist or a denied action is told
//! in seconds, in one line ([`crate::explain::describe`]), instead of after retries.

use core::fmt;
use std::time::Duration;

use aws_smithy_types::retry::RetryConfig;

use crate::aws::{self, with_stream, ClientSettings, Stream};
use crate::explain::{self, Kind, Target};

/// Where the stream is and how long the check may take.
#[derive(Debug, Clone)]
pub struct StreamCheck {
    /// The stream's name, or its ARN (`arn:...`).
    pub stream: String,
    /// Empty: the standard chain, else us-east-1.
    pub region: String,
    /// Empty: AWS in the region.
    pub endpoint: String,
    /// The SDK configuration to start from (default: the standard chain).
    pub sdk_config: Option<aws_config::SdkConfig>,
    /// The whole check's bound (one attempt of at most half of it, and one retry for a
    /// transient failure).
    pub timeout: Duration,
}

impl StreamCheck {
    /// A check of this stream (a name, or an ARN starting `arn:`) with a 10 s bound.
    pub fn new(stream: impl Into<String>) -> Self {
        StreamCheck {
            stream: stream.into(),
            region: String::new(),
            endpoint: String::new(),
            sdk_config: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// What the check found out about a reachable stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// `ACTIVE` or `UPDATING` (any other status is an error).
    pub status: String,
    /// Open shards.
    pub open_shards: i32,
    /// The region and endpoint the check used.
    pub region: String,
    /// The endpoint URL the check used.
    pub endpoint: String,
}

/// Why the stream cannot be used: [`fmt::Display`] is the line for a person;
/// [`StreamCheckError::detail`] the raw code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCheckError {
    /// What kind of failure.
    pub kind: Kind,
    /// The error code (`ResourceNotFoundException`, `Dispatch`, ...).
    pub code: String,
    /// The service's message, or the transport failure's chain of causes.
    pub message: String,
    /// The stream checked.
    pub stream: String,
    /// The region the client signed for.
    pub region: String,
    /// The endpoint called.
    pub endpoint: String,
}

impl StreamCheckError {
    /// The raw error: `DescribeStreamSummary: <code>: <message>`.
    pub fn detail(&self) -> String {
        format!("DescribeStreamSummary: {}: {}", self.code, self.message)
    }
}

impl fmt::Display for StreamCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = Target {
            stream: &self.stream,
            region: &self.region,
            endpoint: &self.endpoint,
        };
        f.write_str(&explain::describe(&self.code, &self.message, Some(&target)))
    }
}

impl std::error::Error for StreamCheckError {}

/// Calls DescribeStreamSummary once (plus one retry of a transient failure), within
/// `check.timeout`, and says whether the stream can be used.
pub async fn check_stream(check: StreamCheck) -> Result<StreamSummary, StreamCheckError> {
    let given_endpoint = check.endpoint.clone();
    let client = aws::client(ClientSettings {
        sdk_config: check.sdk_config,
        region: check.region,
        endpoint: check.endpoint,
        retry: RetryConfig::standard()
            .with_max_attempts(2)
            .with_initial_backoff(Duration::from_millis(200)),
        attempt_timeout: Some(check.timeout / 2),
    })
    .await;
    let region = client
        .config()
        .region()
        .map(|r| r.to_string())
        .unwrap_or_default();
    let endpoint = if given_endpoint.is_empty() {
        format!("https://kinesis.{region}.amazonaws.com")
    } else {
        given_endpoint
    };
    let fail = |code: String, message: String| StreamCheckError {
        kind: explain::kind(&code, &message),
        code,
        message,
        stream: check.stream.clone(),
        region: region.clone(),
        endpoint: endpoint.clone(),
    };
    let stream = if check.stream.starts_with("arn:") {
        Stream::Arn(check.stream.clone())
    } else {
        Stream::Name(check.stream.clone())
    };
    let request = with_stream!(client.describe_stream_summary(), &stream);
    let output = match tokio::time::timeout(check.timeout, request.send()).await {
        Err(_) => {
            return Err(fail(
                "Timeout".into(),
                format!("no answer within {:?}", check.timeout),
            ))
        }
        Ok(Err(e)) => {
            let (info, _) = aws::error_info(&e);
            return Err(fail(info.code, info.message));
        }
        Ok(Ok(output)) => output,
    };
    let Some(description) = output.stream_description_summary() else {
        return Err(fail(
            "ResponseError".into(),
            "DescribeStreamSummary answered without a stream description".into(),
        ));
    };
    let status = description.stream_status().as_str().to_owned();
    if status != "ACTIVE" && status != "UPDATING" {
        return Err(fail(
            "ResourceInUseException".into(),
            format!("stream status is {status}"),
        ));
    }
    Ok(StreamSummary {
        status,
        open_shards: description.open_shard_count(),
        region,
        endpoint,
    })
}
