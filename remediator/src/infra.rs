//! The deployment, generated: `remediator template` writes `infra/template.json`, a
//! CloudFormation (SAM) template whose EventBridge rules come from the policies
//! (`remediator rules`) and whose IAM statements come from the actions' declared
//! permissions, each scoped to the allow-list's resources. Generating it keeps the
//! template, the policies and the code from drifting apart; a test fails when the
//! committed file is stale and checks that every permission an action declares is
//! granted and nothing broader is.

use serde_json::{json, Map, Value};

use crate::policy::{action_names, PolicySet};
use crate::rules::rules;

/// Permissions the service needs whatever the policies say: diagnosis, the sweep, the
/// state table and the summaries.
pub const CORE_PERMISSIONS: &[&str] = &[
    "states:DescribeExecution",
    "states:GetExecutionHistory",
    "states:ListExecutions",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "sns:Publish",
    "cloudformation:DescribeStackEvents",
];

/// The CloudFormation resource an IAM action is granted on.
fn resources_for(action: &str) -> Value {
    let service = action.split(':').next().unwrap_or_default();
    match (service, action) {
        ("states", "states:ListExecutions") => {
            json!([{"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${PipelinePrefix}*"}])
        }
        ("states", _) => json!([
            {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${PipelinePrefix}*"},
            {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${PipelinePrefix}*:*"}
        ]),
        ("lambda", _) => {
            json!([{"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${PipelinePrefix}*"}])
        }
        ("events", _) => {
            json!([{"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/${PipelinePrefix}*"}])
        }
        ("s3", "s3:ListBucketVersions") => json!([{"Fn::Sub": "arn:${AWS::Partition}:s3:::${DataBucket}"}]),
        ("s3", _) => json!([{"Fn::Sub": "arn:${AWS::Partition}:s3:::${DataBucket}/${DataPrefix}*"}]),
        ("dynamodb", _) => json!([{"Fn::GetAtt": ["StateTable", "Arn"]}]),
        ("scheduler", _) => {
            json!([{"Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/default/remediator-*"}])
        }
        ("iam", "iam:PassRole") => json!([{"Fn::GetAtt": ["SchedulerRole", "Arn"]}]),
        ("sns", _) => json!([{"Ref": "SummaryTopic"}]),
        ("cloudformation", _) => {
            json!([{"Fn::Sub": "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${PipelinePrefix}*/*"}])
        }
        _ => json!([]),
    }
}

/// Every IAM action the deployment grants: the core ones and those of every action
/// any policy uses, sorted.
pub fn granted_actions(policies: &PolicySet) -> Vec<&'static str> {
    let mut all: Vec<&'static str> = CORE_PERMISSIONS.to_vec();
    for p in policies.policies() {
        for a in &p.actions {
            all.extend_from_slice(crate::actions::permissions(a));
        }
    }
    all.sort_unstable();
    all.dedup();
    all
}

fn statements(policies: &PolicySet) -> Vec<Value> {
    // One statement per resource scope, listing the actions granted on it.
    let mut grouped: Vec<(Value, Vec<&str>)> = Vec::new();
    for action in granted_actions(policies) {
        let resources = resources_for(action);
        match grouped.iter_mut().find(|(r, _)| *r == resources) {
            Some((_, actions)) => actions.push(action),
            None => grouped.push((resources, vec![action])),
        }
    }
    let mut out: Vec<Value> = grouped
        .into_iter()
        .map(|(resources, actions)| {
            let mut statement = json!({"Effect": "Allow", "Action": actions, "Resource": resources});
            // The Scheduler role may be passed to EventBridge Scheduler and nothing else.
            if actions == ["iam:PassRole"] {
                statement["Condition"] = json!({"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}});
            }
            statement
        })
        .collect();
    // remediator never changes itself, whatever the pipeline prefix and the stack's name.
    out.push(json!({
        "Sid": "NeverChangeItself", "Effect": "Deny",
        "Action": ["lambda:UpdateFunctionConfiguration", "lambda:UpdateFunctionCode", "lambda:PutFunctionConcurrency"],
        "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-remediator"}]
    }));
    // Publishing to the KMS-encrypted topic needs the key.
    out.push(json!({"Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": [{"Fn::GetAtt": ["SummaryKey", "Arn"]}]}));
    out
}

/// The SAM template, as JSON.
pub fn template(policies: &PolicySet) -> Value {
    let mut resources = Map::new();
    let function_env = json!({
        "REMEDIATOR_TABLE": {"Ref": "StateTable"},
        "REMEDIATOR_TOPIC_ARN": {"Ref": "SummaryTopic"},
        "REMEDIATOR_DRY_RUN": {"Ref": "DryRun"},
        "REMEDIATOR_ALLOW": {"Fn::Join": [",", {"Ref": "AllowList"}]},
        "REMEDIATOR_DATA_BUCKETS": {"Ref": "DataBucket"},
        "REMEDIATOR_STATE_MACHINES": {"Fn::Join": [",", {"Ref": "StateMachineArns"}]},
        "REMEDIATOR_LOG": {"Ref": "LogLevel"},
        "REMEDIATOR_ROLE_ARN": {"Fn::GetAtt": ["RemediatorFunctionRole", "Arn"]},
        "REMEDIATOR_SELF_ARN": {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-remediator"},
        "REMEDIATOR_SCHEDULER_ROLE_ARN": {"Fn::GetAtt": ["SchedulerRole", "Arn"]},
        "REMEDIATOR_MEMBER_ACCOUNTS": {"Ref": "MemberAccounts"},
        "REMEDIATOR_MEMBER_ROLE": {"Ref": "MemberRoleName"},
        "REMEDIATOR_EXTERNAL_ID": {"Ref": "MemberExternalId"},
        // The secret's ARN, not its value: the key is read at start, never in the template.
        "REMEDIATOR_APPROVAL_SECRET": {"Fn::If": ["HasApprovalLinks", {"Ref": "ApprovalKey"}, ""]}
    });
    resources.insert("SchedulerRole".into(), json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": "EventBridge Scheduler invokes remediator when a deferred retry is due",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
            }]},
            "Policies": [{"PolicyName": "invoke-remediator", "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "lambda:InvokeFunction",
                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-remediator"}
            }]}}]
        }
    }));
    resources.insert("StateTable".into(), json!({
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": true},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": true},
            "SSESpecification": {"SSEEnabled": true, "SSEType": "KMS", "KMSMasterKeyId": {"Ref": "SummaryKey"}},
            "DeletionProtectionEnabled": true
        }
    }));
    resources.insert(
        "SummaryKey".into(),
        json!({
            "Type": "AWS::KMS::Key",
            "Properties": {
                "Description": "remediator: encrypts the summary topic and the state table",
                "EnableKeyRotation": true,
                "KeyPolicy": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Sid": "AccountAdministers", "Effect": "Allow",
                         "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                         "Action": "kms:*", "Resource": "*"},
                        {"Sid": "AlarmsPublishToTheTopic", "Effect": "Allow",
                         "Principal": {"Service": "cloudwatch.amazonaws.com"},
                         "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*"}
                    ]
                }
            }
        }),
    );
    resources.insert("SummaryTopic".into(), json!({
        "Type": "AWS::SNS::Topic",
        "Properties": {"TopicName": {"Fn::Sub": "${AWS::StackName}-summaries"}, "KmsMasterKeyId": {"Ref": "SummaryKey"}}
    }));
    resources.insert("SummarySubscription".into(), json!({
        "Type": "AWS::SNS::Subscription",
        "Condition": "HasSubscriber",
        "Properties": {"TopicArn": {"Ref": "SummaryTopic"}, "Protocol": "email", "Endpoint": {"Ref": "SubscriberEmail"}}
    }));
    resources.insert(
        "DeadLetterQueue".into(),
        json!({
            "Type": "AWS::SQS::Queue",
            "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_27", "comment": "encrypted at rest with SQS-managed SSE (SqsManagedSseEnabled), which EventBridge can write to; this check only knows KMS keys"}]}},
            // SQS-managed encryption: EventBridge can write to it (a queue under the AWS
            // managed key `alias/aws/sqs` cannot be written by EventBridge, and its
            // undeliverable events would be dropped).
            "Properties": {"MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": true}
        }),
    );
    resources.insert("DeadLetterQueuePolicy".into(), json!({
        "Type": "AWS::SQS::QueuePolicy",
        "Properties": {
            "Queues": [{"Ref": "DeadLetterQueue"}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Sid": "EventBridgeDeadLetters", "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
                "Condition": {"ArnLike": {"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/${AWS::StackName}-*"}}}
            }]}
        }
    }));
    let mut policy_statements = statements(policies);
    policy_statements.push(json!({"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": [{"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}]}));
    // The member role in the member accounts (called only for REMEDIATOR_MEMBER_ACCOUNTS;
    // each member role's trust names this function's role).
    policy_statements.push(json!({"Effect": "Allow", "Action": ["sts:AssumeRole"],
        "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/${MemberRoleName}"}]}));
    // Approval links: the signing key's secret (by name: it exists only with
    // ApprovalLinks), and the function's own URL, to put in the links.
    policy_statements.push(json!({"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
        "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${AWS::StackName}-approval-key-*"}]}));
    policy_statements.push(json!({"Effect": "Allow", "Action": ["lambda:GetFunctionUrlConfig"],
        "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-remediator"}]}));
    resources.insert("RemediatorFunction".into(), json!({
        "Type": "AWS::Serverless::Function",
        "Metadata": {"checkov": {"skip": [
            {"id": "CKV_AWS_117", "comment": "remediator calls only AWS APIs; a VPC would add NAT cost and nothing to isolate"},
            {"id": "CKV_AWS_173", "comment": "the environment holds names and ARNs, no secrets; AWS encrypts it at rest by default"}
        ]}},
        "Properties": {
            "FunctionName": {"Fn::Sub": "${AWS::StackName}-remediator"},
            "Description": "remediator: self-healing for the Thera pipeline",
            "CodeUri": "../target/lambda/remediator/bootstrap.zip",
            "Handler": "bootstrap",
            "Runtime": "provided.al2023",
            "Architectures": [{"Ref": "Architecture"}],
            "MemorySize": 256,
            "Timeout": 300,
            "ReservedConcurrentExecutions": {"Ref": "ReservedConcurrency"},
            "Tracing": "Active",
            "Environment": {"Variables": function_env},
            "DeadLetterQueue": {"Type": "SQS", "TargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}},
            "EventInvokeConfig": {
                "MaximumRetryAttempts": 2,
                "MaximumEventAgeInSeconds": 21600,
                "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}}
            },
            "Policies": [{"Version": "2012-10-17", "Statement": policy_statements}]
        }
    }));
    resources.insert("RemediatorLogGroup".into(), json!({
        "Type": "AWS::Logs::LogGroup",
        "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_158", "comment": "logs hold redacted outcomes only; the default encryption applies"}]}},
        "Properties": {"LogGroupName": {"Fn::Sub": "/aws/lambda/${RemediatorFunction}"}, "RetentionInDays": 365}
    }));
    for (i, rule) in rules(policies).iter().enumerate() {
        let id = format!("Rule{}", i + 1);
        resources.insert(
            id.clone(),
            json!({
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "Name": {"Fn::Sub": format!("${{AWS::StackName}}-{}", rule.name)},
                    "Description": format!("remediator: events for {}", rule.policies.join(", ")),
                    "EventPattern": rule.pattern,
                    "State": "ENABLED",
                    "Targets": [{
                        "Id": "remediator",
                        "Arn": {"Fn::GetAtt": ["RemediatorFunction", "Arn"]},
                        "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
                        "DeadLetterConfig": {"Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}
                    }]
                }
            }),
        );
        resources.insert(
            format!("{id}Permission"),
            json!({
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "FunctionName": {"Ref": "RemediatorFunction"},
                    "Action": "lambda:InvokeFunction",
                    "Principal": "events.amazonaws.com",
                    "SourceArn": {"Fn::GetAtt": [id, "Arn"]}
                }
            }),
        );
    }
    resources.insert(
        "SweepSchedule".into(),
        json!({
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Name": {"Fn::Sub": "${AWS::StackName}-sweep"},
                "Description": "remediator: reconcile failed executions whose events were lost",
                "ScheduleExpression": {"Ref": "SweepRate"},
                "State": "ENABLED",
                "Targets": [{
                    "Id": "remediator-sweep",
                    "Arn": {"Fn::GetAtt": ["RemediatorFunction", "Arn"]},
                    "Input": "{\"source\": \"remediator\", \"detail-type\": \"Sweep\", \"detail\": {}}"
                }]
            }
        }),
    );
    resources.insert(
        "SweepPermission".into(),
        json!({
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": {"Ref": "RemediatorFunction"},
                "Action": "lambda:InvokeFunction",
                "Principal": "events.amazonaws.com",
                "SourceArn": {"Fn::GetAtt": ["SweepSchedule", "Arn"]}
            }
        }),
    );
    let alarm = |name: &str, namespace: &str, metric: &str, dims: Value, stat: &str, description: &str| {
        json!({
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmName": {"Fn::Sub": format!("${{AWS::StackName}}-{name}")},
                "AlarmDescription": description,
                "Namespace": namespace,
                "MetricName": metric,
                "Dimensions": dims,
                "Statistic": stat,
                "Period": 300,
                "EvaluationPeriods": 1,
                "Threshold": 0,
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching",
                "AlarmActions": [{"Ref": "SummaryTopic"}],
                "OKActions": [{"Ref": "SummaryTopic"}]
            }
        })
    };
    let function_dim = json!([{"Name": "FunctionName", "Value": {"Ref": "RemediatorFunction"}}]);
    resources.insert(
        "ErrorsAlarm".into(),
        alarm(
            "errors",
            "AWS/Lambda",
            "Errors",
            function_dim.clone(),
            "Sum",
            "remediator failed to handle events (they are retried, then kept in the DLQ)",
        ),
    );
    resources.insert(
        "ThrottlesAlarm".into(),
        alarm(
            "throttles",
            "AWS/Lambda",
            "Throttles",
            function_dim,
            "Sum",
            "remediator is throttled: events wait for EventBridge's retries",
        ),
    );
    resources.insert(
        "DeadLetterAlarm".into(),
        alarm(
            "dead-letters",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            json!([{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}]),
            "Maximum",
            "events remediator could not handle are in the dead-letter queue: replay them with `remediator handle`",
        ),
    );
    resources.insert(
        "CircuitAlarm".into(),
        alarm(
            "circuits-open",
            "Remediator",
            "CircuitsOpened",
            json!([]),
            "Sum",
            "a circuit breaker opened: remediator stopped acting on a target until `remediator reset`",
        ),
    );
    resources.insert(
        "AbandonedClaimsAlarm".into(),
        alarm(
            "abandoned-claims",
            "Remediator",
            "AbandonedClaims",
            json!([]),
            "Sum",
            "a handling died after claiming an incident (timeout, out of memory, crash): the sweep took it over; look at the function's errors",
        ),
    );
    resources.insert(
        "UnrecoverableClaimsAlarm".into(),
        alarm(
            "unrecoverable-claims",
            "Remediator",
            "UnrecoverableClaims",
            json!([]),
            "Sum",
            "an incident was claimed and never completed, and kept no event to handle again: see `remediator history`",
        ),
    );
    // Human approval by link (opt-in): the signing key, generated by Secrets Manager and
    // encrypted with the stack's key, and a public function URL whose every answer needs
    // a token signed with it. Without ApprovalLinks, approvals are answered with
    // `remediator approve|reject` only.
    resources.insert("ApprovalKey".into(), json!({
        "Type": "AWS::SecretsManager::Secret",
        "Condition": "HasApprovalLinks",
        "Metadata": {"checkov": {"skip": [{"id": "CKV2_AWS_57", "comment": "rotating the key invalidates every open approval link; rotate by replacing the secret when no request is open"}]}},
        "Properties": {
            "Name": {"Fn::Sub": "${AWS::StackName}-approval-key"},
            "Description": "remediator: signs the approval links of its summaries (HMAC-SHA256)",
            "KmsKeyId": {"Ref": "SummaryKey"},
            "GenerateSecretString": {"PasswordLength": 64, "ExcludePunctuation": true}
        }
    }));
    resources.insert("ApprovalUrl".into(), json!({
        "Type": "AWS::Lambda::Url",
        "Condition": "HasApprovalLinks",
        "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_258", "comment": "a browser opens the link: every request must carry a token signed with the approval key, and a GET changes nothing"}]}},
        "Properties": {"TargetFunctionArn": {"Ref": "RemediatorFunction"}, "AuthType": "NONE"}
    }));
    resources.insert(
        "ApprovalUrlPermission".into(),
        json!({
            "Type": "AWS::Lambda::Permission",
            "Condition": "HasApprovalLinks",
            "Properties": {
                "FunctionName": {"Ref": "RemediatorFunction"},
                "Action": "lambda:InvokeFunctionUrl",
                "Principal": "*",
                "FunctionUrlAuthType": "NONE"
            }
        }),
    );
    resources.insert(
        "ApprovalUrlInvokePermission".into(),
        json!({
            "Type": "AWS::Lambda::Permission",
            "Condition": "HasApprovalLinks",
            "Properties": {
                "FunctionName": {"Ref": "RemediatorFunction"},
                "Action": "lambda:InvokeFunction",
                "Principal": "*",
                "InvokedViaFunctionUrl": true
            }
        }),
    );
    // Member accounts put their pipeline's events on this account's default bus: the
    // organization's accounts, and no one else.
    resources.insert("OrganizationBusPolicy".into(), json!({
        "Type": "AWS::Events::EventBusPolicy",
        "Condition": "HasOrganization",
        "Properties": {
            "StatementId": {"Fn::Sub": "${AWS::StackName}-organization"},
            "Statement": {
                "Sid": {"Fn::Sub": "${AWS::StackName}-organization"},
                "Effect": "Allow",
                "Principal": "*",
                "Action": "events:PutEvents",
                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"},
                "Condition": {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}}
            }
        }
    }));
    resources.insert(
        "Dashboard".into(),
        json!({
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": {
                "DashboardName": {"Fn::Sub": "${AWS::StackName}-remediations"},
                "DashboardBody": {"Fn::Sub": dashboard_body()}
            }
        }),
    );

    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": "remediator: self-healing for AWS data pipelines (generated by `remediator template`; do not edit by hand)",
        "Parameters": {
            "PipelinePrefix": {"Type": "String", "Default": "thera-pipeline-", "AllowedPattern": "^[A-Za-z0-9_-]+$",
                "Description": "Name prefix of the pipeline's state machines, functions and rules (the IAM scope)"},
            "DataBucket": {"Type": "String", "Default": "thera-pipeline-data", "Description": "Versioned bucket of the pipeline's data"},
            "DataPrefix": {"Type": "String", "Default": "thera-pipeline/", "Description": "Key prefix remediator may restore under"},
            "AllowList": {"Type": "CommaDelimitedList", "Default": "",
                "Description": "ARN patterns remediator may act on (empty: the pipeline's state machines, executions, functions and rules named thera-pipeline-*, and objects under thera-pipeline/ in DataBucket)"},
            "StateMachineArns": {"Type": "CommaDelimitedList", "Default": "", "Description": "State machines the sweep reconciles"},
            "SubscriberEmail": {"Type": "String", "Default": "", "Description": "E-mail address for summaries (empty: none)"},
            "DryRun": {"Type": "String", "Default": "false", "AllowedValues": ["true", "false"]},
            "LogLevel": {"Type": "String", "Default": "info", "AllowedValues": ["error", "warn", "info", "debug"]},
            "SweepRate": {"Type": "String", "Default": "rate(15 minutes)"},
            "Architecture": {"Type": "String", "Default": "x86_64", "AllowedValues": ["x86_64", "arm64"],
                "Description": "Must match the build (make package builds x86_64)"},
            "OrganizationId": {"Type": "String", "Default": "", "AllowedPattern": "^(o-[a-z0-9]{10,32})?$",
                "Description": "The organization whose accounts may forward events to this account's default bus (empty: none)"},
            "MemberAccounts": {"Type": "String", "Default": "", "AllowedPattern": "^(\\*|([0-9]{12}(,[0-9]{12})*))?$",
                "Description": "Member accounts remediator acts in with the member role: 12-digit ids, comma-separated, or * (empty: this account only)"},
            "MemberRoleName": {"Type": "String", "Default": "remediator-member", "AllowedPattern": "^[A-Za-z0-9+=,.@_-]{1,64}$",
                "Description": "The role the member template creates in each member account"},
            "MemberExternalId": {"Type": "String", "Default": "",
                "Description": "The external id the member roles require (empty: none)"},
            "ReservedConcurrency": {"Type": "Number", "Default": 10, "MinValue": 1, "MaxValue": 900,
                "Description": "Concurrent handlings remediator may run (its share of the Region's Lambda concurrency; see README, At scale)"},
            "ApprovalLinks": {"Type": "String", "Default": "false", "AllowedValues": ["true", "false"],
                "Description": "A public function URL and a signing key, so approval summaries carry a link (policies with approvers: anyone-with-link)"}
        },
        "Conditions": {
            "HasSubscriber": {"Fn::Not": [{"Fn::Equals": [{"Ref": "SubscriberEmail"}, ""]}]},
            "HasOrganization": {"Fn::Not": [{"Fn::Equals": [{"Ref": "OrganizationId"}, ""]}]},
            "HasApprovalLinks": {"Fn::Equals": [{"Ref": "ApprovalLinks"}, "true"]}
        },
        "Resources": resources,
        "Outputs": {
            "FunctionName": {"Value": {"Ref": "RemediatorFunction"}},
            "StateTable": {"Value": {"Ref": "StateTable"}},
            "SummaryTopicArn": {"Value": {"Ref": "SummaryTopic"}},
            "FunctionRoleArn": {"Value": {"Fn::GetAtt": ["RemediatorFunctionRole", "Arn"]},
                "Description": "The role the member roles trust (CentralRoleArn of infra/member-template.json)"},
            "DeadLetterQueueUrl": {"Value": {"Ref": "DeadLetterQueue"}},
            "ApprovalUrl": {"Condition": "HasApprovalLinks", "Value": {"Fn::GetAtt": ["ApprovalUrl", "FunctionUrl"]},
                "Description": "Where approval links point (the function URL)"}
        }
    })
}

/// The services whose resources live in the pipeline's account: what the member role
/// may change there (the state table, the topic and the timers stay central).
const MEMBER_SERVICES: &[&str] = &["states", "lambda", "events", "s3", "cloudformation"];

/// The member template, for CloudFormation StackSets across an organization: in each
/// member account, rules that forward the pipeline's events (the same patterns as the
/// central rules) to the central account's default bus, and the member role remediator
/// assumes there, trusted by the central function's role only (and the external id, when
/// given), with the same permissions on the member's pipeline as the central function has
/// on its own.
pub fn member_template(policies: &PolicySet) -> Value {
    let mut resources = Map::new();
    let member_statements: Vec<Value> = statements(policies)
        .into_iter()
        .filter(|s| s["Effect"] == "Allow")
        .filter(|s| {
            s["Action"].as_array().is_some_and(|actions| {
                actions.iter().all(|a| {
                    a.as_str().and_then(|a| a.split(':').next()).is_some_and(|svc| MEMBER_SERVICES.contains(&svc))
                })
            })
        })
        .collect();
    resources.insert("MemberRole".into(), json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": {"Ref": "MemberRoleName"},
            "Description": "remediator, from the central account, heals this account's pipeline",
            "MaxSessionDuration": 3600,
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": {"Ref": "CentralRoleArn"}},
                "Action": "sts:AssumeRole",
                "Condition": {"Fn::If": ["HasExternalId",
                    {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}, "sts:RoleSessionName": crate::triage::MEMBER_SESSION}},
                    {"StringEquals": {"sts:RoleSessionName": crate::triage::MEMBER_SESSION}}]}
            }]},
            "Policies": [{"PolicyName": "heal-the-pipeline", "PolicyDocument": {"Version": "2012-10-17", "Statement": member_statements}}]
        }
    }));
    resources.insert("ForwardRole".into(), json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": "EventBridge forwards the pipeline's events to remediator's central bus",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
            }]},
            "Policies": [{"PolicyName": "put-on-the-central-bus", "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "events:PutEvents",
                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${CentralAccountId}:event-bus/default"}
            }]}}]
        }
    }));
    for (i, rule) in rules(policies).iter().enumerate() {
        resources.insert(
            format!("Forward{}", i + 1),
            json!({
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "Name": {"Fn::Sub": format!("${{AWS::StackName}}-{}", rule.name)},
                    "Description": format!("remediator: forwards events for {} to the central account", rule.policies.join(", ")),
                    "EventPattern": rule.pattern,
                    "State": "ENABLED",
                    "Targets": [{
                        "Id": "remediator-central",
                        "Arn": {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${CentralAccountId}:event-bus/default"},
                        "RoleArn": {"Fn::GetAtt": ["ForwardRole", "Arn"]}
                    }]
                }
            }),
        );
    }
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "remediator member account: forwards the pipeline's events to the central account's bus in the same region and lets it heal them (generated by `remediator template --member`; for CloudFormation StackSets, one region per account, CAPABILITY_NAMED_IAM; do not edit by hand)",
        "Parameters": {
            "CentralAccountId": {"Type": "String", "AllowedPattern": "^[0-9]{12}$", "Description": "The account remediator runs in"},
            "CentralRoleArn": {"Type": "String", "AllowedPattern": "^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$",
                "Description": "The central function's role (the central stack's FunctionRoleArn output)"},
            "MemberRoleName": {"Type": "String", "Default": "remediator-member", "AllowedPattern": "^[A-Za-z0-9+=,.@_-]{1,64}$",
                "Description": "As the central stack's MemberRoleName"},
            "ExternalId": {"Type": "String", "Default": "", "Description": "As the central stack's MemberExternalId (empty: none)"},
            "PipelinePrefix": {"Type": "String", "Default": "thera-pipeline-", "AllowedPattern": "^[A-Za-z0-9_-]+$",
                "Description": "Name prefix of this account's pipeline resources (the member role's scope)"},
            "DataBucket": {"Type": "String", "Default": "thera-pipeline-data", "Description": "Versioned bucket of this account's pipeline data"},
            "DataPrefix": {"Type": "String", "Default": "thera-pipeline/", "Description": "Key prefix remediator may restore under"}
        },
        "Conditions": {"HasExternalId": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ExternalId"}, ""]}]}},
        "Resources": resources,
        "Outputs": {"MemberRoleArn": {"Value": {"Fn::GetAtt": ["MemberRole", "Arn"]}}}
    })
}

fn dashboard_body() -> String {
    let widget = |title: &str, metric: &str, y: u32| {
        json!({
            "type": "metric", "x": 0, "y": y, "width": 24, "height": 6,
            "properties": {
                "title": title, "region": "${AWS::Region}", "stat": "Sum", "period": 300, "view": "timeSeries",
                "metrics": [[{"expression": format!("SEARCH('{{Remediator,Policy,Outcome}} MetricName=\"{metric}\"', 'Sum', 300)"), "id": "e1"}]]
            }
        })
    };
    let body = json!({"widgets": [
        widget("Remediations by policy and outcome", "Remediations", 0),
        widget("Seconds from failure to remediation", "TimeToRemediate", 6)
    ]});
    crate::schema::sorted_value(body).to_string()
}

/// The IAM actions of every action name, for the permission test.
pub fn declared_permissions() -> Vec<(&'static str, &'static [&'static str])> {
    action_names()
        .iter()
        .filter_map(|name| {
            let text = format!("policies:\n  - {{name: x, match: {{source: [x]}}, actions: [{name}]}}\n");
            let set = PolicySet::from_sources(&[("x.yaml".into(), text)]).ok()?;
            Some((*name, crate::actions::permissions(&set.policies()[0].actions[0])))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PolicySource;

    fn granted(template: &Value) -> Vec<(String, Value)> {
        let statements = template["Resources"]["RemediatorFunction"]["Properties"]["Policies"][0]["Statement"]
            .as_array()
            .unwrap()
            .clone();
        let mut out = Vec::new();
        for s in statements {
            for a in s["Action"].as_array().unwrap() {
                out.push((a.as_str().unwrap().to_string(), s["Resource"].clone()));
            }
        }
        out
    }

    #[test]
    fn every_permission_an_action_declares_is_granted_and_nothing_broader() {
        let set = PolicySource::Bundled.load().unwrap();
        let template = template(&set);
        let granted = granted(&template);
        let names: Vec<&str> = granted.iter().map(|(a, _)| a.as_str()).collect();
        for (action, permissions) in declared_permissions() {
            let used = set.policies().iter().any(|p| p.actions.iter().any(|a| a.name() == action));
            for p in permissions.iter().filter(|_| used) {
                assert!(names.contains(p), "{action} needs {p}, which the template does not grant");
            }
        }
        for p in CORE_PERMISSIONS {
            assert!(names.contains(p), "core permission {p} missing");
        }
        for (action, resource) in &granted {
            assert!(!action.contains('*'), "wildcard action {action}");
            let text = resource.to_string();
            assert!(text != "\"*\"" && !text.contains("[\"*\"]"), "{action} is granted on every resource");
        }
        // Exactly this, written here by hand and not derived from the code that generates
        // the template: a change to the deployment's reach must change this list too.
        let mut expected: Vec<(&str, &str)> = vec![
            ("cloudformation:DescribeStackEvents", "stack/${PipelinePrefix}*/*"),
            ("dynamodb:DeleteItem", "StateTable"),
            ("dynamodb:GetItem", "StateTable"),
            ("dynamodb:PutItem", "StateTable"),
            ("dynamodb:Query", "StateTable"),
            ("dynamodb:Scan", "StateTable"),
            ("dynamodb:UpdateItem", "StateTable"),
            ("events:DescribeRule", "rule/${PipelinePrefix}*"),
            ("events:EnableRule", "rule/${PipelinePrefix}*"),
            ("events:ListTargetsByRule", "rule/${PipelinePrefix}*"),
            ("iam:PassRole", "SchedulerRole"),
            ("kms:Decrypt", "SummaryKey"),
            ("kms:GenerateDataKey", "SummaryKey"),
            ("lambda:GetFunctionConfiguration", "function:${PipelinePrefix}*"),
            ("lambda:GetFunctionUrlConfig", "function:${AWS::StackName}-remediator"),
            ("lambda:UpdateFunctionConfiguration", "function:${PipelinePrefix}*"),
            ("s3:DeleteObjectVersion", "${DataBucket}/${DataPrefix}*"),
            ("s3:GetObject", "${DataBucket}/${DataPrefix}*"),
            ("s3:GetObjectVersion", "${DataBucket}/${DataPrefix}*"),
            ("s3:ListBucketVersions", "s3:::${DataBucket}\""),
            ("s3:PutObject", "${DataBucket}/${DataPrefix}*"),
            ("scheduler:CreateSchedule", "schedule/default/remediator-*"),
            ("secretsmanager:GetSecretValue", "secret:${AWS::StackName}-approval-key-*"),
            ("sns:Publish", "SummaryTopic"),
            ("sqs:SendMessage", "DeadLetterQueue"),
            ("states:DescribeExecution", "execution:${PipelinePrefix}*:*"),
            ("states:DescribeStateMachine", "stateMachine:${PipelinePrefix}*"),
            ("states:GetExecutionHistory", "execution:${PipelinePrefix}*:*"),
            ("states:ListExecutions", "stateMachine:${PipelinePrefix}*"),
            ("states:RedriveExecution", "execution:${PipelinePrefix}*:*"),
            ("states:StartExecution", "stateMachine:${PipelinePrefix}*"),
            ("sts:AssumeRole", "role/${MemberRoleName}"),
        ];
        expected.sort_unstable();
        let statements = template["Resources"]["RemediatorFunction"]["Properties"]["Policies"][0]["Statement"]
            .as_array()
            .unwrap()
            .clone();
        let mut allowed: Vec<(String, String)> = Vec::new();
        for s in statements.iter().filter(|s| s["Effect"] == "Allow") {
            for a in s["Action"].as_array().unwrap() {
                allowed.push((a.as_str().unwrap().to_string(), s["Resource"].to_string()));
            }
        }
        let mut names: Vec<&str> = allowed.iter().map(|(a, _)| a.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names, expected.iter().map(|(a, _)| *a).collect::<Vec<_>>(), "granted actions");
        for (action, scope) in &expected {
            assert!(
                allowed.iter().any(|(a, r)| a == action && r.contains(scope)),
                "{action} is not scoped to {scope}: {allowed:?}"
            );
        }
        let pass_role = statements.iter().find(|s| s["Action"] == json!(["iam:PassRole"])).unwrap();
        assert_eq!(pass_role["Condition"]["StringEquals"]["iam:PassedToService"], "scheduler.amazonaws.com");
        let deny = statements.iter().find(|s| s["Effect"] == "Deny").expect("remediator never changes itself");
        assert!(deny["Resource"].to_string().contains("${AWS::StackName}-remediator"), "{deny}");
        assert!(deny["Action"].as_array().unwrap().contains(&json!("lambda:UpdateFunctionConfiguration")));
        // The dead-letter queue is encrypted with a key EventBridge can use.
        let dlq = &template["Resources"]["DeadLetterQueue"]["Properties"];
        assert_eq!(dlq["SqsManagedSseEnabled"], true, "{dlq}");
        assert!(dlq.get("KmsMasterKeyId").is_none(), "alias/aws/sqs cannot be written by EventBridge: {dlq}");
    }

    #[test]
    fn the_template_subscribes_to_every_rule_the_policies_need() {
        let set = PolicySource::Bundled.load().unwrap();
        let template = template(&set);
        let rules_in_template = template["Resources"]
            .as_object()
            .unwrap()
            .values()
            .filter(|r| r["Type"] == "AWS::Events::Rule" && r["Properties"].get("EventPattern").is_some())
            .count();
        assert_eq!(rules_in_template, rules(&set).len());
    }

    #[test]
    fn infra_template_json_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        let set = PolicySource::Bundled.load().unwrap();
        let mut fresh = serde_json::to_string_pretty(&crate::schema::sorted_value(template(&set))).unwrap();
        fresh.push('\n');
        assert!(committed == fresh, "infra/template.json is stale: run `remediator template > infra/template.json`");
    }

    #[test]
    fn infra_member_template_json_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/member-template.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        let set = PolicySource::Bundled.load().unwrap();
        let mut fresh = serde_json::to_string_pretty(&crate::schema::sorted_value(member_template(&set))).unwrap();
        fresh.push('\n');
        assert!(committed == fresh, "infra/member-template.json is stale: run `make template`");
    }

    #[test]
    fn the_member_role_may_change_the_members_pipeline_and_nothing_central_and_trusts_only_remediator() {
        let set = PolicySource::Bundled.load().unwrap();
        let member = member_template(&set);
        let role = &member["Resources"]["MemberRole"]["Properties"];
        let statements = role["Policies"][0]["PolicyDocument"]["Statement"].as_array().unwrap();
        let mut actions: Vec<&str> =
            statements.iter().flat_map(|s| s["Action"].as_array().unwrap()).map(|a| a.as_str().unwrap()).collect();
        actions.sort_unstable();
        // What the shipped policies change in a pipeline's account, and nothing of the
        // central deployment (its table, topic, timers and key).
        for needed in [
            "events:EnableRule",
            "lambda:UpdateFunctionConfiguration",
            "s3:DeleteObjectVersion",
            "states:StartExecution",
            "states:RedriveExecution",
        ] {
            assert!(actions.contains(&needed), "{needed}: {actions:?}");
        }
        for central in ["dynamodb:", "sns:", "scheduler:", "iam:", "kms:", "sqs:"] {
            assert!(!actions.iter().any(|a| a.starts_with(central)), "{central}: {actions:?}");
        }
        for s in statements {
            let text = s["Resource"].to_string();
            assert!(
                text.contains("${AWS::AccountId}") || text.contains("${DataBucket}"),
                "scoped to the member's own resources: {text}"
            );
        }
        // Trusted by the central function's role, with the external id or remediator's session.
        let trust = &role["AssumeRolePolicyDocument"]["Statement"][0];
        assert_eq!(trust["Principal"]["AWS"], json!({"Ref": "CentralRoleArn"}));
        assert_eq!(
            trust["Condition"]["Fn::If"][2]["StringEquals"]["sts:RoleSessionName"],
            crate::triage::MEMBER_SESSION
        );
        // The forwarding rules are the central rules, each to the central bus.
        let central = template(&set);
        let count = |t: &Value, kind: &str| {
            t["Resources"]
                .as_object()
                .unwrap()
                .values()
                .filter(|r| r["Type"] == kind && r["Properties"]["EventPattern"].is_object())
                .count()
        };
        assert_eq!(count(&member, "AWS::Events::Rule"), count(&central, "AWS::Events::Rule"));
        assert_eq!(
            central["Resources"]["OrganizationBusPolicy"]["Properties"]["Statement"]["Condition"]["StringEquals"]
                ["aws:PrincipalOrgID"],
            json!({"Ref": "OrganizationId"})
        );
    }
}
