//! A fault-injecting HTTP proxy between the AWS SDK and the emulator, on loopback.
//!
//! It forwards every request to the moto server and counts it by operation
//! (`X-Amz-Target` for JSON protocols, `Action=` for query protocols, the method and
//! path otherwise). Faults are armed per operation for a number of calls: a throttling
//! error, a 500, a response lost after the emulator did the work (the connection is
//! dropped), or a delay.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

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
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (state, upstream) = (Arc::clone(&shared), upstream.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, &upstream, state).await;
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

async fn serve(stream: TcpStream, upstream: &str, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        // Request line and headers.
        let mut head = Vec::new();
        let mut length = 0usize;
        let mut target = None;
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let request_line = line.clone();
        head.extend_from_slice(line.as_bytes());
        loop {
            line.clear();
            if read.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim(), v.trim());
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.parse().unwrap_or(0);
                }
                if k.eq_ignore_ascii_case("x-amz-target") {
                    target = v.rsplit('.').next().map(str::to_string);
                }
                if k.eq_ignore_ascii_case("connection") {
                    continue; // replaced below
                }
            }
            head.extend_from_slice(line.as_bytes());
        }
        let mut body = vec![0; length];
        read.read_exact(&mut body).await?;
        let operation = target
            .or_else(|| {
                String::from_utf8_lossy(&body).split('&').find_map(|kv| kv.strip_prefix("Action=").map(str::to_string))
            })
            .unwrap_or_else(|| request_line.split_whitespace().take(2).collect::<Vec<_>>().join(" "));
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
            Some(Fault::Throttle) => {
                let body = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
                let response = format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-ErrorType: ThrottlingException\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                write.write_all(response.as_bytes()).await?;
                continue;
            }
            Some(Fault::Deny) => {
                let body = r#"{"__type":"AccessDeniedException","message":"User: arn:aws:sts::123456789012:assumed-role/remediator/remediator is not authorized to perform this action"}"#;
                let response = format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-ErrorType: AccessDeniedException\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                write.write_all(response.as_bytes()).await?;
                continue;
            }
            Some(Fault::ServerError) => {
                let body = r#"{"__type":"InternalFailure","message":"injected"}"#;
                let response = format!(
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                write.write_all(response.as_bytes()).await?;
                continue;
            }
            Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
            _ => {}
        }
        // Forward on a fresh upstream connection, closed after the response.
        head.extend_from_slice(b"Connection: close\r\n\r\n");
        let mut up = TcpStream::connect(upstream).await?;
        up.write_all(&head).await?;
        up.write_all(&body).await?;
        let mut response = Vec::new();
        up.read_to_end(&mut response).await?;
        if fault == Some(Fault::LoseResponse) {
            return Ok(()); // the work is done upstream; the caller never hears of it
        }
        // Keep the client connection alive: rewrite the upstream's `Connection: close`.
        let text = String::from_utf8_lossy(&response);
        let fixed = text.replacen("Connection: close\r\n", "", 1).replacen("connection: close\r\n", "", 1);
        write.write_all(fixed.as_bytes()).await?;
    }
}
