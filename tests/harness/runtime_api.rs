//! A Lambda Runtime API endpoint on loopback, so tests drive the `remediator` binary
//! through its real Lambda entry point (`lambda_runtime`'s client loop): the binary
//! long-polls `/invocation/next`, handles the event, and posts `/response` or `/error`.
#![allow(dead_code)]

use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
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

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind runtime API");
        let address = listener.local_addr().unwrap().to_string();
        let (events, events_rx) = mpsc::unbounded_channel::<(String, Value)>();
        let (replies_tx, replies) = mpsc::unbounded_channel();
        let events_rx = Arc::new(Mutex::new(events_rx));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let events_rx = Arc::clone(&events_rx);
                let replies_tx = replies_tx.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut read = BufReader::new(read);
                    loop {
                        let mut request_line = String::new();
                        if read.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let mut length = 0usize;
                        loop {
                            let mut header = String::new();
                            if read.read_line(&mut header).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let header = header.trim_end();
                            if header.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = header.split_once(':') {
                                if k.eq_ignore_ascii_case("content-length") {
                                    length = v.trim().parse().unwrap_or(0);
                                }
                            }
                        }
                        let mut body = vec![0; length];
                        if read.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
                        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let response = if path.ends_with("/invocation/next") {
                            let next = events_rx.lock().await.recv().await;
                            let Some((id, event)) = next else { return };
                            let payload = event.to_string();
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {id}\r\n\
                                 Lambda-Runtime-Deadline-Ms: {}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:remediator\r\n\
                                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\nContent-Length: {}\r\n\r\n{payload}",
                                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() + 60_000,
                                payload.len()
                            )
                        } else {
                            let parts: Vec<&str> = path.split('/').collect();
                            let reply = if path.ends_with("/response") {
                                Some((parts[parts.len() - 2].to_string(), Reply::Response(body)))
                            } else if path.ends_with("/init/error") {
                                Some((String::new(), Reply::InitError(body)))
                            } else if path.ends_with("/error") {
                                Some((parts[parts.len() - 2].to_string(), Reply::Error(body)))
                            } else {
                                None
                            };
                            if let Some(r) = reply {
                                let _ = replies_tx.send(r);
                            }
                            "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n".to_string()
                        };
                        if write.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
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
