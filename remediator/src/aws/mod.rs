//! Thin adapters, one per AWS capability, each holding its SDK client.
//!
//! The core depends on small traits (`Executions`, `IncidentLog`, `Notifier`); these
//! modules implement them with the AWS SDK for Rust. Retries with backoff and jitter
//! are the SDK's own (standard mode), configured here once.

pub mod accounts;
pub mod cloudformation;
pub mod dynamodb;
pub mod eventbridge;
pub mod lambda;
pub mod s3;
pub mod scheduler;
pub mod secrets;
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

/// The clients of one account, from one SDK configuration.
pub fn clients(sdk: &aws_config::SdkConfig) -> crate::apply::Clients {
    use std::sync::Arc;
    // Emulators (a custom endpoint) need path-style S3 addressing.
    let path_style = std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(sdk).force_path_style(path_style).build());
    crate::apply::Clients {
        executions: Arc::new(stepfunctions::StepFunctions::new(aws_sdk_sfn::Client::new(sdk))),
        functions: Arc::new(lambda::Functions::new(aws_sdk_lambda::Client::new(sdk))),
        rules: Arc::new(eventbridge::EventRules::new(aws_sdk_eventbridge::Client::new(sdk))),
        objects: Arc::new(s3::Objects::new(s3)),
        stacks: Arc::new(cloudformation::CloudFormation::new(aws_sdk_cloudformation::Client::new(sdk))),
    }
}
