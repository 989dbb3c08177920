//! EventBridge Scheduler: durable one-time timers, so a retry due in minutes does not
//! hold a Lambda invocation for minutes. The schedule invokes remediator itself with a
//! "Deferred Retry" payload and deletes itself after it fires.

use async_trait::async_trait;
use aws_sdk_scheduler::error::SdkError;
use aws_sdk_scheduler::operation::create_schedule::CreateScheduleError;
use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, Target};
use serde_json::Value;

use crate::apply::{Timer, Timers};
use crate::error::AwsError;
use crate::guard::format_time;

pub struct Scheduler {
    client: aws_sdk_scheduler::Client,
    /// remediator's own function ARN (the schedule's target).
    target_arn: String,
    /// The role EventBridge Scheduler assumes to invoke it.
    role_arn: String,
}

impl Scheduler {
    pub fn new(client: aws_sdk_scheduler::Client, target_arn: impl Into<String>, role_arn: impl Into<String>) -> Self {
        Scheduler { client, target_arn: target_arn.into(), role_arn: role_arn.into() }
    }
}

#[async_trait]
impl Timers for Scheduler {
    async fn schedule(&self, name: &str, at: i64, payload: &Value) -> Result<Timer, AwsError> {
        let when = format_time(at);
        let expression = format!("at({})", when.trim_end_matches('Z'));
        let target = Target::builder()
            .arn(&self.target_arn)
            .role_arn(&self.role_arn)
            .input(payload.to_string())
            .build()
            .map_err(|e| AwsError::invalid("CreateSchedule", e.to_string()))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| AwsError::invalid("CreateSchedule", e.to_string()))?;
        match self
            .client
            .create_schedule()
            .name(name)
            .schedule_expression(expression)
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(target)
            .send()
            .await
        {
            Ok(_) => Ok(Timer::Created),
            // The same incident scheduled it already (a redelivery): one timer.
            Err(SdkError::ServiceError(e)) if matches!(e.err(), CreateScheduleError::ConflictException(_)) => {
                Ok(Timer::Existing)
            }
            Err(e) => Err(AwsError::sdk("CreateSchedule", e)),
        }
    }
}
