//! Errors of calls to AWS, kept with their source and their kind.
//!
//! The kind is what decides between "deliver the event again" and "record, report,
//! stop": a throttled or failing service may answer later, but a denied call, a missing
//! resource or an invalid request will fail the same way on every redelivery, and
//! retrying them only delays the page a person needs. The kind is read from the SDK's
//! error metadata (the service's error code and the HTTP status), never from message
//! text.

use aws_sdk_sfn::config::http::HttpResponse;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use serde::Serialize;

/// What kind of failure an AWS call had.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Throttling or a rate limit: retry later.
    Throttled,
    /// A server error, a timeout, a dropped connection, a conflict that may clear.
    Transient,
    /// The caller may not do this (IAM, KMS, SCP): a person must grant it.
    Denied,
    /// The resource does not exist (any more).
    NotFound,
    /// The request is wrong, or the response is not what the API promises.
    Invalid,
}

impl ErrorKind {
    /// Whether handling the event again may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "throttled",
            ErrorKind::Transient => "transient",
            ErrorKind::Denied => "denied",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Invalid => "invalid",
        }
    }

    /// The kind of a service error, from its code and HTTP status. Codes are the
    /// services' own (`ThrottlingException`, `AccessDeniedException`, `NoSuchKey`, ...);
    /// an unknown code falls back on the status class.
    pub fn classify(code: Option<&str>, status: Option<u16>) -> ErrorKind {
        if let Some(code) = code {
            let c = code.strip_suffix("Exception").unwrap_or(code);
            match c {
                "Throttling"
                | "Throttled"
                | "TooManyRequests"
                | "ThrottledClient"
                | "RequestLimitExceeded"
                | "ProvisionedThroughputExceeded"
                | "RequestThrottled"
                | "SlowDown"
                | "LimitExceeded"
                | "TransactionInProgress"
                | "KMSThrottling"
                | "ExecutionLimitExceeded"
                | "PriorRequestNotComplete"
                | "EC2Throttled"
                | "ENILimitReached" => return ErrorKind::Throttled,
                "AccessDenied"
                | "UnauthorizedOperation"
                | "Unauthorized"
                | "NotAuthorized"
                | "AuthorizationError"
                | "UnrecognizedClient"
                | "InvalidClientTokenId"
                | "ExpiredToken"
                | "InvalidSignature"
                | "SignatureDoesNotMatch"
                | "KMSAccessDenied"
                | "KMSDisabled"
                | "KMSNotFound"
                | "KMSInvalidState"
                | "MissingAuthenticationToken"
                | "Forbidden" => return ErrorKind::Denied,
                "ResourceNotFound"
                | "NotFound"
                | "NoSuchKey"
                | "NoSuchBucket"
                | "NoSuchVersion"
                | "ExecutionDoesNotExist"
                | "StateMachineDoesNotExist"
                | "TopicNotFound"
                | "NotFoundError"
                | "QueueDoesNotExist" => return ErrorKind::NotFound,
                "InternalServerError"
                | "InternalFailure"
                | "InternalError"
                | "ServiceUnavailable"
                | "ServiceFailure"
                | "ServiceException"
                | "RequestTimeout"
                | "RequestTimeoutError"
                | "ResourceConflict"
                | "ResourceInUse"
                | "TransactionCanceled"
                | "ConcurrentModification"
                | "OperationAborted"
                | "ReplicatedWriteConflict"
                | "RequestTimeTooSkewed"
                | "ConditionalCheckFailed"
                | "TransactionConflict"
                | "EC2Unexpected"
                | "Unknown" => return ErrorKind::Transient,
                "Validation"
                | "InvalidParameterValue"
                | "InvalidParameter"
                | "InvalidArn"
                | "InvalidName"
                | "InvalidRequest"
                | "InvalidInput"
                | "MalformedPolicyDocument"
                | "SerializationException"
                | "InvalidRequestContent"
                | "InvalidToken"
                | "CodeStorageExceeded" => return ErrorKind::Invalid,
                _ => {}
            }
        }
        match status {
            Some(429) => ErrorKind::Throttled,
            Some(401 | 403) => ErrorKind::Denied,
            Some(404) => ErrorKind::NotFound,
            Some(s) if (400..500).contains(&s) => ErrorKind::Invalid,
            // 5xx, no response at all (timeout, connection), or a code we do not know.
            _ => ErrorKind::Transient,
        }
    }
}

/// An AWS call that failed. The SDK error is kept as the source (never flattened), and
/// `kind` says whether handling the event again may succeed.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub message: String,
    pub kind: ErrorKind,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl AwsError {
    /// Wraps an SDK error. The message is the service's error code and message when
    /// there is one, else the error's context (bounded: it can quote a whole response).
    pub fn sdk<E>(operation: &'static str, error: SdkError<E, HttpResponse>) -> AwsError
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    {
        let kind = match &error {
            SdkError::ServiceError(e) => ErrorKind::classify(e.err().code(), Some(e.raw().status().as_u16())),
            SdkError::ResponseError(e) => ErrorKind::classify(None, Some(e.raw().status().as_u16())),
            // Never sent, timed out, or the connection broke: the next delivery may work.
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => ErrorKind::Transient,
            // A request the SDK would not build is wrong every time.
            SdkError::ConstructionFailure(_) => ErrorKind::Invalid,
            _ => ErrorKind::Transient,
        };
        let message = match (error.code(), error.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_string(),
            _ => {
                let context = aws_sdk_sfn::error::DisplayErrorContext(&error).to_string();
                crate::redact::truncate(&context, 400)
            }
        };
        AwsError { operation, message, kind, source: Some(Box::new(error)) }
    }

    /// A response that was not what the API promises.
    pub fn invalid(operation: &'static str, message: impl Into<String>) -> AwsError {
        AwsError { operation, message: message.into(), kind: ErrorKind::Invalid, source: None }
    }

    /// An error of a given kind without an SDK source (tests, adapters' own checks).
    pub fn of_kind(operation: &'static str, kind: ErrorKind, message: impl Into<String>) -> AwsError {
        AwsError { operation, message: message.into(), kind, source: None }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_come_from_codes_then_status() {
        let cases: &[(Option<&str>, Option<u16>, ErrorKind)] = &[
            (Some("ThrottlingException"), Some(400), ErrorKind::Throttled),
            (Some("TooManyRequestsException"), Some(429), ErrorKind::Throttled),
            (Some("ProvisionedThroughputExceededException"), Some(400), ErrorKind::Throttled),
            (Some("SlowDown"), Some(503), ErrorKind::Throttled),
            (Some("AccessDeniedException"), Some(400), ErrorKind::Denied),
            (Some("AccessDenied"), Some(403), ErrorKind::Denied),
            (Some("UnrecognizedClientException"), Some(400), ErrorKind::Denied),
            (Some("ExpiredTokenException"), Some(400), ErrorKind::Denied),
            (Some("ResourceNotFoundException"), Some(400), ErrorKind::NotFound),
            (Some("ExecutionDoesNotExist"), Some(400), ErrorKind::NotFound),
            (Some("NoSuchKey"), Some(404), ErrorKind::NotFound),
            (Some("ValidationException"), Some(400), ErrorKind::Invalid),
            (Some("InvalidParameterValueException"), Some(400), ErrorKind::Invalid),
            (Some("InternalServerError"), Some(500), ErrorKind::Transient),
            (Some("ServiceUnavailable"), Some(503), ErrorKind::Transient),
            (Some("ResourceConflictException"), Some(409), ErrorKind::Transient),
            // A write whose condition failed: someone else moved the item (a takeover).
            (Some("TransactionCanceledException"), Some(400), ErrorKind::Transient),
            (Some("ConditionalCheckFailedException"), Some(400), ErrorKind::Transient),
            // Unknown codes: the status class decides.
            (Some("SomethingNew"), Some(500), ErrorKind::Transient),
            (Some("SomethingNew"), Some(403), ErrorKind::Denied),
            (Some("SomethingNew"), Some(404), ErrorKind::NotFound),
            (Some("SomethingNew"), Some(400), ErrorKind::Invalid),
            (None, Some(429), ErrorKind::Throttled),
            (None, None, ErrorKind::Transient),
        ];
        for (code, status, kind) in cases {
            assert_eq!(ErrorKind::classify(*code, *status), *kind, "{code:?} {status:?}");
        }
        assert!(ErrorKind::Throttled.is_retryable() && ErrorKind::Transient.is_retryable());
        assert!(!ErrorKind::Denied.is_retryable());
        assert!(!ErrorKind::NotFound.is_retryable());
        assert!(!ErrorKind::Invalid.is_retryable());
    }
}
