//! A tiny HTTP responder on 127.0.0.1:0 that records every request and answers from a table.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::Response;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Captured {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Clone)]
pub enum Reply {
    Json(u16, &'static str),
    Raw {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    Chunked {
        chunks: usize,
        chunk_bytes: usize,
    },
    Hang,
}

pub struct Responder {
    pub base: String,
    captured: Arc<Mutex<Vec<Captured>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Responder {
    pub async fn start(routes: Vec<(&'static str, Reply)>) -> Self {
        let routes: Arc<HashMap<&'static str, Reply>> = Arc::new(routes.into_iter().collect());
        let captured = Arc::new(Mutex::new(Vec::new()));
        let cap = captured.clone();
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let routes = routes.clone();
            let cap = cap.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                let mut headers: Vec<(String, String)> = parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned()))
                    .collect();
                headers.sort();
                cap.lock().unwrap().push(Captured {
                    method: parts.method.clone(),
                    path: parts.uri.path().to_owned(),
                    headers,
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                });
                reply(routes.get(parts.uri.path()).cloned()).await
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base,
            captured,
            task,
        }
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.captured.lock().unwrap().clone()
    }
}

async fn reply(reply: Option<Reply>) -> Response {
    let mut headers = HeaderMap::new();
    let (status, body) = match reply {
        None => (
            404,
            Body::from(r#"{"message":"Cannot POST","statusCode":404}"#),
        ),
        Some(Reply::Json(status, body)) => {
            headers.insert("content-type", "application/json".parse().unwrap());
            (status, Body::from(body))
        }
        Some(Reply::Raw {
            status,
            headers: extra,
            body,
        }) => {
            for (k, v) in extra {
                headers.insert(k, v.parse().unwrap());
            }
            (status, Body::from(body))
        }
        Some(Reply::Chunked {
            chunks,
            chunk_bytes,
        }) => {
            let stream = futures::stream::iter(
                (0..chunks)
                    .map(move |_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; chunk_bytes]))),
            );
            (200, Body::from_stream(stream))
        }
        Some(Reply::Hang) => std::future::pending().await,
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    *response.headers_mut() = headers;
    response
}
