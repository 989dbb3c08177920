//! Member accounts: the member role assumed through STS (`aws-config`'s
//! `AssumeRoleProvider`), with its credentials cached by the SDK's identity cache until
//! shortly before they expire, and one set of clients per account, kept for the life of
//! the process (a warm Lambda assumes each role once an hour, not once an event).
//!
//! The session is named [`MEMBER_SESSION`], so the loop breaker recognises remediator's
//! own calls in the member account's CloudTrail. An account whose role cannot be assumed
//! gets no clients, and nothing is done there with the central account's credentials.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_config::sts::AssumeRoleProvider;
use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use tokio::sync::Mutex;

use crate::accounts::member_role_arn;
use crate::apply::{Clients, MemberAccess};
use crate::error::{AwsError, ErrorKind};

/// What a passing STS failure looks like (throttling, a server error, no answer): only
/// these give the event back; any other failure to assume the role (denied, no such role,
/// an external id STS rejects) is a refusal, recorded and reported.
const TRANSIENT: &[&str] = &[
    "Throttl",
    "RequestLimitExceeded",
    "TooManyRequests",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    "IDPCommunicationError",
    "timeout",
    "timed out",
    "dispatch failure",
    "connection",
];
use crate::triage::MEMBER_SESSION;

pub struct MemberRoles {
    sdk: SdkConfig,
    role_name: String,
    external_id: Option<String>,
    home_role_arn: Option<String>,
    cache: Mutex<HashMap<String, Arc<Clients>>>,
}

impl MemberRoles {
    pub fn new(sdk: SdkConfig, role_name: String, external_id: Option<String>, home_role_arn: Option<String>) -> Self {
        MemberRoles { sdk, role_name, external_id, home_role_arn, cache: Mutex::new(HashMap::new()) }
    }
}

#[async_trait]
impl MemberAccess for MemberRoles {
    async fn clients(&self, account: &str) -> Result<Arc<Clients>, AwsError> {
        // One lock for the cache: two incidents of a new account assume its role once.
        let mut cache = self.cache.lock().await;
        if let Some(clients) = cache.get(account) {
            return Ok(clients.clone());
        }
        let role = member_role_arn(account, &self.role_name, self.home_role_arn.as_deref());
        let mut builder = AssumeRoleProvider::builder(&role).session_name(MEMBER_SESSION).configure(&self.sdk);
        if let Some(id) = &self.external_id {
            builder = builder.external_id(id);
        }
        let provider = builder.build().await;
        // Assumed now, so that a missing or untrusting role is a refusal before anything
        // is planned, not a failure half-way.
        provider.provide_credentials().await.map_err(|e| {
            let text = format!("{}", aws_sdk_sts::error::DisplayErrorContext(&e));
            let kind =
                if TRANSIENT.iter().any(|m| text.contains(m)) { ErrorKind::Transient } else { ErrorKind::Denied };
            AwsError::of_kind("AssumeRole", kind, format!("cannot assume {role}: {text}"))
        })?;
        let sdk = self
            .sdk
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .identity_cache(aws_config::identity::IdentityCache::lazy().build())
            .build();
        let clients = Arc::new(super::clients(&sdk));
        cache.insert(account.to_string(), clients.clone());
        Ok(clients)
    }
}

/// Who the credentials in use are (`sts:GetCallerIdentity`, which needs no permission):
/// their account, for when remediator's own role is not configured (the command line),
/// and their ARN, who answers a request for approval from the command line.
pub struct Caller {
    pub account: String,
    pub arn: String,
}

pub async fn caller(sdk: &SdkConfig) -> Result<Caller, AwsError> {
    let me = aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::sdk("GetCallerIdentity", e))?;
    match (me.account(), me.arn()) {
        (Some(account), Some(arn)) => Ok(Caller { account: account.to_string(), arn: arn.to_string() }),
        _ => Err(AwsError::invalid("GetCallerIdentity", "no account or ARN in the answer")),
    }
}
