//! Test and demo harness: the moto server on a free loopback port, a miniature Thera
//! pipeline built on it through the real AWS SDK, and the `remediator` binary run
//! against it.
//!
//! The emulator runs as a child process whose standard input we hold: when this process
//! ends for any reason (test end, panic, Ctrl-C, kill), the pipe closes and the server
//! exits. `Drop` also kills it explicitly.
#![allow(dead_code)]

pub mod fault_proxy;
pub mod runtime_api;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde_json::{json, Value};

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";
pub const STATE_MACHINE: &str = "thera-pipeline-prod-daily";
pub const FUNCTION: &str = "thera-pipeline-prod-apollo-delta-pull";
pub const RULES: [&str; 2] = ["thera-pipeline-daily-rule", "thera-pipeline-weekly-rule"];
pub const BUCKET: &str = "thera-pipeline-data";
pub const QUOTA_TABLE: &str = "thera-pipeline-prod-quota";
pub const STATE_TABLE: &str = "remediator-state";
pub const TOPIC: &str = "remediator-summaries";
/// A secret seeded into every execution's input: it must never come out anywhere.
pub const SEEDED_SECRET: &str = "sk-live-SEEDED-4f9a8b7c6d5e";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The moto server, running until dropped.
pub struct Emulator {
    child: Child,
    _stdin: ChildStdin,
    pub endpoint: String,
}

impl Emulator {
    pub fn start() -> Emulator {
        let python = std::env::var("REMEDIATOR_EMULATOR_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|_| workspace().join(".venv/bin/python"));
        assert!(
            python.exists(),
            "the emulator is not installed at {}: run `make emulator` (or `make test`)",
            python.display()
        );
        let mut child = Command::new(&python)
            .arg(workspace().join("tests/moto_server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", python.display()));
        let stdin = child.stdin.take().expect("piped");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("reading the emulator's port");
        let port: u16 = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the emulator did not start: {line:?}"));
        Emulator { child, _stdin: stdin, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// The emulator's process id (for its CPU time in benchmarks).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn sdk(&self) -> SdkConfig {
        self.sdk_via(&self.endpoint)
    }

    /// SDK configuration reaching AWS through `endpoint` (a proxy).
    pub fn sdk_via(&self, endpoint: &str) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_sfn::config::SharedCredentialsProvider::new(
                aws_sdk_sfn::config::Credentials::new("test", "test", None, None, "harness"),
            ))
            .build()
    }

    /// The environment the `remediator` binary runs with.
    pub fn env(&self) -> Vec<(String, String)> {
        self.env_via(&self.endpoint)
    }

    /// The environment with AWS reached through `endpoint` (a fault proxy).
    pub fn env_via(&self, endpoint: &str) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("REMEDIATOR_TABLE", STATE_TABLE),
            // Tests count summaries one by one; the digest test sets its own window.
            ("REMEDIATOR_DIGEST_WINDOW", "0s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("REMEDIATOR_TOPIC_ARN".to_string(), topic_arn())])
        .collect()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn topic_arn() -> String {
    format!("arn:aws:sns:{REGION}:{ACCOUNT}:{TOPIC}")
}

pub fn execution_arn(name: &str) -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT}:execution:{STATE_MACHINE}:{name}")
}

/// The state machine: a Choice routes by job; the Apollo pull "fails" with a throttling
/// error while the quota table says so (an SDK-integration task reads it), and the
/// Firecrawl pull fails with an invalid API key. The emulator runs no function code, so
/// those failing steps are Fail states that carry the real error and cause.
///
/// The two timeouts are real Lambda tasks. `apollo-full` invokes the function with work
/// that takes an hour (`simulatedRunSeconds`): the emulated Lambda stops it at the
/// function's configured timeout, and Step Functions records `TaskFailed` with
/// `Sandbox.Timedout` and "Task timed out after 300.00 seconds" (tests/moto_server.py),
/// the function's own timeout. `apollo-export` invokes it with a task token and waits
/// for a callback that never comes within the state's `TimeoutSeconds` of 1 s:
/// `TaskTimedOut`, the state's timeout, not the function's.
fn definition() -> String {
    json!({
        "Comment": "Miniature Thera pipeline for remediator's tests and demo",
        "StartAt": "Route",
        "States": {
            "Route": {"Type": "Choice", "Choices": [
                {"Variable": "$.job", "StringEquals": "firecrawl", "Next": "PullFirecrawl"},
                {"Variable": "$.job", "StringEquals": "apollo-full", "Next": "PullApolloFull"},
                {"Variable": "$.job", "StringEquals": "apollo-export", "Next": "ExportApollo"},
                {"Variable": "$.job", "StringEquals": "transform", "Next": "ReadApolloExport"},
                {"Variable": "$.job", "StringEquals": "backfill", "Next": "Backfill"}
            ], "Default": "CheckApolloQuota"},
            // A long run: still running when an emergency stop comes.
            "Backfill": {"Type": "Wait", "Seconds": 900, "End": true},
            // Reads the last Apollo export: fails with s3.NoSuchKeyException when it is
            // missing (deleted: a delete marker hides it).
            "ReadApolloExport": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                "Parameters": {"Bucket": BUCKET, "Key": "thera-pipeline/apollo/latest.json"}, "ResultPath": null, "End": true},
            // The function runs out of its own time: the work needs longer than any
            // timeout it can have (900 s at most).
            "PullApolloFull": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": FUNCTION, "Payload": {"since.$": "$.since", "simulatedRunSeconds": 3600}}, "End": true},
            // The state runs out of its own time: the function is invoked, and the task
            // waits for a callback that never comes within its 1 s TimeoutSeconds.
            "ExportApollo": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": FUNCTION, "Payload": {"token.$": "$$.Task.Token"}}, "TimeoutSeconds": 1, "End": true},
            "CheckApolloQuota": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:dynamodb:getItem",
                "Parameters": {"TableName": QUOTA_TABLE, "Key": {"pk": {"S": "apollo"}}}, "ResultPath": "$.quota", "Next": "Throttled?"},
            "Throttled?": {"Type": "Choice", "Choices": [{"Variable": "$.quota.Item.state.S", "StringEquals": "throttled", "Next": "PullApolloDelta"}], "Default": "Done"},
            "PullApolloDelta": {"Type": "Fail", "Error": "Lambda.TooManyRequestsException",
                "Cause": "Rate Exceeded. (Service: Lambda, Status Code: 429, Request ID: 7b1c9e2a-3f4d-4c5b-8a6e-9d0f1a2b3c4d)"},
            "PullFirecrawl": {"Type": "Fail", "Error": "HTTPError", "Cause": "401 Unauthorized: Invalid API key for api.firecrawl.dev"},
            "Done": {"Type": "Succeed"}
        }
    })
    .to_string()
}

/// The miniature Thera pipeline and remediator's table and topic, on the emulator.
pub struct Pipeline {
    pub sdk: SdkConfig,
    pub sfn: aws_sdk_sfn::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub state_machine_arn: String,
    pub queue_url: String,
}

impl Pipeline {
    pub async fn create(emulator: &Emulator, remediator: &Path) -> Pipeline {
        let sdk = emulator.sdk();
        let iam = aws_sdk_iam::Client::new(&sdk);
        let role = iam
            .create_role()
            .role_name("thera-pipeline-prod-role")
            .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
            .send()
            .await
            .expect("CreateRole");
        let role_arn = role.role().expect("role").arn().to_string();

        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        ddb.create_table()
            .table_name(QUOTA_TABLE)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().unwrap())
            .send()
            .await
            .expect("CreateTable quota");
        let _ = AttributeValue::S(String::new());

        let lambda = aws_sdk_lambda::Client::new(&sdk);
        lambda
            .create_function()
            .function_name(FUNCTION)
            .runtime(aws_sdk_lambda::types::Runtime::Python312)
            .role(&role_arn)
            .handler("app.handler")
            .timeout(300)
            .memory_size(512)
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(aws_sdk_lambda::primitives::Blob::new(dummy_zip()))
                    .build(),
            )
            .send()
            .await
            .expect("CreateFunction");

        let events = aws_sdk_eventbridge::Client::new(&sdk);
        for (rule, cron) in RULES.iter().zip(["cron(0 6 * * ? *)", "cron(0 7 ? * MON *)"]) {
            events.put_rule().name(*rule).schedule_expression(cron).send().await.expect("PutRule");
        }

        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
        s3.create_bucket().bucket(BUCKET).send().await.expect("CreateBucket");
        s3.put_bucket_versioning()
            .bucket(BUCKET)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("PutBucketVersioning");
        s3.put_object()
            .bucket(BUCKET)
            .key("thera-pipeline/apollo/latest.json")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"{\"contacts\": 1200}"))
            .send()
            .await
            .expect("PutObject");

        let sfn = aws_sdk_sfn::Client::new(&sdk);
        let sm = sfn
            .create_state_machine()
            .name(STATE_MACHINE)
            .definition(definition())
            .role_arn(&role_arn)
            .send()
            .await
            .expect("CreateStateMachine");

        // remediator's own table and topic, the way a user creates them.
        let out = run(remediator, emulator, &["bootstrap"], None);
        assert!(out.status.success(), "bootstrap failed: {}", String::from_utf8_lossy(&out.stderr));

        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue_url = sqs
            .create_queue()
            .queue_name("summary-inbox")
            .send()
            .await
            .expect("CreateQueue")
            .queue_url()
            .unwrap()
            .to_string();
        let queue_arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:summary-inbox");
        aws_sdk_sns::Client::new(&sdk)
            .subscribe()
            .topic_arn(topic_arn())
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .expect("Subscribe");

        // The schedules start the pipeline as the Thera rules do: the daily one with an
        // input transformer (the fire time goes into the run), the weekly one with a
        // constant input.
        let daily = aws_sdk_eventbridge::types::Target::builder()
            .id("pipeline")
            .arn(sm.state_machine_arn())
            .role_arn(&role_arn)
            .input_transformer(
                aws_sdk_eventbridge::types::InputTransformer::builder()
                    .input_paths_map("fired", "$.time")
                    .input_template(
                        r#"{"job": "apollo-delta", "since": <fired>, "label": "<aws.events.rule-name> at <fired>"}"#,
                    )
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let weekly = aws_sdk_eventbridge::types::Target::builder()
            .id("pipeline")
            .arn(sm.state_machine_arn())
            .role_arn(&role_arn)
            .input(r#"{"job": "apollo-delta", "since": "last-week"}"#)
            .build()
            .unwrap();
        for (rule, target) in RULES.iter().zip([daily, weekly]) {
            events.put_targets().rule(*rule).targets(target).send().await.expect("PutTargets");
        }

        let pipeline =
            Pipeline { sfn, ddb, sqs, state_machine_arn: sm.state_machine_arn().to_string(), queue_url, sdk };
        pipeline.set_apollo_quota("ok").await;
        pipeline
    }

    /// Sets what the Apollo quota check sees: `throttled` makes the pull fail.
    pub async fn set_apollo_quota(&self, state: &str) {
        use aws_sdk_dynamodb::types::AttributeValue;
        self.ddb
            .put_item()
            .table_name(QUOTA_TABLE)
            .item("pk", AttributeValue::S("apollo".into()))
            .item("state", AttributeValue::S(state.into()))
            .send()
            .await
            .expect("PutItem quota");
    }

    /// Starts an execution of `job` (`apollo-delta`, `apollo-full`, `apollo-export` or
    /// `firecrawl`) with a seeded secret in its input, and waits until it stops.
    pub async fn run_execution(&self, name: &str, job: &str) -> String {
        let input = json!({"job": job, "since": "2026-11-28", "apollo_api_key": SEEDED_SECRET}).to_string();
        let arn = self
            .sfn
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input)
            .send()
            .await
            .expect("StartExecution")
            .execution_arn()
            .to_string();
        self.wait(&arn).await;
        arn
    }

    /// Starts an execution without waiting for it.
    pub async fn start_execution(&self, name: &str, job: &str) -> String {
        let input = json!({"job": job, "since": "2026-11-28", "apollo_api_key": SEEDED_SECRET}).to_string();
        self.sfn
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input)
            .send()
            .await
            .expect("StartExecution")
            .execution_arn()
            .to_string()
    }

    /// Waits until an execution is no longer running; returns its status.
    pub async fn wait(&self, arn: &str) -> String {
        for _ in 0..100 {
            let out = self.sfn.describe_execution().execution_arn(arn).send().await.expect("DescribeExecution");
            if out.status().as_str() != "RUNNING" {
                return out.status().as_str().to_string();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{arn} still running");
    }

    /// The EventBridge status-change event for an execution, built from
    /// `DescribeExecution` (the emulator emits none): the current shape, or the 2022
    /// shape without error, cause and redrive fields.
    pub async fn status_event(&self, arn: &str, legacy: bool) -> Value {
        let out = self.sfn.describe_execution().execution_arn(arn).send().await.expect("DescribeExecution");
        let mut detail = json!({
            "executionArn": arn,
            "stateMachineArn": out.state_machine_arn(),
            "name": out.name().unwrap_or_default(),
            "status": out.status().as_str(),
            "startDate": out.start_date().secs() * 1000,
            "stopDate": out.stop_date().map(|d| d.secs() * 1000),
            "input": out.input(),
            "inputDetails": {"included": true},
            "output": null,
            "outputDetails": null,
        });
        if !legacy {
            detail["error"] = json!(out.error());
            detail["cause"] = json!(out.cause());
            detail["redriveCount"] = json!(out.redrive_count().unwrap_or(0));
            detail["redriveStatus"] = json!(out.redrive_status().map(|s| s.as_str()).unwrap_or("REDRIVABLE"));
        }
        json!({
            "version": "0",
            "id": format!("evt-{}", &arn[arn.rfind(':').unwrap() + 1..]),
            "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states",
            "account": ACCOUNT,
            "time": out.stop_date().map(|d| d.fmt(aws_sdk_sfn::primitives::DateTimeFormat::DateTime).unwrap()),
            "region": REGION,
            "resources": [arn],
            "detail": detail,
        })
    }

    /// Executions of the state machine, by name.
    pub async fn execution_names(&self) -> Vec<String> {
        let out =
            self.sfn.list_executions().state_machine_arn(&self.state_machine_arn).send().await.expect("ListExecutions");
        let mut names: Vec<String> = out.executions().iter().map(|e| e.name().to_string()).collect();
        names.sort();
        names
    }

    /// Summaries delivered to the SQS subscriber: (subject, message, attributes).
    pub async fn summaries(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for _ in 0..3 {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("ReceiveMessage");
            let messages = received.messages();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let envelope: Value = serde_json::from_str(m.body().unwrap_or("{}")).expect("SNS envelope");
                out.push(envelope);
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .expect("DeleteMessage");
            }
        }
        out
    }

    /// The incident's item in the state table, as JSON.
    pub async fn incident_item(&self, key: &str) -> Option<Value> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let out = self
            .ddb
            .get_item()
            .table_name(STATE_TABLE)
            .key("pk", AttributeValue::S(format!("INCIDENT#{key}")))
            .key("sk", AttributeValue::S("INCIDENT".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem");
        out.item().map(remediator::aws::dynamodb::item_to_json)
    }

    /// Every item of the state table.
    pub async fn state_items(&self) -> Vec<Value> {
        let out = self.ddb.scan().table_name(STATE_TABLE).send().await.expect("Scan");
        out.items().iter().map(remediator::aws::dynamodb::item_to_json).collect()
    }
}

impl Pipeline {
    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(&self.sdk)
    }

    pub fn events(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.sdk)
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&self.sdk).force_path_style(true).build())
    }

    /// The function's (timeout, memory).
    pub async fn function_settings(&self) -> (i32, i32) {
        let c = self
            .lambda()
            .get_function_configuration()
            .function_name(FUNCTION)
            .send()
            .await
            .expect("GetFunctionConfiguration");
        (c.timeout().unwrap(), c.memory_size().unwrap())
    }

    pub async fn rule_state(&self, rule: &str) -> String {
        let r = self.events().describe_rule().name(rule).send().await.expect("DescribeRule");
        r.state().unwrap().as_str().to_string()
    }

    /// Disables a rule and returns the CloudTrail "AWS API Call" event that records it.
    pub async fn disable_rule(&self, rule: &str) -> Value {
        self.disable_rule_at(rule, &now_rfc3339()).await
    }

    /// Disables a rule and returns the CloudTrail event of a `DisableRule` call made at
    /// `at` (a call whose event is handled later: the rule missed its fires since).
    pub async fn disable_rule_at(&self, rule: &str, at: &str) -> Value {
        self.events().disable_rule().name(rule).send().await.expect("DisableRule");
        json!({
            "version": "0", "id": format!("ct-disable-{rule}"), "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.events", "account": ACCOUNT, "time": at, "region": REGION, "resources": [],
            "detail": {
                "eventVersion": "1.08", "eventSource": "events.amazonaws.com", "eventName": "DisableRule", "eventTime": at,
                "awsRegion": REGION, "userIdentity": {"type": "AssumedRole", "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/ops/maria")},
                "requestParameters": {"name": rule}, "responseElements": null, "eventType": "AwsApiCall"
            }
        })
    }

    /// Deletes an object (a delete marker in the versioned bucket) and returns the S3
    /// "Object Deleted" event.
    pub async fn delete_object(&self, key: &str) -> Value {
        self.s3().delete_object().bucket(BUCKET).key(key).send().await.expect("DeleteObject");
        json!({
            "version": "0", "id": format!("s3-deleted-{}", key.replace('/', "-")), "detail-type": "Object Deleted",
            "source": "aws.s3", "account": ACCOUNT, "time": now_rfc3339(), "region": REGION,
            "resources": [format!("arn:aws:s3:::{BUCKET}")],
            "detail": {"version": "0", "bucket": {"name": BUCKET}, "object": {"key": key, "sequencer": "0066"},
                "request-id": "R1", "requester": ACCOUNT, "reason": "DeleteObject", "deletion-type": "Delete Marker Created"}
        })
    }

    /// Writes `body` over an object (a new version in the versioned bucket) and returns
    /// the S3 "Object Created" event.
    pub async fn overwrite_object(&self, key: &str, body: &'static [u8]) -> Value {
        self.s3()
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(body))
            .send()
            .await
            .expect("PutObject");
        json!({
            "version": "0", "id": format!("s3-created-{}-{}", key.replace('/', "-"), body.len()), "detail-type": "Object Created",
            "source": "aws.s3", "account": ACCOUNT, "time": now_rfc3339(), "region": REGION,
            "resources": [format!("arn:aws:s3:::{BUCKET}")],
            "detail": {"version": "0", "bucket": {"name": BUCKET}, "object": {"key": key, "size": body.len(), "sequencer": "0077"},
                "request-id": "R2", "requester": ACCOUNT, "reason": "PutObject"}
        })
    }

    pub async fn object_body(&self, key: &str) -> Option<String> {
        let out = self.s3().get_object().bucket(BUCKET).key(key).send().await.ok()?;
        Some(String::from_utf8(out.body.collect().await.ok()?.to_vec()).unwrap())
    }

    /// An EventBridge "CloudWatch Alarm State Change" for the function's Errors alarm.
    pub fn errors_alarm_event(&self, state: &str, previous: &str) -> Value {
        json!({
            "version": "0", "id": format!("alarm-{state}"), "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch", "account": ACCOUNT, "time": now_rfc3339(), "region": REGION,
            "resources": [format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{FUNCTION}-errors")],
            "detail": {
                "alarmName": format!("{FUNCTION}-errors"),
                "state": {"value": state, "reason": "Threshold Crossed", "timestamp": now_rfc3339()},
                "previousState": {"value": previous, "reason": "Threshold Crossed", "timestamp": now_rfc3339()},
                "configuration": {"metrics": [{"id": "m1", "metricStat": {"metric": {
                    "namespace": "AWS/Lambda", "name": "Errors", "dimensions": {"FunctionName": FUNCTION}},
                    "period": 60, "stat": "Sum"}, "returnData": true}]}
            }
        })
    }
}

pub fn now_rfc3339() -> String {
    aws_sdk_sfn::primitives::DateTime::from(std::time::SystemTime::now())
        .fmt(aws_sdk_sfn::primitives::DateTimeFormat::DateTime)
        .unwrap()
}

/// The SDK as a member account's administrator has it: the emulator places what these
/// credentials create in `account` (it assumes any role).
pub async fn sdk_in(emulator: &Emulator, account: &str) -> SdkConfig {
    let central = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&emulator.endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_credential_types::Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    let role = aws_config::sts::AssumeRoleProvider::builder(format!(
        "arn:aws:iam::{account}:role/OrganizationAccountAccessRole"
    ))
    .session_name("admin")
    .configure(&central)
    .build()
    .await;
    central
        .to_builder()
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(role))
        .build()
}

/// Runs `remediator ARGS` against the emulator, with `stdin` as input.
pub fn run(remediator: &Path, emulator: &Emulator, args: &[&str], stdin: Option<&str>) -> Output {
    run_with(remediator, emulator, args, stdin, &[])
}

pub fn run_with(
    remediator: &Path,
    emulator: &Emulator,
    args: &[&str],
    stdin: Option<&str>,
    extra_env: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new(remediator);
    cmd.args(args)
        .envs(emulator.env())
        .envs(extra_env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("running {}: {e}", remediator.display()));
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("remediator output")
}

/// Parses the JSON lines remediator printed.
pub fn outcomes(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// A minimal valid zip archive holding `app.py` (stored, not compressed).
fn dummy_zip() -> Vec<u8> {
    let name = b"app.py";
    let data = b"def handler(event, context):\n    return {}\n";
    let crc = crc32(data);
    let mut z = Vec::new();
    let le16 = |v: u16| v.to_le_bytes();
    let le32 = |v: u32| v.to_le_bytes();
    z.extend_from_slice(&le32(0x04034b50));
    for v in [20u16, 0, 0, 0, 0] {
        z.extend_from_slice(&le16(v));
    }
    z.extend_from_slice(&le32(crc));
    z.extend_from_slice(&le32(data.len() as u32));
    z.extend_from_slice(&le32(data.len() as u32));
    z.extend_from_slice(&le16(name.len() as u16));
    z.extend_from_slice(&le16(0));
    z.extend_from_slice(name);
    z.extend_from_slice(data);
    let central = z.len() as u32;
    z.extend_from_slice(&le32(0x02014b50));
    for v in [20u16, 20, 0, 0, 0, 0] {
        z.extend_from_slice(&le16(v));
    }
    z.extend_from_slice(&le32(crc));
    z.extend_from_slice(&le32(data.len() as u32));
    z.extend_from_slice(&le32(data.len() as u32));
    z.extend_from_slice(&le16(name.len() as u16));
    for v in [0u16, 0, 0, 0] {
        z.extend_from_slice(&le16(v));
    }
    z.extend_from_slice(&le32(0));
    z.extend_from_slice(&le32(0));
    z.extend_from_slice(name);
    let central_len = z.len() as u32 - central;
    z.extend_from_slice(&le32(0x06054b50));
    for v in [0u16, 0, 1, 1] {
        z.extend_from_slice(&le16(v));
    }
    z.extend_from_slice(&le32(central_len));
    z.extend_from_slice(&le32(central));
    z.extend_from_slice(&le16(0));
    z
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// CPU seconds (user + system) of a process (`self` or a pid), from /proc/PID/stat
/// (fields 14 and 15, in USER_HZ: 100 on Linux). For the benchmarks.
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}
