//! The reconciliation sweep: Step Functions status-change events are delivered best
//! effort, so `remediator sweep` (run on a schedule) lists the executions of the
//! configured state machines that failed or timed out since the last sweep and feeds
//! each through the same handling as an event. Failures already handled are absorbed
//! by their incident key (execution ARN plus redrive count), so the sweep never acts
//! twice on one failure.

use serde_json::{json, Value};

use crate::apply::{ExecutionInfo, Executions};
use crate::error::AwsError;
use crate::event::{ExecutionArn, SFN_SOURCE, SFN_STATUS_CHANGE};
use crate::guard::format_time;

/// The status-change event a failed execution would have produced (current shape;
/// without input or output, which the handler reads from Step Functions when needed).
pub fn status_event(execution: &ExecutionArn, info: &ExecutionInfo) -> Value {
    json!({
        "version": "0",
        "id": format!("sweep:{}:{}", execution, info.redrive_count),
        "detail-type": SFN_STATUS_CHANGE,
        "source": SFN_SOURCE,
        "account": execution.account(),
        "time": info.stop_date.map(format_time),
        "region": execution.region(),
        "resources": [execution.as_str()],
        "detail": {
            "executionArn": execution.as_str(),
            "stateMachineArn": info.state_machine_arn,
            "name": info.name,
            "status": info.status,
            "stopDate": info.stop_date.map(|s| s * 1000),
            "error": info.error,
            "cause": info.cause,
            "redriveCount": info.redrive_count,
            "redriveStatus": info.redrive_status,
            "inputDetails": {"included": false},
        },
        "remediator": {"sweep": true},
    })
}

/// The events of every execution of `state_machines` that failed since `since`.
pub async fn failed_since(
    executions: &dyn Executions,
    state_machines: &[String],
    since: i64,
) -> Result<Vec<Value>, AwsError> {
    let mut events = Vec::new();
    for sm in state_machines {
        for arn in executions.list_failed(sm, since).await? {
            let Some(execution) = ExecutionArn::parse(&arn) else { continue };
            let info = executions.describe(&execution).await?;
            events.push(status_event(&execution, &info));
        }
    }
    Ok(events)
}
