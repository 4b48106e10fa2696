//! Which Kinesis errors are worth retrying.

/// Whether a per-record error code inside a successful PutRecords response is transient.
///
/// Kinesis documents `ProvisionedThroughputExceededException` and `InternalFailure` for
/// entries; KMS-encrypted streams add `KMSThrottlingException` (transient) and other
/// `KMS*` codes (a key disabled, not found or not allowed: retrying does not help).
///
/// ```
/// use kpl_kinesis::sink::retryable_record_error;
/// assert!(retryable_record_error("ProvisionedThroughputExceededException"));
/// assert!(!retryable_record_error("KMSAccessDeniedException"));
/// ```
pub fn retryable_record_error(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "InternalFailure"
            | "InternalFailureException"
            | "KMSThrottlingException"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
    )
}

/// The error code of a call the driver gave up on itself, after `RequestTimeout` plus a
/// second without an answer. The SDK's own attempt timeout (`RequestTimeout`, on the
/// sink's own client) fires first and is `Timeout`; this one bounds calls made through a
/// client given to the sink without an attempt timeout.
pub const GUARD_TIMEOUT: &str = "GuardTimeout";

/// Whether a whole-request failure is transient: throttling, server errors (HTTP 5xx),
/// timeouts and connection errors are; validation, not found, access denied and the like
/// are not. `code` is the service's error code, or the driver's own name for a transport
/// failure (`Timeout`, [`GUARD_TIMEOUT`], `Dispatch`, `ResponseError`); `status` the HTTP
/// status if there was a response.
///
/// ```
/// use kpl_kinesis::sink::retryable_request_error;
/// assert!(retryable_request_error("ThrottlingException", Some(400)));
/// assert!(retryable_request_error("InternalFailure", Some(500)));
/// assert!(retryable_request_error("Timeout", None));
/// assert!(!retryable_request_error("ResourceNotFoundException", Some(400)));
/// ```
pub fn retryable_request_error(code: &str, status: Option<u16>) -> bool {
    let throttled = matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "LimitExceededException"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "SlowDown"
            | "KMSThrottlingException"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "PriorRequestNotComplete"
            | "ExpiredTokenException"
            | "ExpiredToken"
            | "InternalFailure"
            | "InternalFailureException"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "Timeout"
            | GUARD_TIMEOUT
            | "Dispatch"
            | "ResponseError"
            | "ConnectionError"
    );
    throttled || matches!(status, Some(429) | Some(500..=599))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_errors_are_not_retried() {
        for code in [
            "ResourceNotFoundException",
            "AccessDeniedException",
            "ValidationException",
            "InvalidArgumentException",
            "KMSDisabledException",
            "KMSNotFoundException",
            "UnrecognizedClientException",
        ] {
            assert!(!retryable_request_error(code, Some(400)), "{code}");
            assert!(!retryable_record_error(code), "{code}");
        }
        assert!(retryable_request_error("Whatever", Some(503)));
        assert!(retryable_request_error("Whatever", Some(429)));
    }
}
