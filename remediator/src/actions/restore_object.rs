//! `restore-object`: a deleted S3 object brought back in a versioned bucket by removing
//! the delete marker that hides its newest version. An object that exists is not
//! overwritten, unless the policy says when it is unusable (`copy_back_when`: empty, or
//! the failed run failed reading it): then its newest earlier non-empty version written
//! before the failure is copied back over it, as the guide's Data Recovery does
//! (`copy-object --copy-source BUCKET/KEY?versionId=...`). Never in an unversioned
//! bucket, never over a version written after the failure, never from a version newer
//! than the current one.
//!
//! `undo` puts back what was current, only while remediator's change is still current:
//! a restored object is hidden again (a new delete marker: the versions stay); a copy is
//! removed (its version deleted, so the version it replaced is current again).

use serde::Deserialize;
use serde_json::Value;

use crate::apply::{done, failed, refused, Done, ObjectVersion, ObjectVersions, Services, StepResult};
use crate::error::AwsError;

use super::Undone;
use crate::event::Signal;
use crate::incident::Incident;
use crate::plan::{split_object_arn, Refusal, Step};
use crate::policy::{Action, CopyBackWhen};

use super::raise::failure_time;

/// What a restore may call.
pub const PERMISSIONS: &[&str] = &["s3:ListBucketVersions", "s3:DeleteObjectVersion", "s3:GetObject"];
/// ... and with `copy_back_when`: reading the earlier version and writing the copy.
pub const COPY_BACK_PERMISSIONS: &[&str] =
    &["s3:ListBucketVersions", "s3:DeleteObjectVersion", "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"];

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
        let when = match &step.action {
            Action::RestoreObject { copy_back_when, .. } => copy_back_when.as_slice(),
            _ => &[],
        };
        return match copy_back_choice(&versions, when, incident, arn) {
            CopyBack::Keep(why) => done(StepResult::Done, format!("s3://{bucket}/{key} {why}: not overwritten")),
            CopyBack::Refuse(why) => refused(Refusal::NotApplicable, format!("s3://{bucket}/{key}: {why}")),
            CopyBack::Copy { replaced, from, why } => {
                copy_back(step, services, arn, (bucket, key), replaced, from, why).await
            }
        };
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

/// A restore's before-image: the delete marker removed and the version it uncovered,
/// or the version a copy replaced and the version copied back.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Before {
    Undeleted {
        delete_marker: String,
        restored_version: String,
    },
    CopiedBack {
        replaced_version: String,
        copied_version: String,
        copied_etag: Option<String>,
        /// The version the copy made (absent when a takeover found the copy made).
        #[serde(default)]
        copy_version: Option<String>,
    },
}

impl Before {
    pub fn parse(before: &Value) -> Option<Before> {
        serde_json::from_value(before.clone()).ok()
    }
}

/// Puts back what was current, only while remediator's change is still current.
pub async fn undo(arn: &str, before: &Before, objects: &dyn ObjectVersions, dry_run: bool) -> Result<Undone, AwsError> {
    let Some((bucket, key)) = split_object_arn(arn) else {
        return Ok(Undone::Refused(format!("{arn} is not an S3 object")));
    };
    let versions = objects.versions(bucket, key).await?;
    let Some(latest) = versions.first() else {
        return Ok(Undone::Refused(format!("s3://{bucket}/{key} has no versions")));
    };
    match before {
        Before::Undeleted { restored_version, .. } => {
            if latest.delete_marker {
                return Ok(Undone::Already(format!("s3://{bucket}/{key} is deleted already")));
            }
            if latest.version_id != *restored_version {
                return Ok(Undone::Refused(format!(
                    "s3://{bucket}/{key} is at version {}, written after remediator restored {restored_version}: left alone",
                    latest.version_id
                )));
            }
            let description = format!("delete s3://{bucket}/{key} again (a new delete marker; the versions stay)");
            if dry_run {
                return Ok(Undone::WouldHave(description));
            }
            objects.delete_current(bucket, key).await?;
            Ok(Undone::Done(description))
        }
        Before::CopiedBack { replaced_version, copied_version, copied_etag, copy_version } => {
            if !latest.delete_marker && latest.version_id == *replaced_version {
                return Ok(Undone::Already(format!("s3://{bucket}/{key} is at version {replaced_version} again")));
            }
            // remediator's copy is current when it is the newest version, directly above the
            // version it replaced: the version the copy made, or (when a takeover found
            // the copy made and its id was not recorded) one with the copied content.
            let is_copy = match copy_version {
                Some(v) => latest.version_id == *v,
                None => copied_etag.is_some() && latest.etag == *copied_etag,
            };
            let ours =
                !latest.delete_marker && versions.get(1).is_some_and(|v| v.version_id == *replaced_version) && is_copy;
            if !ours {
                return Ok(Undone::Refused(format!(
                    "s3://{bucket}/{key} changed after remediator copied version {copied_version} back over {replaced_version}: left alone"
                )));
            }
            let description = format!(
                "delete the copy (version {}) so that version {replaced_version} of s3://{bucket}/{key} is current again",
                latest.version_id
            );
            if dry_run {
                return Ok(Undone::WouldHave(description));
            }
            objects.delete_version(bucket, key, &latest.version_id).await?;
            Ok(Undone::Done(description))
        }
    }
}

/// What to do with an object that exists.
#[derive(Debug, PartialEq)]
enum CopyBack<'v> {
    /// Left as it is (it is usable, or the policy asks for no copy-back).
    Keep(String),
    /// Unusable, but nothing may be copied back: why.
    Refuse(String),
    Copy {
        replaced: &'v ObjectVersion,
        from: &'v ObjectVersion,
        why: String,
    },
}

/// Whether an existing object is copied back over, and from which version: the newest
/// version below the current one, non-empty and written before the failure. `versions`
/// are newest first, the current one first.
fn copy_back_choice<'v>(
    versions: &'v [ObjectVersion],
    when: &[CopyBackWhen],
    incident: &Incident,
    arn: &str,
) -> CopyBack<'v> {
    let Some(current) = versions.first() else { return CopyBack::Keep("has no versions".into()) };
    let failed_at = failure_time(incident);
    let exists = format!("exists (version {})", current.version_id);
    if let (Some(m), Some(f)) = (current.last_modified, failed_at) {
        if m > f {
            return CopyBack::Keep(format!("{exists}, written after the incident"));
        }
    }
    if arn.ends_with('/') {
        return CopyBack::Keep(format!("{exists}, a folder marker, not data"));
    }
    let empty = when.contains(&CopyBackWhen::Empty) && current.size == Some(0);
    let read_failed = when.contains(&CopyBackWhen::ReadFailed)
        && matches!(&incident.event.signal, Signal::Execution(c) if c.is_failure())
        && incident
            .diagnosis
            .as_ref()
            .is_some_and(|d| d.object.as_deref() == Some(arn) && d.error.as_deref().is_some_and(about_content));
    let why = match (empty, read_failed) {
        (true, _) => "is empty",
        (false, true) => "failed the run that read it",
        (false, false) => return CopyBack::Keep(exists),
    };
    if current.version_id == "null" {
        return CopyBack::Refuse(format!("{why}, but its bucket is not versioned: no earlier version to copy back"));
    }
    // A `null` version (written while the bucket was unversioned or suspended) is
    // replaced, not kept, by a write in a suspended bucket: a copy could destroy it.
    if versions.iter().any(|v| v.version_id == "null") {
        return CopyBack::Refuse(format!(
            "{why}, but it has a `null` version (written while versioning was off or suspended) that a copy could overwrite: nothing copied back"
        ));
    }
    let earlier = versions[1..].iter().find(|v| {
        !v.delete_marker
            && v.version_id != "null"
            && v.size != Some(0)
            && match (v.last_modified, failed_at) {
                (Some(m), Some(f)) => m <= f,
                _ => true,
            }
    });
    match earlier {
        Some(from) => CopyBack::Copy { replaced: current, from, why: why.to_string() },
        None => CopyBack::Refuse(format!(
            "{why}, but no earlier non-empty version written before the failure exists ({} earlier version(s) looked at): nothing copied back",
            versions.len() - 1
        )),
    }
}

/// Whether a failed run's error says the content was unusable (it could not be parsed,
/// or was not what the step expected), as opposed to the object not being reached, not
/// being allowed, or the step failing for its own reasons (memory, time). Only such an
/// error makes an older version a better one. An allow-list: an error not recognised
/// keeps the current object.
fn about_content(error: &str) -> bool {
    const CONTENT: &[&str] = &[
        "json",
        "parse",
        "decode",
        "deserializ",
        "malformed",
        "corrupt",
        "schema",
        "syntaxerror",
        "unicodedecodeerror",
        "itemreaderfailed",
        "states.runtime",
    ];
    let error = error.to_ascii_lowercase();
    CONTENT.iter().any(|m| error.contains(m))
}

/// Copies `from` back over `replaced`, checks the copy is current, and keeps the
/// before-image for `undo`.
async fn copy_back(
    step: &Step,
    services: &Services<'_>,
    arn: &str,
    (bucket, key): (&str, &str),
    replaced: &ObjectVersion,
    from: &ObjectVersion,
    why: String,
) -> Done {
    let before = Some(serde_json::json!({
        "replaced_version": replaced.version_id,
        "copied_version": from.version_id,
        "copied_etag": from.etag,
    }));
    let what = format!("copy version {} back over version {} (which {why})", from.version_id, replaced.version_id);
    if step.dry_run {
        return Done { before, ..done(StepResult::WouldHave, format!("would {what} of s3://{bucket}/{key}")) };
    }
    if let Some(stop) = services.preflight(step, arn, before.as_ref()).await {
        return stop;
    }
    let copy = match services.objects.copy_version(bucket, key, &from.version_id, replaced.etag.as_deref()).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return refused(
                Refusal::NotApplicable,
                format!(
                    "s3://{bucket}/{key} was written after version {} was read: not overwritten",
                    replaced.version_id
                ),
            )
        }
        Err(e) => return failed("CopyObject", &e),
    };
    let before = before.map(|mut b| {
        b["copy_version"] = serde_json::Value::from(copy.as_str());
        b
    });
    match services.objects.head(bucket, key).await {
        Ok(Some(current)) if current == copy => Done {
            before,
            short: Some("copied back".into()),
            ..done(StepResult::Done, format!("s3://{bucket}/{key}: {what}; version {copy} is current"))
        },
        Ok(current) => Done {
            before,
            ..done(
                StepResult::Failed,
                format!(
                    "s3://{bucket}/{key}: copied version {} back as {copy}, but the current version is {current:?}",
                    from.version_id
                ),
            )
        },
        Err(e) => failed("HeadObject", &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::Diagnosis;
    use crate::event::{parse_timestamp, Event};

    const ARN: &str = "arn:aws:s3:::thera-pipeline-data/thera-pipeline/apollo/latest.json";

    fn version(id: &str, at: &str, size: i64) -> ObjectVersion {
        ObjectVersion {
            version_id: id.into(),
            is_latest: false,
            delete_marker: false,
            last_modified: parse_timestamp(at),
            size: Some(size),
            etag: Some(format!("etag-{id}")),
        }
    }

    fn created_empty(at: &str) -> Incident {
        let event = serde_json::json!({
            "version": "0", "id": "e1", "detail-type": "Object Created", "source": "aws.s3", "account": "1",
            "time": at, "region": "us-east-1", "resources": [],
            "detail": {"bucket": {"name": "thera-pipeline-data"}, "object": {"key": "thera-pipeline/apollo/latest.json", "size": 0}}
        });
        Incident::new(Event::parse(&event.to_string()).unwrap(), None)
    }

    fn failed_reading(object: &str) -> Incident {
        let event = serde_json::json!({
            "version": "0", "id": "e2", "detail-type": "Step Functions Execution Status Change", "source": "aws.states",
            "account": "1", "time": "2026-11-29T06:10:00Z", "region": "us-east-1", "resources": [],
            "detail": {"executionArn": "arn:aws:states:us-east-1:1:execution:thera-pipeline-prod-daily:r1",
                "stateMachineArn": "arn:aws:states:us-east-1:1:stateMachine:thera-pipeline-prod-daily",
                "name": "r1", "status": "FAILED", "error": "States.Runtime", "cause": "bad JSON"}
        });
        let diagnosis =
            Diagnosis { object: Some(object.into()), error: Some("States.Runtime".into()), ..Diagnosis::default() };
        Incident::new(Event::parse(&event.to_string()).unwrap(), Some(diagnosis))
    }

    #[test]
    fn an_empty_object_gets_its_newest_earlier_non_empty_version_written_before_the_failure() {
        let versions = [
            version("v4", "2026-11-29T05:58:00Z", 0),
            version("v3", "2026-11-29T05:00:00Z", 0),
            version("v2", "2026-11-28T05:00:00Z", 1200),
            version("v1", "2026-11-27T05:00:00Z", 1100),
        ];
        let incident = created_empty("2026-11-29T05:58:02Z");
        match copy_back_choice(&versions, &[CopyBackWhen::Empty], &incident, ARN) {
            CopyBack::Copy { replaced, from, why } => {
                assert_eq!((replaced.version_id.as_str(), from.version_id.as_str()), ("v4", "v2"));
                assert_eq!(why, "is empty");
            }
            other => panic!("{other:?}"),
        }
        // Without the policy's word, an object that exists is never overwritten.
        assert!(matches!(copy_back_choice(&versions, &[], &incident, ARN), CopyBack::Keep(_)));
        // A run that failed elsewhere does not make this object unusable.
        assert!(matches!(copy_back_choice(&versions, &[CopyBackWhen::ReadFailed], &incident, ARN), CopyBack::Keep(_)));
    }

    #[test]
    fn never_over_a_version_written_after_the_failure_nor_from_a_newer_one() {
        let incident = created_empty("2026-11-29T05:58:02Z");
        // Someone wrote a new version after the event: it is left alone.
        let rewritten = [version("v5", "2026-11-29T06:30:00Z", 0), version("v2", "2026-11-28T05:00:00Z", 1200)];
        match copy_back_choice(&rewritten, &[CopyBackWhen::Empty], &incident, ARN) {
            CopyBack::Keep(why) => assert!(why.contains("written after the incident"), "{why}"),
            other => panic!("{other:?}"),
        }
        // The only non-empty versions are below... none: refused, saying what was looked at.
        let only_empty = [version("v4", "2026-11-29T05:58:00Z", 0), version("v3", "2026-11-29T05:00:00Z", 0)];
        match copy_back_choice(&only_empty, &[CopyBackWhen::Empty], &incident, ARN) {
            CopyBack::Refuse(why) => {
                assert!(why.contains("no earlier non-empty version written before the failure"), "{why}");
                assert!(why.contains("1 earlier version(s) looked at"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        // A folder marker is not data.
        let folder = "arn:aws:s3:::thera-pipeline-data/thera-pipeline/apollo/";
        assert!(matches!(copy_back_choice(&only_empty, &[CopyBackWhen::Empty], &incident, folder), CopyBack::Keep(_)));
        // A `null` version among them: a copy in a suspended bucket would replace it.
        let with_null = [version("v4", "2026-11-29T05:58:00Z", 0), version("null", "2026-11-20T05:00:00Z", 900)];
        match copy_back_choice(&with_null, &[CopyBackWhen::Empty], &incident, ARN) {
            CopyBack::Refuse(why) => assert!(why.contains("`null` version"), "{why}"),
            other => panic!("{other:?}"),
        }
        // An unversioned bucket: nothing to copy back from.
        let unversioned = [version("null", "2026-11-29T05:58:00Z", 0)];
        match copy_back_choice(&unversioned, &[CopyBackWhen::Empty], &incident, ARN) {
            CopyBack::Refuse(why) => assert!(why.contains("not versioned"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_run_that_failed_reading_the_object_makes_it_unusable_when_the_policy_says_so() {
        let versions = [version("v3", "2026-11-29T05:00:00Z", 900), version("v2", "2026-11-28T05:00:00Z", 1200)];
        let incident = failed_reading(ARN);
        match copy_back_choice(&versions, &[CopyBackWhen::ReadFailed], &incident, ARN) {
            CopyBack::Copy { from, why, .. } => {
                assert_eq!(from.version_id, "v2");
                assert_eq!(why, "failed the run that read it");
            }
            other => panic!("{other:?}"),
        }
        // Not empty: `empty` alone keeps it.
        assert!(matches!(copy_back_choice(&versions, &[CopyBackWhen::Empty], &incident, ARN), CopyBack::Keep(_)));
        // A run that failed reaching the object, or for its own reasons, says nothing
        // about the content.
        let mut oom = failed_reading(ARN);
        oom.diagnosis.as_mut().unwrap().error = Some("Runtime.OutOfMemory".into());
        assert!(matches!(copy_back_choice(&versions, &[CopyBackWhen::ReadFailed], &oom, ARN), CopyBack::Keep(_)));
        let mut throttled = failed_reading(ARN);
        throttled.diagnosis.as_mut().unwrap().error = Some("S3.SlowDownException".into());
        assert!(matches!(copy_back_choice(&versions, &[CopyBackWhen::ReadFailed], &throttled, ARN), CopyBack::Keep(_)));
        let mut denied = failed_reading(ARN);
        denied.diagnosis.as_mut().unwrap().error = Some("S3.AccessDeniedException".into());
        assert!(matches!(copy_back_choice(&versions, &[CopyBackWhen::ReadFailed], &denied, ARN), CopyBack::Keep(_)));
        // The run failed reading another object.
        let other = failed_reading("arn:aws:s3:::thera-pipeline-data/thera-pipeline/other.json");
        assert!(matches!(copy_back_choice(&versions, &[CopyBackWhen::ReadFailed], &other, ARN), CopyBack::Keep(_)));
    }
}
