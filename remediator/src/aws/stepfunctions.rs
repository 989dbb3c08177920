//! Step Functions: describe, history, redrive and start executions.

use async_trait::async_trait;
use aws_sdk_sfn::error::SdkError;
use aws_sdk_sfn::operation::redrive_execution::RedriveExecutionError;
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent as SdkEvent};

use crate::apply::{ExecutionInfo, Executions, Redrive, Secret, Start};
use crate::diagnose::{diagnose, HistoryEvent, Scheduled};
use crate::error::AwsError;
use crate::event::ExecutionArn;

/// Pages of history read at most (1,000 events each) before diagnosing what we have.
const MAX_HISTORY_PAGES: usize = 25;

pub struct StepFunctions {
    client: aws_sdk_sfn::Client,
}

impl StepFunctions {
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        StepFunctions { client }
    }
}

#[async_trait]
impl Executions for StepFunctions {
    async fn describe(&self, execution: &ExecutionArn) -> Result<ExecutionInfo, AwsError> {
        let out = self
            .client
            .describe_execution()
            .execution_arn(execution.as_str())
            .send()
            .await
            .map_err(|e| AwsError::sdk("DescribeExecution", e))?;
        Ok(ExecutionInfo {
            status: out.status().as_str().to_string(),
            state_machine_arn: out.state_machine_arn().to_string(),
            input: out.input().map(|i| Secret(i.to_string())),
            redrive_status: out.redrive_status().map(|s| s.as_str().to_string()),
            redrive_status_reason: out.redrive_status_reason().map(str::to_string),
            name: out.name().unwrap_or_default().to_string(),
            error: out.error().map(str::to_string),
            cause: out.cause().map(str::to_string),
            redrive_count: out.redrive_count().unwrap_or(0).max(0) as u32,
            stop_date: out.stop_date().map(|d| d.secs()),
        })
    }

    async fn history(&self, execution: &ExecutionArn) -> Result<Vec<HistoryEvent>, AwsError> {
        let mut events = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_HISTORY_PAGES {
            let out = self
                .client
                .get_execution_history()
                .execution_arn(execution.as_str())
                .reverse_order(true)
                .max_results(1000)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::sdk("GetExecutionHistory", e))?;
            events.extend(out.events().iter().map(convert));
            token = out.next_token().map(str::to_string);
            // Newest events come first: stop as soon as they explain the failure.
            if token.is_none() || diagnose(execution, &events).is_complete() {
                break;
            }
        }
        Ok(events)
    }

    async fn redrive(&self, execution: &ExecutionArn, client_token: &str) -> Result<Redrive, AwsError> {
        match self.client.redrive_execution().execution_arn(execution.as_str()).client_token(client_token).send().await
        {
            Ok(_) => Ok(Redrive::Redriven),
            Err(SdkError::ServiceError(e)) if matches!(e.err(), RedriveExecutionError::ExecutionNotRedrivable(_)) => {
                Ok(Redrive::NotRedrivable(e.err().to_string()))
            }
            Err(e) => Err(AwsError::sdk("RedriveExecution", e)),
        }
    }

    async fn list_failed(&self, state_machine_arn: &str, since: i64) -> Result<Vec<String>, AwsError> {
        let mut all = self.list_status(state_machine_arn, ExecutionStatus::Failed, since).await?;
        all.extend(self.list_status(state_machine_arn, ExecutionStatus::TimedOut, since).await?);
        all.sort_by_key(|e| std::cmp::Reverse(e.1));
        Ok(all.into_iter().map(|(arn, _)| arn).collect())
    }

    async fn state_machines(&self, prefix: &str) -> Result<Vec<String>, AwsError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_state_machines()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::sdk("ListStateMachines", e))?;
            for sm in out.state_machines() {
                // Express executions cannot be listed (nor stopped by ARN lists).
                let express = sm.r#type() == &aws_sdk_sfn::types::StateMachineType::Express;
                if sm.name().starts_with(prefix) && !express {
                    found.push(sm.state_machine_arn().to_string());
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        found.sort();
        Ok(found)
    }

    async fn running(&self, state_machine_arn: &str) -> Result<Vec<String>, AwsError> {
        let mut found: Vec<String> = self
            .list_status(state_machine_arn, ExecutionStatus::Running, 0)
            .await?
            .into_iter()
            .map(|(arn, _)| arn)
            .collect();
        found.sort();
        Ok(found)
    }

    async fn stop(&self, execution: &str, error: &str, cause: &str) -> Result<(), AwsError> {
        self.client
            .stop_execution()
            .execution_arn(execution)
            .error(error)
            .cause(cause)
            .send()
            .await
            .map_err(|e| AwsError::sdk("StopExecution", e))?;
        Ok(())
    }

    async fn start(&self, state_machine_arn: &str, name: &str, input: &Secret) -> Result<Start, AwsError> {
        match self.client.start_execution().state_machine_arn(state_machine_arn).name(name).input(&input.0).send().await
        {
            Ok(out) => Ok(Start::Started(out.execution_arn().to_string())),
            Err(SdkError::ServiceError(e)) if matches!(e.err(), StartExecutionError::ExecutionAlreadyExists(_)) => {
                let arn = state_machine_arn.replacen(":stateMachine:", ":execution:", 1);
                Ok(Start::AlreadyStarted(format!("{arn}:{name}")))
            }
            Err(e) => Err(AwsError::sdk("StartExecution", e)),
        }
    }

    async fn is_express(&self, state_machine_arn: &str) -> Result<bool, AwsError> {
        let out = self
            .client
            .describe_state_machine()
            .state_machine_arn(state_machine_arn)
            .send()
            .await
            .map_err(|e| AwsError::sdk("DescribeStateMachine", e))?;
        Ok(out.r#type() == &aws_sdk_sfn::types::StateMachineType::Express)
    }

    async fn latest_start(&self, state_machine_arn: &str) -> Result<Option<i64>, AwsError> {
        // Newest first: the first execution listed is the last one started.
        let out = self
            .client
            .list_executions()
            .state_machine_arn(state_machine_arn)
            .max_results(1)
            .send()
            .await
            .map_err(|e| AwsError::sdk("ListExecutions", e))?;
        Ok(out.executions().iter().map(|e| e.start_date().secs()).max())
    }
}

impl StepFunctions {
    async fn list_status(
        &self,
        state_machine_arn: &str,
        status: ExecutionStatus,
        since: i64,
    ) -> Result<Vec<(String, i64)>, AwsError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_executions()
                .state_machine_arn(state_machine_arn)
                .status_filter(status.clone())
                .max_results(1000)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::sdk("ListExecutions", e))?;
            let mut older = false;
            for e in out.executions() {
                let stopped = e.stop_date().map(|d| d.secs()).unwrap_or(i64::MAX);
                if stopped >= since {
                    found.push((e.execution_arn().to_string(), stopped));
                } else {
                    older = true;
                }
            }
            token = out.next_token().map(str::to_string);
            // Newest first (by start): once a page holds older ones, later pages do too.
            if token.is_none() || older {
                break;
            }
        }
        Ok(found)
    }
}

/// Reduces an SDK history event to what diagnosis reads (no input, no output).
fn convert(e: &SdkEvent) -> HistoryEvent {
    let failure = [
        e.task_failed_event_details().map(|d| (d.error(), d.cause())),
        e.task_timed_out_event_details().map(|d| (d.error(), d.cause())),
        e.task_start_failed_event_details().map(|d| (d.error(), d.cause())),
        e.task_submit_failed_event_details().map(|d| (d.error(), d.cause())),
        e.lambda_function_failed_event_details().map(|d| (d.error(), d.cause())),
        e.lambda_function_timed_out_event_details().map(|d| (d.error(), d.cause())),
        e.lambda_function_start_failed_event_details().map(|d| (d.error(), d.cause())),
        e.lambda_function_schedule_failed_event_details().map(|d| (d.error(), d.cause())),
        e.activity_failed_event_details().map(|d| (d.error(), d.cause())),
        e.activity_timed_out_event_details().map(|d| (d.error(), d.cause())),
        e.activity_schedule_failed_event_details().map(|d| (d.error(), d.cause())),
        e.execution_failed_event_details().map(|d| (d.error(), d.cause())),
        e.execution_timed_out_event_details().map(|d| (d.error(), d.cause())),
        e.execution_aborted_event_details().map(|d| (d.error(), d.cause())),
        e.map_run_failed_event_details().map(|d| (d.error(), d.cause())),
    ]
    .into_iter()
    .flatten()
    .next();
    let scheduled = if let Some(d) = e.task_scheduled_event_details() {
        Some(Scheduled {
            resource_type: d.resource_type().to_string(),
            resource: d.resource().to_string(),
            parameters: Some(d.parameters().to_string()),
            timeout_seconds: d.timeout_in_seconds().and_then(|t| u64::try_from(t).ok()),
            heartbeat_seconds: d.heartbeat_in_seconds().and_then(|t| u64::try_from(t).ok()),
        })
    } else {
        e.lambda_function_scheduled_event_details().map(|d| Scheduled {
            resource_type: "lambda".into(),
            resource: d.resource().to_string(),
            parameters: None,
            timeout_seconds: d.timeout_in_seconds().and_then(|t| u64::try_from(t).ok()),
            heartbeat_seconds: None,
        })
    };
    let iteration = [
        e.map_iteration_started_event_details(),
        e.map_iteration_succeeded_event_details(),
        e.map_iteration_failed_event_details(),
        e.map_iteration_aborted_event_details(),
    ]
    .into_iter()
    .flatten()
    .next();
    HistoryEvent {
        id: e.id(),
        previous_event_id: e.previous_event_id(),
        kind: e.r#type().as_str().to_string(),
        state: e
            .state_entered_event_details()
            .map(|d| d.name().to_string())
            .or_else(|| iteration.and_then(|i| i.name()).map(str::to_string)),
        map_index: iteration.and_then(|i| u64::try_from(i.index()).ok()),
        timestamp: Some(e.timestamp().as_secs_f64()),
        scheduled,
        error: failure.and_then(|f| f.0.map(str::to_string)),
        cause: failure.and_then(|f| f.1.map(str::to_string)),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sfn::operation::redrive_execution::{RedriveExecutionError, RedriveExecutionOutput};
    use aws_sdk_sfn::types::error::ExecutionNotRedrivable;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    fn arn() -> ExecutionArn {
        ExecutionArn::parse("arn:aws:states:us-east-1:123456789012:execution:thera-pipeline-prod-daily:run-1").unwrap()
    }

    #[tokio::test]
    async fn redrive_sends_the_execution_and_the_incident_client_token() {
        let ok = mock!(aws_sdk_sfn::Client::redrive_execution)
            .match_requests(|r| r.execution_arn() == Some(arn().as_str()) && r.client_token() == Some("remediator-abc"))
            .then_output(|| {
                RedriveExecutionOutput::builder()
                    .redrive_date(aws_sdk_sfn::primitives::DateTime::from_secs(0))
                    .build()
                    .unwrap()
            });
        let client = mock_client!(aws_sdk_sfn, RuleMode::Sequential, [&ok]);
        let result = StepFunctions::new(client).redrive(&arn(), "remediator-abc").await.unwrap();
        assert_eq!(result, Redrive::Redriven);
        assert_eq!(ok.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_not_redrivable_execution_is_an_answer_not_an_error() {
        let refuse = mock!(aws_sdk_sfn::Client::redrive_execution).then_error(|| {
            RedriveExecutionError::ExecutionNotRedrivable(
                ExecutionNotRedrivable::builder().message("Execution is more than 14 days old").build(),
            )
        });
        let client = mock_client!(aws_sdk_sfn, RuleMode::Sequential, [&refuse]);
        let result = StepFunctions::new(client).redrive(&arn(), "t").await.unwrap();
        assert!(matches!(result, Redrive::NotRedrivable(m) if m.contains("14 days")));
    }

    #[tokio::test]
    async fn other_redrive_errors_are_errors_with_their_source() {
        let limit = mock!(aws_sdk_sfn::Client::redrive_execution).then_error(|| {
            RedriveExecutionError::ExecutionLimitExceeded(
                aws_sdk_sfn::types::error::ExecutionLimitExceeded::builder().message("too many").build(),
            )
        });
        let client = mock_client!(aws_sdk_sfn, RuleMode::Sequential, [&limit]);
        let err = StepFunctions::new(client).redrive(&arn(), "t").await.unwrap_err();
        assert_eq!(err.operation, "RedriveExecution");
        assert!(err.message.contains("ExecutionLimitExceeded"), "{}", err.message);
        assert!(std::error::Error::source(&err).is_some());
    }
}
