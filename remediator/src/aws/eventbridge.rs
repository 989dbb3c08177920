//! EventBridge: list, describe, enable and disable rules.

use async_trait::async_trait;

use crate::apply::{RuleInfo, RuleTarget, Rules};
use crate::error::AwsError;
use crate::rule_input::TargetInput;

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
    async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, AwsError> {
        let mut rules = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_rules()
                .name_prefix(prefix)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::sdk("ListRules", e))?;
            for rule in out.rules() {
                let state = rule.state().map(|s| s.as_str().to_string()).unwrap_or_default();
                rules.push((rule.name().unwrap_or_default().to_string(), state));
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        rules.sort();
        Ok(rules)
    }

    async fn describe(&self, name: &str) -> Result<RuleInfo, AwsError> {
        let out = self.client.describe_rule().name(name).send().await.map_err(|e| AwsError::sdk("DescribeRule", e))?;
        Ok(RuleInfo {
            state: out.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
            managed_by: out.managed_by().filter(|m| !m.is_empty()).map(str::to_string),
            arn: out.arn().map(str::to_string),
            schedule: out.schedule_expression().filter(|s| !s.is_empty()).map(str::to_string),
        })
    }

    async fn disable(&self, name: &str) -> Result<(), AwsError> {
        self.client.disable_rule().name(name).send().await.map_err(|e| AwsError::sdk("DisableRule", e))?;
        Ok(())
    }

    async fn targets(&self, name: &str) -> Result<Vec<RuleTarget>, AwsError> {
        let mut targets = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_targets_by_rule()
                .rule(name)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::sdk("ListTargetsByRule", e))?;
            for t in out.targets() {
                let transformer = t.input_transformer().map(|x| {
                    let paths = x.input_paths_map().map(|m| m.clone().into_iter().collect()).unwrap_or_default();
                    (paths, x.input_template().to_string())
                });
                targets.push(RuleTarget {
                    id: t.id().to_string(),
                    arn: t.arn().to_string(),
                    input: TargetInput {
                        input: t.input().map(str::to_string),
                        input_path: t.input_path().map(str::to_string),
                        transformer,
                    },
                });
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(targets)
    }

    async fn enable(&self, name: &str) -> Result<(), AwsError> {
        self.client.enable_rule().name(name).send().await.map_err(|e| AwsError::sdk("EnableRule", e))?;
        Ok(())
    }
}
