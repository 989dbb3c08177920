//! Thin adapters, one per AWS capability, each holding its SDK client.
//!
//! The core depends on small traits (`Executions`, `IncidentLog`, `Notifier`); these
//! modules implement them with the AWS SDK for Rust. Retries with backoff and jitter
//! are the SDK's own (standard mode), configured here once.

pub mod cloudformation;
pub mod dynamodb;
pub mod eventbridge;
pub mod lambda;
pub mod s3;
pub mod scheduler;
pub mod sns;
pub mod stepfunctions;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;

/// Loads the standard AWS configuration (`AWS_ENDPOINT_URL`, `AWS_REGION`, the
/// credential chain) with remediator's retry and timeout settings.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(4).with_initial_backoff(Duration::from_millis(200)))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(40))
                .build(),
        )
        .load()
        .await
}
