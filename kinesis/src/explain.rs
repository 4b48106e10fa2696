//! Kinesis and connection errors as one line a person understands: what went wrong, and a
//! hint at what to change. The one place that reads error codes and transport failures for
//! people; the sink's and the source's error `Display`, the `kpl` CLI and the Fluent Bit
//! plugins' log lines all go through [`describe`]. The raw code and message stay in the
//! errors (`ErrorInfo`, `SourceError::Kinesis`) for logs and `-v`.
//!
//! ```
//! use kpl_kinesis::explain::{describe, Target};
//!
//! let target = Target { stream: "s", region: "us-east-1", endpoint: "http://127.0.0.1:9" };
//! let line = describe(
//!     "Dispatch",
//!     "dispatch failure: io error: client error (Connect): tcp connect error: Connection refused (os error 111)",
//!     Some(&target),
//! );
//! assert_eq!(
//!     line,
//!     "cannot connect to http://127.0.0.1:9: connection refused (is the endpoint right? --endpoint)"
//! );
//! ```

/// What the failed call was talking to, when the caller knows it; empty fields are unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Target<'a> {
    /// The stream's name or ARN.
    pub stream: &'a str,
    /// The region the client signs for.
    pub region: &'a str,
    /// The endpoint URL (for AWS itself, `https://kinesis.<region>.amazonaws.com`).
    pub endpoint: &'a str,
}

/// The broad kind of a failure, for callers that act on it (exit codes, retry, fail fast).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nothing answered, or the connection broke: the endpoint, the network or DNS.
    Unreachable,
    /// No credentials, or credentials AWS rejects or that have expired.
    Credentials,
    /// The stream does not exist (in that region, for that account).
    NotFound,
    /// The credentials may not do this.
    AccessDenied,
    /// Kinesis asks to slow down.
    Throttled,
    /// The request was refused as invalid.
    Invalid,
    /// Anything else (a server-side failure, an unknown code).
    Other,
}

impl Kind {
    /// Whether retrying the same call may succeed (without a change of settings).
    pub fn transient(self) -> bool {
        matches!(self, Kind::Unreachable | Kind::Throttled | Kind::Other)
    }
}

/// The kind of the failure with this code and message (the message matters for transport
/// failures, whose code is only `Dispatch`, `ResponseError` or `Timeout`).
pub fn kind(code: &str, message: &str) -> Kind {
    match code {
        "ResourceNotFoundException" | "ResourceNotFound" => Kind::NotFound,
        "AccessDeniedException" | "AccessDenied" | "KMSAccessDeniedException" => Kind::AccessDenied,
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "ExpiredTokenException"
        | "ExpiredToken" => Kind::Credentials,
        "ProvisionedThroughputExceededException"
        | "LimitExceededException"
        | "ThrottlingException"
        | "Throttling"
        | "KMSThrottlingException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded" => Kind::Throttled,
        "ValidationException"
        | "InvalidArgumentException"
        | "ConstructionFailure"
        | "BadShard"
        | "ResourceInUseException" => Kind::Invalid,
        "Dispatch" | "ResponseError" | "ConnectionError" | "Timeout" | "GuardTimeout" => {
            if transport(message) == Transport::NoCredentials {
                Kind::Credentials
            } else {
                Kind::Unreachable
            }
        }
        _ => Kind::Other,
    }
}

/// How a request that never got an answer failed, read from its chain of causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Refused,
    Dns,
    TimedOut,
    Tls,
    Reset,
    NoCredentials,
    Other,
}

fn transport(message: &str) -> Transport {
    let m = message.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    if has(&[
        "no credentials",
        "failed to load credentials",
        "credentialsnotloaded",
        "credentials not loaded",
        "no authentication options",
    ]) {
        Transport::NoCredentials
    } else if has(&["connection refused", "os error 111"]) {
        Transport::Refused
    } else if has(&[
        "dns error",
        "failed to lookup address",
        "name or service not known",
        "no such host",
        "temporary failure in name resolution",
    ]) {
        Transport::Dns
    } else if has(&["certificate", "tls", "ssl", "invalid peer"]) {
        Transport::Tls
    } else if has(&["timed out", "timeout", "deadline has elapsed"]) {
        Transport::TimedOut
    } else if has(&[
        "connection reset",
        "connection closed",
        "broken pipe",
        "unexpected eof",
        "incomplete message",
        // hyper, when the server closed the connection before the request went out (seen
        // ready, then not; or closed before it was ever ready).
        "connection was not ready",
        "channel closed",
    ]) {
        Transport::Reset
    } else {
        Transport::Other
    }
}

/// The ` [address 127.0.0.1:9]` the driver adds to a connect failure, if any.
fn address(message: &str) -> Option<&str> {
    let (_, rest) = message.rsplit_once(" [address ")?;
    rest.strip_suffix(']')
}

/// The message without the driver's ` [address ...]` note.
fn without_address(message: &str) -> &str {
    message
        .rsplit_once(" [address ")
        .map_or(message, |(before, _)| before)
}

/// The last, most specific cause of a `a: b: c` chain, without an `(os error N)` tail.
fn root_cause(message: &str) -> &str {
    let message = without_address(message);
    let last = message.rsplit(": ").next().unwrap_or(message).trim();
    match last.find(" (os error") {
        Some(i) => last[..i].trim(),
        None => last,
    }
}

/// `User: arn:... is not authorized to perform: kinesis:PutRecords on resource: arn:...`
/// as `kinesis:PutRecords on arn:...`.
fn denied_action(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("perform: ")?;
    let (action, rest) = rest.split_once(" on resource: ")?;
    let resource = rest
        .split(|c: char| c.is_whitespace() || c == ',')
        .next()
        .unwrap_or(rest)
        .trim_end_matches('.');
    Some(format!("{} on {resource}", action.trim()))
}

/// The stream named in a ResourceNotFound message, and the region when it names an ARN:
/// `Stream s under account 000000000000 not found.` (AWS) as `s`;
/// `Stream arn arn:aws:kinesis:us-east-1:0:stream/s not found` (kinesis-mock) as `s` in
/// `us-east-1`.
fn missing_stream(message: &str) -> Option<(&str, Option<&str>)> {
    let rest = message.strip_prefix("Stream ")?;
    let end = rest
        .find(" under account")
        .or_else(|| rest.find(" not found"))?;
    let named = &rest[..end];
    let named = named.strip_prefix("arn ").unwrap_or(named);
    Some(match arn_parts(named) {
        Some((region, name)) => (name, Some(region)),
        None => (named, None),
    })
}

/// `arn:aws:kinesis:REGION:ACCOUNT:stream/NAME` as (REGION, NAME).
fn arn_parts(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.strip_prefix("arn:")?.splitn(5, ':');
    let (_partition, _service) = (parts.next()?, parts.next()?);
    let region = parts.next()?;
    let _account = parts.next()?;
    let name = parts.next()?.strip_prefix("stream/")?;
    Some((region, name))
}

/// How hints name the settings to check: the `kpl` command line's flags
/// ([`SettingNames::CLI`], what [`describe`] and the errors' `Display` use), or the
/// properties of a plugin, say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingNames<'a> {
    /// The stream's name or ARN, e.g. `--stream`.
    pub stream: &'a str,
    /// The region, e.g. `--region`.
    pub region: &'a str,
    /// The endpoint URL, e.g. `--endpoint`.
    pub endpoint: &'a str,
}

impl SettingNames<'static> {
    /// The `kpl` command line's flags.
    pub const CLI: SettingNames<'static> = SettingNames {
        stream: "--stream",
        region: "--region",
        endpoint: "--endpoint",
    };
}

/// A hint that names settings.
#[derive(Debug, Clone, Copy)]
enum Hint {
    StreamAndRegion,
    CredentialsAndRegion,
    Endpoint,
    EndpointOrRegion,
    EndpointReachable,
    KinesisEndpoint,
}

impl Hint {
    /// Every hint, for [`reword_hints`].
    const ALL: [Hint; 6] = [
        Hint::StreamAndRegion,
        Hint::CredentialsAndRegion,
        Hint::Endpoint,
        Hint::EndpointOrRegion,
        Hint::EndpointReachable,
        Hint::KinesisEndpoint,
    ];

    /// The hint, in parentheses, naming the settings with `names`.
    fn text(self, names: &SettingNames<'_>) -> String {
        let SettingNames {
            stream,
            region,
            endpoint,
        } = names;
        match self {
            Hint::StreamAndRegion => {
                format!("(is the stream name right? {stream}; the region? {region})")
            }
            Hint::CredentialsAndRegion => format!(
                "(check AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and {region})"
            ),
            Hint::Endpoint => format!("(is the endpoint right? {endpoint})"),
            Hint::EndpointOrRegion => {
                format!("(is the endpoint or the region right? {endpoint}, {region})")
            }
            Hint::EndpointReachable => {
                format!("(is the endpoint right and reachable? {endpoint})")
            }
            Hint::KinesisEndpoint => format!("(is it a Kinesis endpoint? {endpoint})"),
        }
    }
}

/// `line`, a line made by [`describe`] (the `Display` of `ErrorInfo`, `Failure`,
/// `SourceError`, `StreamCheckError`, ...), with its hint naming the settings with `names`
/// instead of the CLI's flags. For a program that is configured otherwise, such as a
/// plugin logging the errors of the sink or the source it runs.
///
/// ```
/// use kpl_kinesis::explain::{reword_hints, SettingNames};
///
/// let properties = SettingNames {
///     stream: "the stream property",
///     region: "the region property",
///     endpoint: "the endpoint property",
/// };
/// assert_eq!(
///     reword_hints(
///         "PutRecords: cannot connect to http://127.0.0.1:9: connection refused (is the endpoint right? --endpoint)",
///         &properties,
///     ),
///     "PutRecords: cannot connect to http://127.0.0.1:9: connection refused (is the endpoint right? the endpoint property)"
/// );
/// ```
pub fn reword_hints(line: &str, names: &SettingNames<'_>) -> String {
    let mut line = line.to_owned();
    for hint in Hint::ALL {
        let cli = hint.text(&SettingNames::CLI);
        if line.contains(&cli) {
            line = line.replace(&cli, &hint.text(names));
        }
    }
    line
}

/// One line for a person: what failed and what to check. `code` and `message` are the
/// error's (as in `ErrorInfo`); `target`, when known, names the stream, region and
/// endpoint in the line. Hints name the `kpl` command line's flags; see [`describe_with`]
/// for other names.
pub fn describe(code: &str, message: &str, target: Option<&Target<'_>>) -> String {
    describe_with(code, message, target, &SettingNames::CLI)
}

/// [`describe`], with hints naming the settings with `names`.
pub fn describe_with(
    code: &str,
    message: &str,
    target: Option<&Target<'_>>,
    names: &SettingNames<'_>,
) -> String {
    let t = target.copied().unwrap_or_default();
    let endpoint = if !t.endpoint.is_empty() {
        t.endpoint.to_owned()
    } else if let Some(address) = address(message) {
        address.to_owned()
    } else if !t.region.is_empty() {
        format!("https://kinesis.{}.amazonaws.com", t.region)
    } else {
        "the Kinesis endpoint".to_owned()
    };
    let named = missing_stream(message);
    // A stream given by ARN is named by its name, in the ARN's region.
    let (stream, region) = match arn_parts(t.stream) {
        Some((region, name)) => (Some(name), region),
        None if !t.stream.is_empty() => (Some(t.stream), t.region),
        None => (
            named.map(|(name, _)| name),
            named.and_then(|(_, region)| region).unwrap_or(t.region),
        ),
    };
    let in_region = if region.is_empty() {
        String::new()
    } else {
        format!(" in {region}")
    };
    let detail = message.trim().trim_end_matches('.');
    match kind(code, message) {
        Kind::NotFound => match stream {
            Some(s) => format!(
                "stream \"{s}\" does not exist{in_region} {}",
                Hint::StreamAndRegion.text(names)
            ),
            None => format!("stream not found{in_region}: {detail}"),
        },
        Kind::AccessDenied => {
            let what = denied_action(message).unwrap_or_else(|| detail.to_owned());
            format!("access denied: {what} (the IAM policy of these credentials does not allow it)")
        }
        Kind::Credentials => match code {
            "ExpiredTokenException" | "ExpiredToken" => "AWS credentials have expired \
                (refresh them: aws sso login, or a new AWS_SESSION_TOKEN)"
                .to_owned(),
            "Dispatch" | "ResponseError" | "ConnectionError" | "Timeout" | "GuardTimeout" => {
                "no AWS credentials found (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, or run where an instance or task role is available)"
                    .to_owned()
            }
            _ => format!(
                "AWS rejected the credentials: {detail} {}",
                Hint::CredentialsAndRegion.text(names)
            ),
        },
        Kind::Throttled => format!(
            "throttled by Kinesis ({code}){}: {detail} ({})",
            stream.map(|s| format!(" on stream \"{s}\"")).unwrap_or_default(),
            match code {
                "ProvisionedThroughputExceededException" => {
                    "the stream's shards are at their write or read limit: add shards or slow down"
                }
                "LimitExceededException" => {
                    "too many calls of this kind for the stream or the account: retry later, \
                     or make fewer: fewer clients, longer intervals"
                }
                _ => "retry later, or slow down",
            }
        ),
        Kind::Invalid => match code {
            "ResourceInUseException" => format!(
                "stream{} is not ready (being created, updated or deleted): {detail}",
                stream.map(|s| format!(" \"{s}\"")).unwrap_or_default()
            ),
            _ => format!("Kinesis refused the request ({code}): {detail}"),
        },
        Kind::Unreachable => match transport(message) {
            Transport::Refused => format!(
                "cannot connect to {endpoint}: connection refused {}",
                Hint::Endpoint.text(names)
            ),
            Transport::Dns => format!(
                "cannot resolve the host of {endpoint}: {} {}",
                root_cause(message),
                Hint::EndpointOrRegion.text(names)
            ),
            Transport::Tls => format!(
                "TLS with {endpoint} failed: {} (for a local server without TLS, use an http:// endpoint)",
                root_cause(message)
            ),
            Transport::TimedOut => format!(
                "no answer from {endpoint} in time {}",
                Hint::EndpointReachable.text(names)
            ),
            // Closed or reset depends on timing; the person's answer is the same.
            Transport::Reset => format!(
                "the connection to {endpoint} was closed without an answer {}",
                Hint::KinesisEndpoint.text(names)
            ),
            Transport::NoCredentials | Transport::Other => format!(
                "cannot reach {endpoint}: {} {}",
                root_cause(message),
                Hint::Endpoint.text(names)
            ),
        },
        Kind::Other => {
            if detail.is_empty() {
                format!("Kinesis failed with {code}")
            } else {
                format!("Kinesis failed with {code}: {detail}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_denied_names_the_action_and_resource() {
        let m = "User: arn:aws:iam::1:user/u is not authorized to perform: kinesis:PutRecords \
                 on resource: arn:aws:kinesis:us-east-1:1:stream/s because no identity-based policy allows it";
        assert_eq!(
            describe("AccessDeniedException", m, None),
            "access denied: kinesis:PutRecords on arn:aws:kinesis:us-east-1:1:stream/s (the IAM \
             policy of these credentials does not allow it)"
        );
    }

    /// Every message that names a setting, under both vocabularies.
    fn naming_messages() -> Vec<(&'static str, &'static str)> {
        vec![
            (
                "ResourceNotFoundException",
                "Stream s under account 0 not found.",
            ),
            (
                "UnrecognizedClientException",
                "The security token is invalid.",
            ),
            ("Dispatch", "io error: Connection refused (os error 111)"),
            (
                "Dispatch",
                "dns error: failed to lookup address information",
            ),
            ("Timeout", "operation timed out"),
            ("Dispatch", "connection closed before message completed"),
            ("Dispatch", "io error: something else"),
        ]
    }

    #[test]
    fn hints_name_the_settings_in_the_vocabulary_chosen() {
        let properties = SettingNames {
            stream: "the stream property",
            region: "the region property",
            endpoint: "the endpoint property",
        };
        let target = Target {
            stream: "s",
            region: "us-east-1",
            endpoint: "http://127.0.0.1:9",
        };
        for (code, message) in naming_messages() {
            let cli = describe(code, message, Some(&target));
            let plugin = describe_with(code, message, Some(&target), &properties);
            assert!(cli.contains("--"), "{code}: {cli}");
            assert!(!plugin.contains("--"), "{code}: {plugin}");
            assert!(plugin.contains(" property"), "{code}: {plugin}");
            // A line already made with the CLI's flags says the same once reworded, inside
            // a longer line too.
            assert_eq!(reword_hints(&cli, &properties), plugin);
            let nested =
                format!("PutRecords: record TTL passed; last error: {cli} (after 3 attempts)");
            assert_eq!(
                reword_hints(&nested, &properties),
                format!("PutRecords: record TTL passed; last error: {plugin} (after 3 attempts)")
            );
        }
        assert_eq!(
            describe_with("Dispatch", "io error: Connection refused (os error 111)", Some(&target), &properties),
            "cannot connect to http://127.0.0.1:9: connection refused (is the endpoint right? the endpoint property)"
        );
        // Lines without a hint are left alone.
        let throttled = describe(
            "ProvisionedThroughputExceededException",
            "Rate exceeded",
            None,
        );
        assert_eq!(reword_hints(&throttled, &properties), throttled);
    }

    /// A server that closes every connection at once fails the request in one of several
    /// ways depending on timing (hyper's phrasings); each must read the same to a person.
    #[test]
    fn a_connection_closed_without_an_answer_reads_the_same_however_it_closed() {
        let target = Target {
            stream: "s",
            region: "us-east-1",
            endpoint: "http://127.0.0.1:9",
        };
        let expected = "the connection to http://127.0.0.1:9 was closed without an answer \
                        (is it a Kinesis endpoint? --endpoint)";
        for message in [
            "dispatch failure: io error: connection closed before message completed",
            "dispatch failure: other: operation was canceled: connection was not ready",
            "dispatch failure: io error: client error (SendRequest): channel closed",
            "dispatch failure: io error: Connection reset by peer (os error 104)",
            "dispatch failure: io error: Broken pipe (os error 32)",
            "response error: unexpected EOF",
        ] {
            assert_eq!(
                describe("Dispatch", message, Some(&target)),
                expected,
                "{message}"
            );
        }
    }

    #[test]
    fn kinds_of_transport_failures() {
        assert_eq!(
            kind("Dispatch", "io error: Connection refused (os error 111)"),
            Kind::Unreachable
        );
        assert_eq!(kind("ResourceNotFoundException", ""), Kind::NotFound);
        assert!(!Kind::NotFound.transient());
        assert!(Kind::Throttled.transient());
        assert_eq!(
            root_cause("a: b: Connection refused (os error 111) [address 127.0.0.1:9]"),
            "Connection refused"
        );
        assert_eq!(
            missing_stream("Stream s under account 000000000000 not found."),
            Some(("s", None))
        );
        assert_eq!(
            missing_stream("Stream arn arn:aws:kinesis:eu-west-1:0:stream/s not found"),
            Some(("s", Some("eu-west-1")))
        );
    }
}
