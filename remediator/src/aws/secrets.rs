//! The approval links' signing key and base URL: the key from Secrets Manager (the
//! deployment generates it; it is never in the template or the environment), the URL
//! from the function's own URL configuration when not given.

use crate::approval::{LinkKey, Links};
use crate::error::AwsError;

/// Reads the signing key from the secret `secret` (its ARN or name).
pub async fn link_key(sdk: &aws_config::SdkConfig, secret: &str) -> Result<LinkKey, AwsError> {
    let out = aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| AwsError::sdk("GetSecretValue (approval key)", e))?;
    let text = out
        .secret_string()
        .ok_or_else(|| AwsError::invalid("GetSecretValue (approval key)", "the secret has no text value"))?;
    LinkKey::new(text).map_err(|e| AwsError::invalid("GetSecretValue (approval key)", e))
}

/// The URL of the function `function` (its function URL configuration).
pub async fn function_url(sdk: &aws_config::SdkConfig, function: &str) -> Result<String, AwsError> {
    let out = aws_sdk_lambda::Client::new(sdk)
        .get_function_url_config()
        .function_name(function)
        .send()
        .await
        .map_err(|e| AwsError::sdk("GetFunctionUrlConfig", e))?;
    Ok(out.function_url().to_string())
}

/// The links of approval summaries, when the deployment has a key: `url` if given, else
/// the URL of `function` (in Lambda).
pub async fn links(
    sdk: &aws_config::SdkConfig,
    secret: &str,
    url: Option<&str>,
    function: Option<&str>,
) -> Result<Links, AwsError> {
    let key = link_key(sdk, secret).await?;
    let url = match (url, function) {
        (Some(url), _) => url.to_string(),
        (None, Some(function)) => function_url(sdk, function).await?,
        (None, None) => {
            return Err(AwsError::invalid(
                "approval links",
                "no REMEDIATOR_APPROVAL_URL and not running in Lambda: the links' address is unknown",
            ))
        }
    };
    Ok(Links { url, key })
}
