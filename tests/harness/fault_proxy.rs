//! A fault-injecting HTTP proxy between the AWS SDK and the emulator, on loopback.
//!
//! It forwards every request to the moto server and counts it by operation
//! (`X-Amz-Target` for JSON protocols, `Action=` for query protocols, the method and
//! path otherwise). Faults are armed per operation for a number of calls: a throttling
//! error, a 500, a response lost after the emulator did the work (the connection is
//! dropped), or a delay. HTTP, both ways, is hyper's: bodies pass through as bytes.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{http, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// HTTP 400 `ThrottlingException`, without reaching the emulator.
    Throttle,
    /// HTTP 500, without reaching the emulator.
    ServerError,
    /// HTTP 400 `AccessDeniedException`, without reaching the emulator.
    Deny,
    /// Forwarded (the emulator does the work), then the connection is dropped.
    LoseResponse,
    /// Forwarded after a delay.
    Delay(Duration),
}

#[derive(Default)]
struct State {
    faults: Vec<(String, Fault, u32)>,
    counts: HashMap<String, u32>,
    log: Vec<String>,
}

#[derive(Clone)]
pub struct FaultProxy {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        // A fresh upstream connection per request, as the emulator sees from AWS clients.
        let client: Upstream = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build_http();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (state, upstream, client) = (Arc::clone(&shared), upstream.clone(), client.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        serve(request, upstream.clone(), client.clone(), Arc::clone(&state))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy { endpoint, state }
    }

    /// Arms `fault` for the next `times` calls of `operation` (e.g. `StartExecution`).
    pub fn arm(&self, operation: &str, fault: Fault, times: u32) {
        self.state.lock().unwrap().faults.push((operation.to_string(), fault, times));
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// Calls seen per operation since the last reset.
    pub fn counts(&self) -> HashMap<String, u32> {
        self.state.lock().unwrap().counts.clone()
    }

    /// Operations in the order they arrived.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn reset_counts(&self) {
        let mut s = self.state.lock().unwrap();
        s.counts.clear();
        s.log.clear();
    }
}

type Upstream = Client<HttpConnector, Full<Bytes>>;

/// A reply the proxy makes up instead of the emulator's.
fn made_up(status: StatusCode, error_type: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"__type": error_type, "message": message}).to_string();
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-errortype", error_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// The operation a request calls: `X-Amz-Target` (JSON protocols), `Action=` (query
/// protocols), else the method and path.
fn operation(request: &http::request::Parts, body: &[u8]) -> String {
    let target = request.headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    if let Some(op) = target.and_then(|t| t.rsplit('.').next()) {
        return op.to_string();
    }
    let form = String::from_utf8_lossy(body);
    if let Some(action) = form.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        return action.to_string();
    }
    format!("{} {}", request.method, request.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
}

/// Hop-by-hop headers, and the length hyper recomputes.
const NOT_FORWARDED: &[&str] = &["connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"];

async fn serve(
    request: Request<Incoming>,
    upstream: String,
    client: Upstream,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let operation = operation(&parts, &body);
    let fault = {
        let mut s = state.lock().unwrap();
        *s.counts.entry(operation.clone()).or_default() += 1;
        s.log.push(operation.clone());
        let armed = s.faults.iter_mut().find(|(op, _, n)| *op == operation && *n > 0);
        armed.map(|(_, f, n)| {
            *n -= 1;
            *f
        })
    };
    match fault {
        Some(Fault::Throttle) => return Ok(made_up(StatusCode::BAD_REQUEST, "ThrottlingException", "Rate exceeded")),
        Some(Fault::Deny) => {
            let message = "User: arn:aws:sts::123456789012:assumed-role/remediator/remediator is not authorized to perform this action";
            return Ok(made_up(StatusCode::BAD_REQUEST, "AccessDeniedException", message));
        }
        Some(Fault::ServerError) => {
            return Ok(made_up(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", "injected"))
        }
        _ => {}
    }
    // The delay and the forward run on their own task: a caller that hangs up meanwhile
    // (the SDK's attempt timeout) does not stop the work reaching the emulator, as with
    // a slow AWS endpoint.
    let delay = match fault {
        Some(Fault::Delay(d)) => Some(d),
        _ => None,
    };
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
    let mut forward = Request::builder().method(parts.method.clone()).uri(format!("http://{upstream}{path}"));
    for (name, value) in &parts.headers {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            forward = forward.header(name, value);
        }
    }
    let forward = forward.body(Full::new(body))?;
    let exchange = tokio::spawn(async move {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let response = client.request(forward).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts, body))
    });
    let (parts, body) = match exchange.await? {
        Ok(answer) => answer,
        Err(e) => return Ok(made_up(StatusCode::BAD_GATEWAY, "ProxyError", &format!("emulator: {e}"))),
    };
    if fault == Some(Fault::LoseResponse) {
        // The work is done upstream; the caller never hears of it: an error from the
        // service makes hyper drop the connection without an answer.
        return Err("response lost on purpose".into());
    }
    let mut reply = Response::builder().status(parts.status);
    for (name, value) in &parts.headers {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            reply = reply.header(name, value);
        }
    }
    Ok(reply.body(Full::new(body))?)
}
