//! CloudFormation: a stack's events (to say which resource failed a deployment), its
//! status and service role, and continuing a failed rollback.

use async_trait::async_trait;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};

use crate::apply::{StackInfo, Stacks};
use crate::deployment::StackEvent;
use crate::error::AwsError;

/// Pages of stack events read at most (100 events each): a stack's latest operation
/// rarely has more; an older start is not needed to find the first failure.
const MAX_EVENT_PAGES: usize = 5;

pub struct CloudFormation {
    client: aws_sdk_cloudformation::Client,
}

impl CloudFormation {
    pub fn new(client: aws_sdk_cloudformation::Client) -> Self {
        CloudFormation { client }
    }
}

#[async_trait]
impl Stacks for CloudFormation {
    async fn events(&self, stack_id: &str) -> Result<Vec<StackEvent>, AwsError> {
        let name = crate::deployment::stack_name(stack_id).unwrap_or(stack_id);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_EVENT_PAGES {
            let page = self
                .client
                .describe_stack_events()
                .stack_name(stack_id)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::sdk("DescribeStackEvents", e))?;
            let mut began = false;
            for e in page.stack_events() {
                let event = StackEvent {
                    timestamp: e.timestamp().map(|t| t.secs()).unwrap_or_default(),
                    logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
                    physical_id: e.physical_resource_id().map(str::to_string),
                    resource_type: e.resource_type().unwrap_or_default().to_string(),
                    status: e.resource_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    reason: e.resource_status_reason().map(str::to_string),
                };
                began |= event.logical_id == name
                    && event.resource_type == "AWS::CloudFormation::Stack"
                    && event.status.ends_with("_IN_PROGRESS")
                    && !event.status.contains("ROLLBACK")
                    && !event.status.contains("CLEANUP");
                out.push(event);
            }
            // Newest first: once the operation's start is read, older pages are not needed.
            token = page.next_token().filter(|t| !t.is_empty()).map(str::to_string);
            if began || token.is_none() {
                break;
            }
        }
        Ok(out)
    }

    async fn describe(&self, stack_id: &str) -> Result<Option<StackInfo>, AwsError> {
        match self.client.describe_stacks().stack_name(stack_id).send().await {
            Ok(out) => Ok(out.stacks().first().map(|s| StackInfo {
                status: s.stack_status().map(|x| x.as_str().to_string()).unwrap_or_default(),
                role_arn: s.role_arn().filter(|r| !r.is_empty()).map(str::to_string),
            })),
            // CloudFormation answers a missing stack with a ValidationError.
            Err(SdkError::ServiceError(e)) if e.err().message().is_some_and(|m| m.contains("does not exist")) => {
                Ok(None)
            }
            Err(e) => Err(AwsError::sdk("DescribeStacks", e)),
        }
    }

    async fn continue_rollback(&self, stack_id: &str) -> Result<(), AwsError> {
        self.client
            .continue_update_rollback()
            .stack_name(stack_id)
            .send()
            .await
            .map_err(|e| AwsError::sdk("ContinueUpdateRollback", e))?;
        Ok(())
    }
}
