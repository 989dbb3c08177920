//! SNS: the summary topic.

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;

use crate::error::AwsError;
use crate::summary::{Notifier, Summary};

pub struct SummaryTopic {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SummaryTopic {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        SummaryTopic { client, topic_arn: topic_arn.into() }
    }

    /// Creates the topic named by the ARN's last part if missing (`CreateTopic` is
    /// idempotent) and returns the ARN AWS gives it.
    pub async fn ensure(&self) -> Result<String, AwsError> {
        let name = self.topic_arn.rsplit(':').next().unwrap_or_default();
        let out = self.client.create_topic().name(name).send().await.map_err(|e| AwsError::sdk("CreateTopic", e))?;
        Ok(out.topic_arn().unwrap_or_default().to_string())
    }
}

#[async_trait]
impl Notifier for SummaryTopic {
    async fn publish(&self, summary: &Summary) -> Result<String, AwsError> {
        // One message per protocol: plain text for e-mail and SMS subscribers and queues,
        // the custom-notification JSON of AWS Chatbot (Amazon Q Developer in chat
        // applications) for its HTTPS endpoint.
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&summary.subject)
            .message_structure("json")
            .message(crate::summary::per_protocol(summary).to_string());
        for (k, v) in &summary.attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| AwsError::invalid("Publish", e.to_string()))?;
            request = request.message_attributes(k, value);
        }
        let out = request.send().await.map_err(|e| AwsError::sdk("Publish", e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}
