//! S3: object versions, for restoring deleted pipeline data.

use async_trait::async_trait;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::head_object::HeadObjectError;

use crate::apply::{ObjectVersion, ObjectVersions};
use crate::error::AwsError;

pub struct Objects {
    client: aws_sdk_s3::Client,
}

impl Objects {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Objects { client }
    }
}

#[async_trait]
impl ObjectVersions for Objects {
    async fn versions(&self, bucket: &str, key: &str) -> Result<Vec<ObjectVersion>, AwsError> {
        let mut all = Vec::new();
        let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let out = self
                .client
                .list_object_versions()
                .bucket(bucket)
                .prefix(key)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| AwsError::sdk("ListObjectVersions", e))?;
            for v in out.versions().iter().filter(|v| v.key() == Some(key)) {
                all.push(ObjectVersion {
                    version_id: v.version_id().unwrap_or("null").to_string(),
                    is_latest: v.is_latest().unwrap_or(false),
                    delete_marker: false,
                    last_modified: v.last_modified().map(|t| t.secs()),
                    size: v.size(),
                    etag: v.e_tag().map(str::to_string),
                });
            }
            for m in out.delete_markers().iter().filter(|m| m.key() == Some(key)) {
                all.push(ObjectVersion {
                    version_id: m.version_id().unwrap_or("null").to_string(),
                    is_latest: m.is_latest().unwrap_or(false),
                    delete_marker: true,
                    last_modified: m.last_modified().map(|t| t.secs()),
                    size: None,
                    etag: None,
                });
            }
            // Listed in key order: once a page reaches past `key`, the rest are other
            // objects (a key that is a folder's prefix would otherwise page through the
            // whole folder).
            let past = |k: Option<&str>| k.is_some_and(|k| k > key);
            let beyond =
                out.versions().iter().any(|v| past(v.key())) || out.delete_markers().iter().any(|m| past(m.key()));
            if out.is_truncated() != Some(true) || beyond {
                break;
            }
            key_marker = out.next_key_marker().map(str::to_string);
            version_marker = out.next_version_id_marker().map(str::to_string);
        }
        // Newest first: the latest, then by time.
        all.sort_by(|a, b| b.is_latest.cmp(&a.is_latest).then(b.last_modified.cmp(&a.last_modified)));
        Ok(all)
    }

    async fn delete_version(&self, bucket: &str, key: &str, version_id: &str) -> Result<(), AwsError> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .version_id(version_id)
            .send()
            .await
            .map_err(|e| AwsError::sdk("DeleteObject", e))?;
        Ok(())
    }

    async fn delete_current(&self, bucket: &str, key: &str) -> Result<(), AwsError> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| AwsError::sdk("DeleteObject", e))?;
        Ok(())
    }

    async fn copy_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        if_current_etag: Option<&str>,
    ) -> Result<Option<String>, AwsError> {
        // The copy source is URL-encoded, as S3 requires for keys with special characters.
        let source = format!("{bucket}/{}?versionId={}", encode(key), encode(version_id));
        let sent = self
            .client
            .copy_object()
            .bucket(bucket)
            .key(key)
            .copy_source(source)
            .set_if_match(if_current_etag.map(str::to_string))
            .send()
            .await;
        match sent {
            Ok(out) => Ok(Some(out.version_id().unwrap_or("null").to_string())),
            // The current object is no longer the one read: written meanwhile.
            // 412: the ETag no longer matches. (409, a concurrent write in flight, is an
            // error the SDK's caller may retry.)
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 412 => Ok(None),
            Err(e) => Err(AwsError::sdk("CopyObject", e)),
        }
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<Option<String>, AwsError> {
        match self.client.head_object().bucket(bucket).key(key).send().await {
            Ok(out) => Ok(Some(out.version_id().unwrap_or("null").to_string())),
            Err(SdkError::ServiceError(e)) if matches!(e.err(), HeadObjectError::NotFound(_)) => Ok(None),
            Err(e) => Err(AwsError::sdk("HeadObject", e)),
        }
    }
}

/// Percent-encodes everything but unreserved characters and `/`.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
