//! The HTTP edge over raw sockets: a half-sent request head and an idle keep-alive connection
//! are closed by their timeouts, and connections beyond the cap wait to be served.

use crate::helpers::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn app_with(http: &str) -> TestApp {
    spawn_with(Options {
        extra_toml: format!("[http]\n{http}"),
        ..Options::default()
    })
    .await
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes; `None` if it is still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut got))
        .await
        .ok()
        .map(|_| got)
}

/// Reads one whole `/healthz` answer (its body is short; the head says how long).
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let mut text = String::new();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed before answering: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn a_half_sent_request_head_is_closed_after_the_header_timeout() {
    let app = app_with("header_read_timeout_secs = 1\nidle_timeout_secs = 30").await;
    let mut slow = TcpStream::connect(addr(&app)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Still open well before the timeout …
    assert!(
        closed_within(&mut slow, Duration::from_millis(300))
            .await
            .is_none()
    );
    // … closed after it.
    let rest = closed_within(&mut slow, Duration::from_secs(5)).await;
    assert!(rest.is_some(), "the slow connection was not closed");
    // The broker still serves everyone else.
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, reqwest::StatusCode::OK);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = app_with("header_read_timeout_secs = 30\nidle_timeout_secs = 1").await;
    let mut idle = TcpStream::connect(addr(&app)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Kept alive for a while, then closed for lack of traffic.
    assert!(
        closed_within(&mut idle, Duration::from_millis(300))
            .await
            .is_none()
    );
    assert_eq!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        Some(Vec::new()),
        "the idle connection was not closed"
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let app =
        app_with("header_read_timeout_secs = 30\nidle_timeout_secs = 30\nmax_connections = 2")
            .await;
    let mut first = TcpStream::connect(addr(&app)).await.unwrap();
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_answer(&mut first).await;
    let mut second = TcpStream::connect(addr(&app)).await.unwrap();
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_answer(&mut second).await;
    // Both slots are taken by kept-alive connections: the third is accepted by the kernel but
    // not served.
    let mut third = TcpStream::connect(addr(&app)).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf))
            .await
            .is_err(),
        "served beyond the cap"
    );
    // A slot frees up: the third is served.
    drop(first);
    let answer = read_answer(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
