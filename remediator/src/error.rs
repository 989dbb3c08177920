//! Errors of calls to AWS, kept with their source and their retry class.

use aws_sdk_sfn::error::ProvideErrorMetadata;

/// An AWS call that failed. The SDK error is kept as the source (never flattened), and
/// `retryable` says whether handling the event again may succeed.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub message: String,
    pub retryable: bool,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl AwsError {
    /// Wraps an SDK error. The message is the service's error code and message when
    /// there is one, else the error's context (bounded: it can quote a whole response).
    pub fn sdk<E>(operation: &'static str, error: E) -> AwsError
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    {
        let message = match (error.code(), error.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_string(),
            _ => {
                let context = aws_sdk_sfn::error::DisplayErrorContext(&error).to_string();
                crate::redact::truncate(&context, 400)
            }
        };
        AwsError { operation, message, retryable: true, source: Some(Box::new(error)) }
    }

    /// A response that was not what the API promises.
    pub fn invalid(operation: &'static str, message: impl Into<String>) -> AwsError {
        AwsError { operation, message: message.into(), retryable: false, source: None }
    }
}
