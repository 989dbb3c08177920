//! `restore-object`: a deleted S3 object brought back in a versioned bucket by removing
//! the delete marker that hides its newest version; an object that exists is never
//! overwritten. `undo` hides it again (a new delete marker: the versions stay) only
//! while the version remediator restored is still the current one.

use serde::Deserialize;
use serde_json::Value;

use crate::apply::{done, failed, refused, Done, ObjectVersions, Services, StepResult};
use crate::error::AwsError;

use super::Undone;
use crate::incident::Incident;
use crate::plan::{split_object_arn, Refusal, Step};

use super::raise::failure_time;

/// What a restore may call.
pub const PERMISSIONS: &[&str] = &["s3:ListBucketVersions", "s3:DeleteObjectVersion", "s3:GetObject"];

/// Restores the newest earlier version of an object in a versioned bucket by removing
/// the delete marker that hides it; an object that exists is never overwritten.
pub(crate) async fn restore_object(step: &Step, incident: &Incident, services: &Services<'_>, arn: &str) -> Done {
    let objects = services.objects;
    let Some((bucket, key)) = split_object_arn(arn) else {
        return refused(Refusal::NoTarget, format!("{arn} is not an S3 object"));
    };
    let versions = match objects.versions(bucket, key).await {
        Ok(v) => v,
        Err(e) => return failed("ListObjectVersions", &e),
    };
    if versions.is_empty() {
        return refused(Refusal::NotApplicable, format!("s3://{bucket}/{key} has no versions to restore"));
    }
    // In a bucket that was never versioned every object's version id is "null", and a
    // deleted object is simply gone: there is nothing to restore from.
    if versions.iter().all(|v| v.version_id == "null") {
        return refused(Refusal::NotApplicable, format!("bucket {bucket} is not versioned: nothing to restore from"));
    }
    let Some(latest) = versions.first() else {
        return refused(Refusal::NotApplicable, format!("s3://{bucket}/{key} has no versions to restore"));
    };
    if !latest.delete_marker {
        let newer = match (latest.last_modified, failure_time(incident)) {
            (Some(m), Some(f)) if m > f => " (written after the incident)",
            _ => "",
        };
        return done(
            StepResult::Done,
            format!("s3://{bucket}/{key} exists (version {}){newer}: not overwritten", latest.version_id),
        );
    }
    let Some(previous) = versions.iter().find(|v| !v.delete_marker) else {
        return refused(Refusal::NotApplicable, format!("s3://{bucket}/{key} has only delete markers"));
    };
    let before = Some(serde_json::json!({"delete_marker": latest.version_id, "restored_version": previous.version_id}));
    if step.dry_run {
        return Done {
            before,
            ..done(
                StepResult::WouldHave,
                format!("would remove delete marker {} to restore version {}", latest.version_id, previous.version_id),
            )
        };
    }
    if let Some(stop) = services.preflight(step, arn, before.as_ref()).await {
        return stop;
    }
    if let Err(e) = objects.delete_version(bucket, key, &latest.version_id).await {
        return failed("DeleteObject (delete marker)", &e);
    }
    match objects.head(bucket, key).await {
        Ok(Some(current)) => Done {
            before,
            short: Some("restored".into()),
            ..done(
                StepResult::Done,
                format!("restored s3://{bucket}/{key}: removed delete marker, version {current} is current"),
            )
        },
        Ok(None) => Done {
            before,
            ..done(StepResult::Failed, format!("s3://{bucket}/{key} is still missing after removing the delete marker"))
        },
        Err(e) => failed("HeadObject", &e),
    }
}

/// A restore's before-image: the delete marker removed and the version it uncovered.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Before {
    pub delete_marker: String,
    pub restored_version: String,
}

impl Before {
    pub fn parse(before: &Value) -> Option<Before> {
        serde_json::from_value(before.clone()).ok()
    }
}

/// Hides the object again (a new delete marker; the versions stay), only while the
/// version remediator restored is still the current one.
pub async fn undo(arn: &str, before: &Before, objects: &dyn ObjectVersions, dry_run: bool) -> Result<Undone, AwsError> {
    let Some((bucket, key)) = split_object_arn(arn) else {
        return Ok(Undone::Refused(format!("{arn} is not an S3 object")));
    };
    let versions = objects.versions(bucket, key).await?;
    let Some(latest) = versions.first() else {
        return Ok(Undone::Refused(format!("s3://{bucket}/{key} has no versions")));
    };
    if latest.delete_marker {
        return Ok(Undone::Already(format!("s3://{bucket}/{key} is deleted already")));
    }
    if latest.version_id != before.restored_version {
        return Ok(Undone::Refused(format!(
            "s3://{bucket}/{key} is at version {}, written after remediator restored {}: left alone",
            latest.version_id, before.restored_version
        )));
    }
    let description = format!("delete s3://{bucket}/{key} again (a new delete marker; the versions stay)");
    if dry_run {
        return Ok(Undone::WouldHave(description));
    }
    objects.delete_current(bucket, key).await?;
    Ok(Undone::Done(description))
}
