//! A Lambda Runtime API endpoint on loopback, so tests drive the `remediator` binary
//! through its real Lambda entry point (`lambda_runtime`'s client loop): the binary
//! long-polls `/invocation/next`, handles the event, and posts `/response` or `/error`.
//! HTTP is hyper's, not ours.
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex};

/// What the function answered for one invocation.
#[derive(Debug)]
pub enum Reply {
    Response(Value),
    Error(Value),
    InitError(Value),
}

pub struct RuntimeApi {
    pub address: String,
    events: mpsc::UnboundedSender<(String, Value)>,
    replies: mpsc::UnboundedReceiver<(String, Reply)>,
}

type Events = Arc<Mutex<mpsc::UnboundedReceiver<(String, Value)>>>;
type Replies = mpsc::UnboundedSender<(String, Reply)>;

/// The `remediator` binary started as a Lambda function against this Runtime API, with
/// the emulator's settings and `env` added (stdout piped, for its EMF lines).
pub fn function(
    remediator: &std::path::Path,
    emulator: &super::Emulator,
    api: &RuntimeApi,
    env: &[(&str, &str)],
) -> tokio::process::Child {
    tokio::process::Command::new(remediator)
        .envs(emulator.env())
        .envs(env.iter().copied())
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "remediator")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/remediator")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the remediator binary starts")
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind runtime API");
        let address = listener.local_addr().unwrap().to_string();
        let (events, events_rx) = mpsc::unbounded_channel::<(String, Value)>();
        let (replies_tx, replies) = mpsc::unbounded_channel();
        let events_rx: Events = Arc::new(Mutex::new(events_rx));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (events_rx, replies_tx) = (Arc::clone(&events_rx), replies_tx.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        serve(request, Arc::clone(&events_rx), replies_tx.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RuntimeApi { address, events, replies }
    }

    /// Invokes the function with `event` and waits for its reply.
    pub async fn invoke(&mut self, id: &str, event: Value) -> Reply {
        self.events.send((id.to_string(), event)).expect("runtime API running");
        let (reply_id, reply) = tokio::time::timeout(std::time::Duration::from_secs(60), self.replies.recv())
            .await
            .expect("the function answered within 60 s")
            .expect("runtime API running");
        if !matches!(reply, Reply::InitError(_)) {
            assert_eq!(reply_id, id);
        }
        reply
    }
}

async fn serve(
    request: Request<Incoming>,
    events: Events,
    replies: Replies,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    if path.ends_with("/invocation/next") {
        let next = events.lock().await.recv().await;
        let Some((id, event)) = next else {
            return Ok(Response::builder().status(StatusCode::GONE).body(Full::default()).unwrap());
        };
        let deadline = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() + 60_000;
        let response = Response::builder()
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", id)
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:remediator")
            .header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
            .body(Full::new(Bytes::from(event.to_string())))
            .unwrap();
        return Ok(response);
    }
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let parts: Vec<&str> = path.split('/').collect();
    let id = || parts[parts.len() - 2].to_string();
    let reply = if path.ends_with("/response") {
        Some((id(), Reply::Response(body)))
    } else if path.ends_with("/init/error") {
        Some((String::new(), Reply::InitError(body)))
    } else if path.ends_with("/error") {
        Some((id(), Reply::Error(body)))
    } else {
        None
    };
    if let Some(r) = reply {
        let _ = replies.send(r);
    }
    Ok(Response::builder()
        .status(StatusCode::ACCEPTED)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"status\":\"OK\"}\n")))
        .unwrap())
}
