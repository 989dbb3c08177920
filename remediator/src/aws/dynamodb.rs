//! DynamoDB: the state table where incidents are claimed and recorded.
//!
//! One item per incident: `pk = INCIDENT#<key>`, `sk = INCIDENT`. The sort key leaves
//! room for other records of the same table (pauses, circuit breakers) without a
//! migration. Items expire (TTL `expires_at`) after 90 days.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update,
};

use crate::apply::ChangeLocks;
use crate::error::AwsError;
use crate::guard::{Circuit, GuardState, GuardStore, Pause, PauseScope, CIRCUIT_THRESHOLD};
use crate::incident::IncidentKey;
use crate::record::{
    report_month, Abandoned, Claim, ClaimRequest, ClaimStatus, Completion, IncidentLog, IncidentRecord, JournalEntry,
    ReportRow, Status, SummaryState, Takeover, Verdict, REPORT_RETENTION_SECS,
};
use crate::summary::{Digests, Fold};

const RETENTION_SECS: u64 = 90 * 86400;

pub struct StateTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// Seen the marker that the guard state was moved to its shards: the earlier
    /// version's items need not be read any more (for the life of the process).
    sharded: std::sync::atomic::AtomicBool,
}

fn now() -> u64 {
    crate::clock::now().max(0) as u64
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn partition_key(key: &IncidentKey) -> String {
    format!("INCIDENT#{key}")
}

impl StateTable {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        StateTable { client, table: table.into(), sharded: std::sync::atomic::AtomicBool::new(false) }
    }

    fn key(&self, key: &IncidentKey) -> HashMap<String, AttributeValue> {
        HashMap::from([("pk".to_string(), s(partition_key(key))), ("sk".to_string(), s("INCIDENT"))])
    }

    /// Creates the table if it does not exist (for the emulator and first trials;
    /// production gets it from `infra/`). Returns whether it was created.
    pub async fn ensure(&self) -> Result<bool, AwsError> {
        match self.client.describe_table().table_name(&self.table).send().await {
            Ok(_) => return Ok(false),
            Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => {}
            Err(e) => return Err(AwsError::sdk("DescribeTable", e)),
        }
        let attr = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk").map_err(|e| AwsError::invalid("CreateTable", e.to_string()))?)
            .attribute_definitions(attr("sk").map_err(|e| AwsError::invalid("CreateTable", e.to_string()))?)
            .key_schema(key("pk", KeyType::Hash).map_err(|e| AwsError::invalid("CreateTable", e.to_string()))?)
            .key_schema(key("sk", KeyType::Range).map_err(|e| AwsError::invalid("CreateTable", e.to_string()))?)
            .send()
            .await
            .map_err(|e| AwsError::sdk("CreateTable", e))?;
        let ttl = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name("expires_at")
            .build()
            .map_err(|e| AwsError::invalid("UpdateTimeToLive", e.to_string()))?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(|e| AwsError::sdk("UpdateTimeToLive", e))?;
        Ok(true)
    }

    /// Reads an incident's item.
    pub async fn get(&self, key: &IncidentKey) -> Result<Option<IncidentRecord>, AwsError> {
        self.item(key).await?.map(record).transpose()
    }

    async fn item(&self, key: &IncidentKey) -> Result<Option<HashMap<String, AttributeValue>>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::sdk("GetItem", e))?;
        Ok(out.item().cloned())
    }
}

impl StateTable {
    /// Incidents completed at or after `since` (a scan: for history, not the hot path).
    pub async fn incidents(&self, since: i64) -> Result<Vec<IncidentRecord>, AwsError> {
        let mut items = self
            .scan_records(
                "begins_with(pk, :p) AND sk = :sk AND (completed_at >= :since OR claimed_at >= :since)",
                &[],
                vec![(":p", s("INCIDENT#")), (":sk", s("INCIDENT")), (":since", AttributeValue::N(since.to_string()))],
                "Scan (incidents)",
            )
            .await?;
        items.sort_by_key(IncidentRecord::at);
        Ok(items)
    }

    /// The incident items a filter keeps, every page of a scan (an item that does not
    /// read as a record is logged and skipped: one odd item must not stop a sweep).
    async fn scan_records(
        &self,
        filter: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
        operation: &'static str,
    ) -> Result<Vec<IncidentRecord>, AwsError> {
        let names: HashMap<String, String> = names.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let values: HashMap<String, AttributeValue> = values.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let mut records = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(filter)
                .set_expression_attribute_names((!names.is_empty()).then(|| names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::sdk(operation, e))?;
            for item in out.items() {
                match record(item.clone()) {
                    Ok(r) if !r.incident.is_empty() => records.push(r),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, operation, "skipping an incident item that does not read"),
                }
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(records)
    }

    /// Records that an incident's changes were put back, and what each undo did.
    pub async fn mark_undone(&self, key: &IncidentKey, by: &str, results: &serde_json::Value) -> Result<(), AwsError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key)))
            .update_expression("SET undone_at = :now, undone_by = :by, undo_results = :results")
            .expression_attribute_values(":now", n(now()))
            .expression_attribute_values(":by", s(by))
            .expression_attribute_values(":results", s(results.to_string()))
            .send()
            .await
            .map_err(|e| AwsError::sdk("UpdateItem (undo)", e))?;
        Ok(())
    }

    /// When the last sweep ran (Unix seconds).
    pub async fn last_sweep(&self) -> Result<Option<i64>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s("SWEEP"))
            .key("sk", s("LAST"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::sdk("GetItem (sweep)", e))?;
        Ok(out.item().and_then(|i| i.get("at")).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()))
    }

    pub async fn set_last_sweep(&self, at: i64) -> Result<(), AwsError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("SWEEP"))
            .item("sk", s("LAST"))
            .item("at", AttributeValue::N(at.to_string()))
            .send()
            .await
            .map_err(|e| AwsError::sdk("PutItem (sweep)", e))?;
        Ok(())
    }
}

/// Converts an item to JSON for display and tests (keys sorted).
pub fn item_to_json(item: &HashMap<String, AttributeValue>) -> serde_json::Value {
    serde_dynamo::from_item(item.clone()).unwrap_or_else(|e| serde_json::json!({"unreadable item": e.to_string()}))
}

#[async_trait]
impl IncidentLog for StateTable {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, AwsError> {
        let now = now();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(&request.key)))
            // New, released by a handling that failed, a lease that ran out, or the same owner
            // again (its earlier attempt is over: one owner handles one event at a time).
            .condition_expression(
                "attribute_not_exists(pk) OR #status = :released OR #status = :legacy_failed \
                 OR (#status = :in_progress AND (lease_until < :now OR #owner = :owner))",
            )
            .update_expression(
                "SET #status = :in_progress, #owner = :owner, lease_until = :lease, claimed_at = :now, \
                 event_id = :event, event_source = :source, expires_at = :expires, incident = :incident, \
                 input_hash = :hash, stored_event = :stored ADD deliveries :one",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":released", s(Status::Released.as_str()))
            .expression_attribute_values(":legacy_failed", s("FAILED"))
            .expression_attribute_values(":owner", s(&request.owner))
            .expression_attribute_values(":lease", AttributeValue::N(request.lease_until.to_string()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":event", s(&request.event_id))
            .expression_attribute_values(":source", s(&request.source))
            .expression_attribute_values(":expires", n(now + RETENTION_SECS))
            .expression_attribute_values(":incident", s(request.key.as_str()))
            .expression_attribute_values(":hash", s(&request.input_hash))
            .expression_attribute_values(":stored", s(request.event.to_string()))
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(out) => {
                // A takeover: the item existed, released or with a lease that ran out.
                let takeover = match out.attributes() {
                    Some(old) if !old.is_empty() => {
                        // The claim is ours now: an item that does not read must not undo that.
                        let old = record(old.clone()).unwrap_or_else(|e| {
                            tracing::warn!(incident = %request.key, error = %e, "taking over an unreadable claim");
                            IncidentRecord::default()
                        });
                        Some(Takeover {
                            previous_owner: old.owner.clone(),
                            journal: old.journal_entries(),
                            earlier_claims: old.deliveries,
                        })
                    }
                    _ => None,
                };
                return Ok(Claim::Claimed { takeover });
            }
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                match e.err() {
                    UpdateItemError::ConditionalCheckFailedException(c) => c.item().cloned(),
                    _ => None,
                }
            }
            Err(e) => return Err(AwsError::sdk("UpdateItem (claim)", e)),
        };
        // Servers that do not return the old item: read it.
        let old = match old {
            Some(item) => item,
            None => self.item(&request.key).await?.unwrap_or_default(),
        };
        let old = record(old)?;
        if old.status == ClaimStatus::InProgress {
            return Ok(Claim::InProgress { owner: old.owner, lease_until: old.lease_until });
        }
        Ok(Claim::Done {
            outcome: old.outcome_json(),
            owed_summary: old.owed_summary(now as i64),
            input_hash: old.input_hash,
        })
    }

    async fn journal(&self, key: &IncidentKey, owner: &str, entry: &JournalEntry) -> Result<(), AwsError> {
        let entry =
            serde_json::to_string(entry).map_err(|e| AwsError::invalid("UpdateItem (journal)", e.to_string()))?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key)))
            .condition_expression("#owner = :owner AND #status = :in_progress")
            .update_expression("SET journal = list_append(if_not_exists(journal, :empty), :entry)")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":entry", AttributeValue::L(vec![s(entry)]))
            .send()
            .await
            .map_err(|e| AwsError::sdk("UpdateItem (journal)", e))?;
        Ok(())
    }

    async fn complete(&self, c: &Completion) -> Result<(), AwsError> {
        let names =
            HashMap::from([("#owner".to_string(), "owner".to_string()), ("#status".to_string(), "status".to_string())]);
        let mut values = HashMap::from([
            (":owner".to_string(), s(&c.owner)),
            (":in_progress".to_string(), s(IN_PROGRESS)),
            (":status".to_string(), s(c.status.as_str())),
            (":resolution".to_string(), s(c.resolution.as_str())),
            (":outcome".to_string(), s(c.outcome.to_string())),
            // The report row's time, so that a verdict finds the row's month.
            (":done".to_string(), n(c.report.as_ref().map_or(now(), |r| r.completed_at.max(0) as u64))),
        ]);
        let mut sets: Vec<String> =
            ["#status = :status", "resolution = :resolution", "outcome = :outcome", "completed_at = :done"]
                .map(str::to_string)
                .to_vec();
        let optional = [
            ("policy", ":policy", &c.policy),
            ("execution_arn", ":execution", &c.execution),
            ("state_machine_arn", ":state_machine", &c.state_machine),
            ("failed_state", ":state", &c.state),
            ("error_name", ":error", &c.error),
        ];
        for (attr, placeholder, value) in optional {
            if let Some(v) = value {
                sets.push(format!("{attr} = {placeholder}"));
                values.insert(placeholder.to_string(), s(v));
            }
        }
        if let Some((subject, body)) = &c.summary {
            // Its sender: the one whose record of the publish counts (`mark_summary`).
            sets.push("summary_owner = :owner".into());
            sets.push("summary_subject = :subject".into());
            sets.push("summary_body = :body".into());
            sets.push("summary_state = :summary_state".into());
            values.insert(":subject".into(), s(subject));
            values.insert(":body".into(), s(body));
            values.insert(":summary_state".into(), s(SummaryState::Sending.as_str()));
        }
        if let Some(a) = &c.approval {
            // Awaiting: only `answer_approval` moves it on, once.
            sets.push("approval_state = :approval_state".into());
            sets.push("approval_policy = :approval_policy".into());
            sets.push("approval_digest = :approval_digest".into());
            sets.push("approval_expires_at = :approval_expires_at".into());
            sets.push("approval_approvers = :approval_approvers".into());
            values.insert(":approval_state".into(), s(crate::approval::ApprovalState::Awaiting.as_str()));
            values.insert(":approval_policy".into(), s(&a.policy));
            values.insert(":approval_digest".into(), s(&a.digest));
            values.insert(":approval_expires_at".into(), AttributeValue::N(a.expires_at.to_string()));
            values.insert(":approval_approvers".into(), s(&a.approvers));
        }
        let expression = format!("SET {}", sets.join(", "));
        let condition = "#owner = :owner AND #status = :in_progress";
        if c.follow_ups.is_empty() && c.report.is_none() {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(self.key(&c.key)))
                .condition_expression(condition)
                .update_expression(expression)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .send()
                .await
                .map_err(|e| AwsError::sdk("UpdateItem (complete)", e))?;
            return Ok(());
        }
        // The completion and the records of the retries to verify, in one round trip.
        let invalid = |e: aws_sdk_dynamodb::error::BuildError| AwsError::invalid("TransactWriteItems", e.to_string());
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(&c.key)))
            .condition_expression(condition)
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(invalid)?;
        let mut request =
            self.client.transact_write_items().transact_items(TransactWriteItem::builder().update(update).build());
        if let Some(row) = &c.report {
            let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(row)
                .map_err(|e| AwsError::invalid("TransactWriteItems (report)", e.to_string()))?;
            item.insert("pk".into(), s(report_month(row.completed_at)));
            item.insert("sk".into(), s(&row.incident));
            item.insert("expires_at".into(), n((row.completed_at + REPORT_RETENTION_SECS).max(0) as u64));
            let put = Put::builder().table_name(&self.table).set_item(Some(item)).build().map_err(invalid)?;
            request = request.transact_items(TransactWriteItem::builder().put(put).build());
        }
        for run in &c.follow_ups {
            let put = Put::builder()
                .table_name(&self.table)
                .item("pk", s(format!("FOLLOWUP#{run}")))
                .item("sk", s("FOLLOWUP"))
                .item("incident", s(c.answers.as_str()))
                .item("expires_at", n(now() + RETENTION_SECS))
                .build()
                .map_err(invalid)?;
            request = request.transact_items(TransactWriteItem::builder().put(put).build());
        }
        request.send().await.map_err(|e| AwsError::sdk("TransactWriteItems (complete)", e))?;
        Ok(())
    }

    async fn completed_by(&self, key: &IncidentKey, owner: &str) -> Result<bool, AwsError> {
        let item = self.get(key).await?.unwrap_or_default();
        Ok(item.status == ClaimStatus::Completed && item.owner == owner)
    }

    async fn release(&self, key: &IncidentKey, owner: &str, note: &str) -> Result<(), AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key)))
            .condition_expression("#owner = :owner AND #status = :in_progress")
            .update_expression("SET #status = :released, released_at = :now, release_note = :note")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":released", s(Status::Released.as_str()))
            .expression_attribute_values(":now", n(now()))
            .expression_attribute_values(":note", s(note))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Completed after all, or taken over: nothing of ours to release.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(AwsError::sdk("UpdateItem (release)", e)),
        }
    }

    async fn mark_summary(&self, key: &IncidentKey, owner: &str, state: SummaryState) -> Result<(), AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key)))
            // Only while this owner is the one sending it (items from before
            // `summary_owner` was written: the claim's owner).
            .condition_expression(
                "summary_state = :sending AND (summary_owner = :owner \
                 OR (attribute_not_exists(summary_owner) AND #owner = :owner))",
            )
            .update_expression("SET summary_state = :state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":sending", s(SummaryState::Sending.as_str()))
            .expression_attribute_values(":state", s(state.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Taken over by a later delivery after this owner's lease: its record wins.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(AwsError::sdk("UpdateItem (summary)", e)),
        }
    }

    async fn take_summary(&self, key: &IncidentKey, owner: &str, lease_until: i64, now: i64) -> Result<bool, AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key)))
            .condition_expression("summary_state = :owed OR (summary_state = :sending AND lease_until < :now)")
            .update_expression(
                "SET summary_state = :sending, summary_owner = :owner, #owner = :owner, lease_until = :lease",
            )
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owed", s(SummaryState::Owed.as_str()))
            .expression_attribute_values(":sending", s(SummaryState::Sending.as_str()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":lease", AttributeValue::N(lease_until.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(AwsError::sdk("UpdateItem (take summary)", e)),
        }
    }

    async fn follow(&self, execution: &str, incident: &IncidentKey) -> Result<(), AwsError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("FOLLOWUP#{execution}")))
            .item("sk", s("FOLLOWUP"))
            .item("incident", s(incident.as_str()))
            .item("expires_at", n(now() + RETENTION_SECS))
            .send()
            .await
            .map_err(|e| AwsError::sdk("PutItem (follow-up)", e))?;
        Ok(())
    }

    async fn followed(&self, execution: &str) -> Result<Option<IncidentKey>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("FOLLOWUP#{execution}")))
            .key("sk", s("FOLLOWUP"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::sdk("GetItem (follow-up)", e))?;
        Ok(out
            .item()
            .and_then(|i| i.get("incident"))
            .and_then(|v| v.as_s().ok())
            .map(|k| IncidentKey::from_stored(k.clone())))
    }

    async fn verify(&self, incident: &IncidentKey, verdict: Verdict, execution: &str) -> Result<(), AwsError> {
        let at = now();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(incident)))
            .condition_expression("attribute_exists(pk)")
            .update_expression("SET verification = :v, verified_by = :e, verified_at = :now")
            .expression_attribute_values(":v", s(verdict.as_str()))
            .expression_attribute_values(":e", s(execution))
            .expression_attribute_values(":now", n(at))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| AwsError::sdk("UpdateItem (verification)", e))?;
        // The verdict on the incident's report row, in the month it completed.
        let Some(completed_at) = out.attributes().and_then(|a| number(a, "completed_at")) else { return Ok(()) };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(report_month(completed_at)))
            .key("sk", s(incident.as_str()))
            .condition_expression("attribute_exists(pk)")
            .update_expression("SET verdict = :v, verified_at = :now")
            .expression_attribute_values(":v", s(verdict.as_str()))
            .expression_attribute_values(":now", n(at))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // No report row (an incident completed before rows were written): nothing to add to.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(AwsError::sdk("UpdateItem (report verdict)", e)),
        }
    }

    async fn report_rows(&self, since: i64, now: i64) -> Result<Vec<ReportRow>, AwsError> {
        let mut rows = Vec::new();
        for month in report_months(since, now) {
            let mut start: Option<HashMap<String, AttributeValue>> = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :m")
                    .filter_expression("completed_at >= :since")
                    .expression_attribute_values(":m", s(&month))
                    .expression_attribute_values(":since", AttributeValue::N(since.to_string()))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| AwsError::sdk("Query (report)", e))?;
                for item in out.items() {
                    match serde_dynamo::from_item::<_, ReportRow>(item.clone()) {
                        Ok(row) => rows.push(row),
                        Err(e) => tracing::warn!(error = %e, "skipping a report row that does not read"),
                    }
                }
                match out.last_evaluated_key() {
                    Some(k) if !k.is_empty() => start = Some(k.clone()),
                    _ => break,
                }
            }
        }
        Ok(rows)
    }

    async fn record(&self, key: &IncidentKey) -> Result<Option<IncidentRecord>, AwsError> {
        self.get(key).await
    }

    async fn answer_approval(
        &self,
        key: &IncidentKey,
        state: crate::approval::ApprovalState,
        by: &str,
        reason: Option<&str>,
        at: i64,
        open_at: Option<i64>,
    ) -> Result<bool, AwsError> {
        let condition = match open_at {
            Some(_) => "approval_state = :awaiting AND approval_expires_at > :open_at",
            None => "approval_state = :awaiting",
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key)))
            .condition_expression(condition)
            .update_expression(
                "SET approval_state = :state, approval_by = :by, approval_at = :at, approval_reason = :reason",
            )
            .expression_attribute_values(":awaiting", s(crate::approval::ApprovalState::Awaiting.as_str()))
            .expression_attribute_values(":state", s(state.as_str()))
            .expression_attribute_values(":by", s(by))
            .expression_attribute_values(":at", AttributeValue::N(at.to_string()));
        update = update.expression_attribute_values(":reason", reason.map_or(AttributeValue::Null(true), s));
        if let Some(t) = open_at {
            update = update.expression_attribute_values(":open_at", AttributeValue::N(t.to_string()));
        }
        match update.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(AwsError::sdk("UpdateItem (approval)", e)),
        }
    }

    async fn approvals_due(&self, now: i64) -> Result<Vec<crate::record::DueApproval>, AwsError> {
        use crate::approval::ApprovalState;
        // A scan, as for abandoned claims: the sweep's, not the hot path's.
        let records = self
            .scan_records(
                "sk = :sk AND ((approval_state = :awaiting AND approval_expires_at <= :now) \
                 OR (approval_state = :approved AND approval_at >= :day_ago))",
                &[],
                vec![
                    (":sk", s("INCIDENT")),
                    (":awaiting", s(ApprovalState::Awaiting.as_str())),
                    (":approved", s(ApprovalState::Approved.as_str())),
                    (":now", AttributeValue::N(now.to_string())),
                    (":day_ago", AttributeValue::N((now - 86400).to_string())),
                ],
                "Scan (approvals due)",
            )
            .await?;
        Ok(records
            .into_iter()
            .map(|r| crate::record::DueApproval {
                account: r.account(),
                state: r.approval_state.unwrap_or(ApprovalState::Awaiting),
                answered_at: r.approval_at,
                key: IncidentKey::from_stored(r.incident),
            })
            .collect())
    }

    async fn abandoned(&self, now: i64) -> Result<Vec<Abandoned>, AwsError> {
        let records = self
            .scan_records(
                "sk = :sk AND lease_until < :now AND (#status = :in_progress OR summary_state = :sending)",
                &[("#status", "status")],
                vec![
                    (":sk", s("INCIDENT")),
                    (":in_progress", s(IN_PROGRESS)),
                    (":sending", s(SummaryState::Sending.as_str())),
                    (":now", AttributeValue::N(now.to_string())),
                ],
                "Scan (abandoned claims)",
            )
            .await?;
        let mut found: Vec<Abandoned> = records
            .into_iter()
            .map(|claim| Abandoned {
                event: claim.event(),
                key: IncidentKey::from_stored(claim.incident),
                owner: claim.owner,
                claimed_at: claim.claimed_at,
                lease_until: claim.lease_until,
            })
            .collect();
        found.sort_by_key(|a| a.claimed_at);
        Ok(found)
    }
}

const IN_PROGRESS: &str = "IN_PROGRESS";

/// Failed remediations of a circuit: distinct incidents (a count, in older items).
fn failures_of(item: &HashMap<String, AttributeValue>) -> u32 {
    match item.get("failed_incidents").and_then(|v| v.as_ss().ok()) {
        Some(incidents) => incidents.len() as u32,
        None => number(item, "failures").unwrap_or(0) as u32,
    }
}

fn number(item: &HashMap<String, AttributeValue>, key: &str) -> Option<i64> {
    item.get(key).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

/// The report partitions from the month of `since` to the month of `now`.
fn report_months(since: i64, now: i64) -> Vec<String> {
    let month = |t: i64| -> (i64, i64) {
        let m = report_month(t);
        let ym = m.trim_start_matches("REPORT#");
        (ym.get(..4).and_then(|y| y.parse().ok()).unwrap_or(0), ym.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1))
    };
    let (mut y, mut m) = month(since.min(now));
    let end = month(now);
    let mut out = Vec::new();
    while (y, m) <= end && out.len() < 1200 {
        out.push(format!("REPORT#{y:04}-{m:02}"));
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    out
}

/// An incident's item as its type.
fn record(item: HashMap<String, AttributeValue>) -> Result<IncidentRecord, AwsError> {
    serde_dynamo::from_item(item).map_err(|e| AwsError::invalid("reading an incident item", e.to_string()))
}

/// The guards' state, sharded so that no item collection grows with the number of
/// accounts or targets:
/// - pauses (set by people, few) in `pk = GUARD`, `sk = pause#SCOPE`, read with one
///   `Query` on that prefix;
/// - each target's changes made (`attempt#POLICY#TARGET#TIME#NANOS`, expiring after the
///   policy's window) and its circuit breaker (`circuit`) in `pk = GUARD#CIRCUIT_KEY`
///   (the target, or for executions their state machine), read with one `Query` each.
///
/// Versions before the sharding kept attempts and circuits in `pk = GUARD` too. Until
/// they are moved to their shards ([`StateTable::move_to_shards`], by `bootstrap` and
/// every sweep, which then writes the marker `sk = sharded`), they are read as well (a
/// range of that partition per target, and the circuit by its key), so an upgrade
/// neither forgets an attempt limit nor closes an open circuit.
const GUARD: &str = "GUARD";
/// The marker that the earlier version's guard items were moved to their shards.
const SHARDED: &str = "sharded";

fn shard(circuit: &str) -> String {
    format!("GUARD#{circuit}")
}

#[async_trait]
impl GuardStore for StateTable {
    async fn load(&self, now: i64, keys: &[crate::guard::GuardKey]) -> Result<GuardState, AwsError> {
        // Until the earlier version's items are known to be moved, they are read too.
        let legacy = !keys.is_empty() && !self.is_sharded().await?;
        let targets = async {
            let mut state = GuardState::default();
            let mut read: Vec<String> = Vec::new();
            // An attempt moved to its shard whose earlier copy is not deleted yet (a move
            // cut short) counts once: both copies keep the same sort key.
            let mut attempts_seen: std::collections::HashSet<String> = std::collections::HashSet::new();
            for (policy, target) in keys {
                let circuit = crate::guard::circuit_key(target);
                let earlier = format!("attempt#{policy}#{target}#");
                let first = !read.contains(&circuit);
                // Execution retries record no attempts (their count is the execution's own).
                let earlier_attempts = legacy && crate::event::ExecutionArn::parse(target).is_none();
                // The target's partition, and what an earlier version kept of it, at once.
                let (partition, legacy, old_circuit) = tokio::join!(
                    async {
                        match first {
                            true => self.query_all(&shard(&circuit), None, "Query (target guards)").await,
                            false => Ok(Vec::new()),
                        }
                    },
                    async {
                        match earlier_attempts {
                            true => self.query_all(GUARD, Some(&earlier), "Query (earlier attempts)").await,
                            false => Ok(Vec::new()),
                        }
                    },
                    async {
                        match first && legacy {
                            true => self.legacy_circuit(&circuit).await,
                            false => Ok(None),
                        }
                    }
                );
                let mut items = partition?;
                items.extend(legacy?);
                items.extend(old_circuit?);
                read.push(circuit.clone());
                for item in items {
                    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                    let sk = text("sk");
                    if sk.starts_with("attempt#") && attempts_seen.insert(sk.clone()) {
                        let at = number(&item, "at").unwrap_or(0);
                        state.attempts.entry((text("policy"), text("target"))).or_default().push(at);
                    } else if sk == "circuit" || sk.starts_with("circuit#") {
                        let open = item.get("open").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false);
                        let entry = state.circuits.entry(circuit.clone()).or_default();
                        entry.failures = entry.failures.max(failures_of(&item));
                        entry.open |= open;
                    }
                }
            }
            Ok::<_, AwsError>(state)
        };
        let (pauses, targets) = tokio::join!(self.query_all(GUARD, Some("pause#"), "Query (pauses)"), targets);
        let mut state = targets?;
        for item in pauses? {
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let sk = text("sk");
            let Some(key) = sk.strip_prefix("pause#") else { continue };
            // A scope this version does not know (a later version wrote it) fails
            // closed: it pauses everything, and says so.
            let scope = PauseScope::from_key(key).unwrap_or(PauseScope::Global);
            let until = number(&item, "until").unwrap_or(0);
            if until > now {
                state.pauses.push(Pause { scope, reason: text("reason"), until, by: text("by") });
            }
        }
        Ok(state)
    }

    async fn set_pause(&self, pause: &Pause) -> Result<(), AwsError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(GUARD))
            .item("sk", s(format!("pause#{}", pause.scope.key())))
            .item("reason", s(&pause.reason))
            .item("by", s(&pause.by))
            .item("until", AttributeValue::N(pause.until.to_string()))
            .item("created_at", n(now()))
            .item("expires_at", AttributeValue::N((pause.until + 86400).to_string()))
            .send()
            .await
            .map_err(|e| AwsError::sdk("PutItem (pause)", e))?;
        Ok(())
    }

    async fn clear_pause(&self, scope: &PauseScope) -> Result<bool, AwsError> {
        self.delete_guard(GUARD, format!("pause#{}", scope.key()), "DeleteItem (pause)").await
    }

    async fn record_attempt(&self, policy: &str, target: &str, at: i64, keep: i64) -> Result<(), AwsError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(shard(&crate::guard::circuit_key(target))))
            .item("sk", s(format!("attempt#{policy}#{target}#{at}#{}", crate::clock::now_nanos())))
            .item("policy", s(policy))
            .item("target", s(target))
            .item("at", AttributeValue::N(at.to_string()))
            .item("expires_at", AttributeValue::N((at + keep.max(3600)).to_string()))
            .send()
            .await
            .map_err(|e| AwsError::sdk("PutItem (attempt)", e))?;
        Ok(())
    }

    async fn record_failure(&self, target: &str, incident: &str) -> Result<Circuit, AwsError> {
        // A circuit from before the sharding carries its failures over (and its openness).
        let legacy = match self.is_sharded().await? {
            true => None,
            false => self.legacy_circuit(target).await?,
        };
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(shard(target)))
            .key("sk", s("circuit"))
            // A set of incidents: one incident delivered again and again counts once.
            .update_expression("ADD failed_incidents :incidents SET last_incident = :incident, updated_at = :now")
            .expression_attribute_values(":incidents", AttributeValue::Ss(vec![incident.to_string()]))
            .expression_attribute_values(":incident", s(incident))
            .expression_attribute_values(":now", n(now()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| AwsError::sdk("UpdateItem (circuit)", e))?;
        let attrs = out.attributes().cloned().unwrap_or_default();
        // Distinct incidents across both layouts (one incident in both counts once).
        let mut incidents: Vec<String> = Vec::new();
        for item in std::iter::once(&attrs).chain(legacy.as_ref()) {
            match item.get("failed_incidents") {
                Some(AttributeValue::Ss(set)) => incidents.extend(set.iter().cloned()),
                _ => incidents.extend((0..failures_of(item)).map(|i| format!("earlier-version-{i}"))),
            }
        }
        incidents.sort();
        incidents.dedup();
        let failures = (incidents.len() as u32).max(1);
        let was_open = |item: &HashMap<String, AttributeValue>| {
            item.get("open").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false)
        };
        let already_open = was_open(&attrs) || legacy.as_ref().is_some_and(was_open);
        let open = already_open || failures >= CIRCUIT_THRESHOLD;
        if open && !was_open(&attrs) {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(shard(target)))
                .key("sk", s("circuit"))
                .update_expression("SET #open = :t, opened_at = :now")
                .expression_attribute_names("#open", "open")
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .expression_attribute_values(":now", n(now()))
                .send()
                .await
                .map_err(|e| AwsError::sdk("UpdateItem (open circuit)", e))?;
        }
        Ok(Circuit { failures, open })
    }

    async fn record_success(&self, target: &str) -> Result<(), AwsError> {
        // Only a circuit that is still closed forgets its failures; an open one waits
        // for a person's `reset`.
        let mut circuits = vec![(shard(target), "circuit".to_string())];
        if !self.is_sharded().await? {
            circuits.push((GUARD.to_string(), format!("circuit#{target}")));
        }
        for (pk, sk) in circuits {
            let result = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .condition_expression("attribute_not_exists(#open) OR #open = :f")
                .expression_attribute_names("#open", "open")
                .expression_attribute_values(":f", AttributeValue::Bool(false))
                .send()
                .await;
            match result {
                Ok(_) => {}
                Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {}
                Err(e) => return Err(AwsError::sdk("DeleteItem (circuit)", e)),
            }
        }
        Ok(())
    }

    async fn migrate(&self) -> Result<usize, AwsError> {
        self.move_to_shards().await
    }

    async fn reset(&self, target: &str) -> Result<bool, AwsError> {
        let sharded = self.delete_guard(&shard(target), "circuit".into(), "DeleteItem (circuit)").await?;
        let legacy = self.delete_guard(GUARD, format!("circuit#{target}"), "DeleteItem (circuit)").await?;
        Ok(sharded || legacy)
    }
}

impl StateTable {
    async fn delete_guard(&self, pk: &str, sk: String, operation: &'static str) -> Result<bool, AwsError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| AwsError::sdk(operation, e))?;
        Ok(out.attributes().is_some_and(|a| !a.is_empty()))
    }

    /// Every item of a partition (with a sort-key prefix), read consistently.
    async fn query_all(
        &self,
        pk: &str,
        prefix: Option<&str>,
        operation: &'static str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, AwsError> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            query = match prefix {
                Some(prefix) => query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
                None => query.key_condition_expression("pk = :pk"),
            };
            let out = query.send().await.map_err(|e| AwsError::sdk(operation, e))?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(items)
    }

    /// Whether the earlier version's guard items were moved (the marker, read until seen).
    async fn is_sharded(&self) -> Result<bool, AwsError> {
        use std::sync::atomic::Ordering;
        if self.sharded.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(GUARD))
            .key("sk", s(SHARDED))
            .send()
            .await
            .map_err(|e| AwsError::sdk("GetItem (guard layout)", e))?;
        let moved = out.item().is_some();
        self.sharded.store(moved, Ordering::Relaxed);
        Ok(moved)
    }

    /// Moves the attempts and circuits an earlier version kept in the shared partition to
    /// their targets' partitions (a circuit's failures are added to any the shard has, and
    /// an open one stays open), then writes the marker. Idempotent; returns how many
    /// items were moved.
    pub async fn move_to_shards(&self) -> Result<usize, AwsError> {
        let mut moved = 0;
        for item in self.query_all(GUARD, None, "Query (guard items to move)").await? {
            let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            if sk.starts_with("attempt#") {
                let target = item.get("target").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                let mut copy = item.clone();
                copy.insert("pk".into(), s(shard(&crate::guard::circuit_key(&target))));
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(copy))
                    .send()
                    .await
                    .map_err(|e| AwsError::sdk("PutItem (moved attempt)", e))?;
            } else if let Some(circuit) = sk.strip_prefix("circuit#") {
                let incidents = match item.get("failed_incidents") {
                    Some(AttributeValue::Ss(set)) if !set.is_empty() => set.clone(),
                    _ => (0..failures_of(&item).max(1)).map(|i| format!("earlier-version-{i}")).collect(),
                };
                let mut update = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", s(shard(circuit)))
                    .key("sk", s("circuit"))
                    .update_expression("ADD failed_incidents :incidents")
                    .expression_attribute_values(":incidents", AttributeValue::Ss(incidents));
                if item.get("open").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false) {
                    update = update
                        .update_expression("ADD failed_incidents :incidents SET #open = :t")
                        .expression_attribute_names("#open", "open")
                        .expression_attribute_values(":t", AttributeValue::Bool(true));
                }
                update.send().await.map_err(|e| AwsError::sdk("UpdateItem (moved circuit)", e))?;
            } else {
                continue;
            }
            self.delete_guard(GUARD, sk, "DeleteItem (moved guard item)").await?;
            moved += 1;
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(GUARD))
            .item("sk", s(SHARDED))
            .item("at", n(now()))
            .send()
            .await
            .map_err(|e| AwsError::sdk("PutItem (guard layout)", e))?;
        self.sharded.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(moved)
    }

    /// A circuit written before the sharding (`pk = GUARD`, `sk = circuit#TARGET`).
    async fn legacy_circuit(&self, circuit: &str) -> Result<Option<HashMap<String, AttributeValue>>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(GUARD))
            .key("sk", s(format!("circuit#{circuit}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::sdk("GetItem (earlier circuit)", e))?;
        Ok(out.item().cloned())
    }
}

#[async_trait]
impl ChangeLocks for StateTable {
    async fn claim_change(
        &self,
        target: &str,
        change: &str,
        from: &str,
        incident: &str,
        hold: std::time::Duration,
    ) -> Result<bool, AwsError> {
        let now = now();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("CHANGE#{target}")))
            .item("sk", s(format!("{change}#{from}")))
            .item("incident", s(incident))
            .item("at", n(now))
            .item("hold_until", n(now + hold.as_secs()))
            .item("expires_at", n(now + RETENTION_SECS))
            // Free, ours (a takeover of the same incident), or held past its time.
            .condition_expression("attribute_not_exists(pk) OR incident = :incident OR hold_until < :now")
            .expression_attribute_values(":incident", s(incident))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) => {
                Ok(false)
            }
            Err(e) => Err(AwsError::sdk("PutItem (change lock)", e)),
        }
    }

    async fn applied_change(&self, target: &str, change: &str, from: &str, to: &str) -> Result<(), AwsError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("CHANGE#{target}")))
            .key("sk", s(format!("{change}#{from}")))
            .condition_expression("attribute_exists(pk)")
            .update_expression("SET applied_at = :now, set_to = :to")
            .expression_attribute_values(":now", n(now()))
            .expression_attribute_values(":to", s(to))
            .send()
            .await
            .map_err(|e| AwsError::sdk("UpdateItem (change applied)", e))?;
        Ok(())
    }

    async fn last_change(&self, target: &str, change: &str) -> Result<Option<i64>, AwsError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :change)")
            .expression_attribute_values(":pk", s(format!("CHANGE#{target}")))
            .expression_attribute_values(":change", s(format!("{change}#")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::sdk("Query (changes)", e))?;
        // Only changes that were applied: a claim whose raise never happened is no change.
        Ok(out.items().iter().filter_map(|i| number(i, "applied_at")).max())
    }
}

/// Digest windows live in one partition (`pk = DIGEST`, `sk` = policy|target|outcome|
/// severity|mode): a conditional put opens a window, a conditional append folds into it.
/// A window that closed keeps its lines until its digest is published: a flusher claims
/// it (a lease, so two flushers never send one twice), publishes, then deletes it; a
/// publish that fails leaves it for the next flush, and a new window never overwrites
/// one whose lines are not sent.
#[async_trait]
impl Digests for StateTable {
    async fn open_or_fold(&self, key: &str, window_secs: i64, line: &str, now: i64) -> Result<Fold, AwsError> {
        let opened = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("DIGEST"))
            .item("sk", s(key))
            .item("window_end", AttributeValue::N((now + window_secs).to_string()))
            .item("lines", AttributeValue::L(Vec::new()))
            .item("expires_at", n(now.max(0) as u64 + RETENTION_SECS))
            // A closed window may be replaced only when it carries nothing to send.
            .condition_expression("attribute_not_exists(sk) OR (window_end < :now AND size(#lines) = :zero)")
            .expression_attribute_names("#lines", "lines")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match opened {
            Ok(_) => return Ok(Fold::Opened),
            Err(SdkError::ServiceError(e)) if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) => {}
            Err(e) => return Err(AwsError::sdk("PutItem (digest)", e)),
        }
        let folded = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("DIGEST"))
            .key("sk", s(key))
            .update_expression("SET #lines = list_append(#lines, :line)")
            // Not into a window a flusher has taken: its lines are being sent.
            .condition_expression("window_end > :now AND attribute_not_exists(flusher)")
            .expression_attribute_names("#lines", "lines")
            .expression_attribute_values(":line", AttributeValue::L(vec![s(line)]))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match folded {
            Ok(out) => {
                let closes_at = out
                    .attributes()
                    .and_then(|a| a.get("window_end"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(now);
                Ok(Fold::Folded { closes_at })
            }
            // The window closed and its digest is not sent yet: this summary goes alone.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(Fold::Alone),
            Err(e) => Err(AwsError::sdk("UpdateItem (digest)", e)),
        }
    }

    async fn claim_due(&self, now: i64, owner: &str, lease_until: i64) -> Result<Vec<(String, Vec<String>)>, AwsError> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s("DIGEST"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::sdk("Query (digests)", e))?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        let mut due = Vec::new();
        for item in items {
            let window_end = number(&item, "window_end").unwrap_or(0);
            if window_end > now {
                continue;
            }
            let Some(key) = item.get("sk").and_then(|v| v.as_s().ok()).cloned() else { continue };
            let claimed = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s("DIGEST"))
                .key("sk", s(&key))
                .condition_expression(
                    "window_end = :we AND (attribute_not_exists(flusher) OR flush_until < :now OR flusher = :owner)",
                )
                .update_expression("SET flusher = :owner, flush_until = :lease")
                .expression_attribute_values(":we", AttributeValue::N(window_end.to_string()))
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .expression_attribute_values(":owner", s(owner))
                .expression_attribute_values(":lease", AttributeValue::N(lease_until.to_string()))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                .send()
                .await;
            match claimed {
                Ok(out) => {
                    let lines = out
                        .attributes()
                        .and_then(|a| a.get("lines"))
                        .and_then(|v| v.as_l().ok())
                        .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
                        .unwrap_or_default();
                    due.push((key, lines));
                }
                // Another flusher holds it, or a new window replaced it.
                Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {}
                Err(e) => return Err(AwsError::sdk("UpdateItem (claim digest)", e)),
            }
        }
        Ok(due)
    }

    async fn close(&self, key: &str, owner: &str) -> Result<(), AwsError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s("DIGEST"))
            .key("sk", s(key))
            .condition_expression("flusher = :owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(AwsError::sdk("DeleteItem (digest)", e)),
        }
    }
}

/// Emergency stops: one item per pipeline prefix (`EMERGENCY#PREFIX`), a serde type.
#[async_trait]
impl crate::emergency::StopRecords for StateTable {
    async fn load(&self, prefix: &str) -> Result<Option<crate::emergency::StopRecord>, AwsError> {
        let (pk, sk) = crate::emergency::StopRecord::key(prefix);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::sdk("GetItem (emergency stop)", e))?;
        out.item()
            .map(|item| serde_dynamo::from_item(item.clone()))
            .transpose()
            .map_err(|e| AwsError::invalid("reading an emergency stop", e.to_string()))
    }

    async fn save(&self, record: &crate::emergency::StopRecord) -> Result<(), AwsError> {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(record).map_err(|e| AwsError::invalid("PutItem (emergency stop)", e.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| AwsError::sdk("PutItem (emergency stop)", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Resolution;

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn an_incident_item_reads_as_its_record_whatever_version_wrote_it() {
        let journal = r#"{"policy":"p","action":"raise-timeout","target":"arn:f","before":{"timeout":3}}"#;
        let completed = record(item(&[
            ("pk", s("INCIDENT#k")),
            ("sk", s("INCIDENT")),
            ("incident", s("k")),
            ("status", s("COMPLETED")),
            ("owner", s("req-1")),
            ("lease_until", n(100)),
            ("claimed_at", n(50)),
            ("completed_at", n(60)),
            ("deliveries", n(2)),
            ("journal", AttributeValue::L(vec![s(journal), s("not json")])),
            ("resolution", s("remediated")),
            ("summary_state", s("sending")),
            ("summary_subject", s("subject")),
            ("summary_body", s("body")),
            ("verification", s("still-failing")),
            ("outcome", s(r#"{"actions":[{"policy":"p","action":"raise-timeout","target":"arn:f","result":"done","detail":"","before":{"timeout":3}}]}"#)),
            ("an_attribute_of_a_later_version", AttributeValue::Bool(true)),
        ]))
        .unwrap();
        assert_eq!(completed.status, ClaimStatus::Completed);
        assert_eq!(completed.resolution, Some(Resolution::Remediated));
        assert_eq!(completed.verification, Some(Verdict::StillFailing));
        assert_eq!(completed.deliveries, 2);
        assert_eq!(completed.at(), 60);
        assert_eq!(completed.journal_entries().len(), 1, "an entry that does not parse is skipped");
        assert_eq!(completed.steps()[0].result, crate::apply::StepResult::Done);
        assert!(completed.owed_summary(100).is_none(), "its sender's lease holds until 100");
        assert_eq!(completed.owed_summary(101).map(|o| o.subject), Some("subject".into()));

        let legacy = record(item(&[("incident", s("k")), ("status", s("FAILED"))])).unwrap();
        assert_eq!(legacy.status, ClaimStatus::Failed);
        assert_eq!((legacy.claimed_at, legacy.journal.len(), legacy.outcome_json()), (0, 0, None));

        // Attributes a version this one does not know wrote: each reads as unknown or
        // absent, and the rest of the incident stays readable (one odd item must not
        // wedge its incident or stop the sweep).
        let odd = record(item(&[
            ("incident", s("k")),
            ("status", s("EXPLODED")),
            ("resolution", s("teleported")),
            ("lease_until", s("not a number")),
            ("deliveries", n(3)),
            ("journal", s("not a list")),
            ("owner", s("req-9")),
        ]))
        .unwrap();
        assert_eq!(odd.status, ClaimStatus::Unknown);
        assert_eq!((odd.resolution, odd.lease_until, odd.journal.len()), (None, 0, 0));
        assert_eq!((odd.deliveries, odd.owner.as_str()), (3, "req-9"));
        assert_eq!(record(item(&[("incident", s("k"))])).unwrap().status, ClaimStatus::Unknown, "no status");
    }
}
