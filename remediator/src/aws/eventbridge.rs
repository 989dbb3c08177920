//! EventBridge: describe and enable rules.

use async_trait::async_trait;

use crate::apply::{RuleInfo, Rules};
use crate::error::AwsError;

pub struct EventRules {
    client: aws_sdk_eventbridge::Client,
}

impl EventRules {
    pub fn new(client: aws_sdk_eventbridge::Client) -> Self {
        EventRules { client }
    }
}

#[async_trait]
impl Rules for EventRules {
    async fn describe(&self, name: &str) -> Result<RuleInfo, AwsError> {
        let out = self.client.describe_rule().name(name).send().await.map_err(|e| AwsError::sdk("DescribeRule", e))?;
        Ok(RuleInfo {
            state: out.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
            managed_by: out.managed_by().filter(|m| !m.is_empty()).map(str::to_string),
        })
    }

    async fn disable(&self, name: &str) -> Result<(), AwsError> {
        self.client.disable_rule().name(name).send().await.map_err(|e| AwsError::sdk("DisableRule", e))?;
        Ok(())
    }

    async fn enable(&self, name: &str) -> Result<(), AwsError> {
        self.client.enable_rule().name(name).send().await.map_err(|e| AwsError::sdk("EnableRule", e))?;
        Ok(())
    }
}
