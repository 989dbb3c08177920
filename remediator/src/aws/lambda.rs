//! Lambda: read and change a function's timeout and memory.

use async_trait::async_trait;
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::operation::update_function_configuration::UpdateFunctionConfigurationError;

use crate::apply::{FunctionConfig, FunctionSettings, Setting, Update};
use crate::error::AwsError;
use crate::event::parse_timestamp;

pub struct Functions {
    client: aws_sdk_lambda::Client,
}

impl Functions {
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        Functions { client }
    }
}

#[async_trait]
impl FunctionSettings for Functions {
    async fn get(&self, function: &str) -> Result<FunctionConfig, AwsError> {
        let out = self
            .client
            .get_function_configuration()
            .function_name(function)
            .send()
            .await
            .map_err(|e| AwsError::sdk("GetFunctionConfiguration", e))?;
        Ok(FunctionConfig {
            timeout_seconds: out.timeout().unwrap_or(3).max(0) as u32,
            memory_mb: out.memory_size().unwrap_or(128).max(0) as u32,
            revision_id: out.revision_id().map(str::to_string),
            last_modified: out.last_modified().and_then(parse_timestamp),
            last_update_status: out.last_update_status().map(|s| s.as_str().to_string()),
        })
    }

    async fn update(&self, function: &str, setting: Setting, revision_id: Option<&str>) -> Result<Update, AwsError> {
        let request = self
            .client
            .update_function_configuration()
            .function_name(function)
            .set_revision_id(revision_id.map(str::to_string));
        let request = match setting {
            Setting::Timeout(s) => request.timeout(s as i32),
            Setting::Memory(mb) => request.memory_size(mb as i32),
        };
        match request.send().await {
            Ok(_) => Ok(Update::Updated),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateFunctionConfigurationError::PreconditionFailedException(_)) =>
            {
                Ok(Update::Conflict)
            }
            Err(e) => Err(AwsError::sdk("UpdateFunctionConfiguration", e)),
        }
    }
}
