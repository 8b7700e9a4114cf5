//! The loopback redirect listener of `calconnect login` (RFC 8252 §7.3): bound on 127.0.0.1
//! before the authorize URL is printed, it waits for one `GET /callback?...`, answers with a
//! small page and hands the query back.

use crate::exit::CliError;
use std::io::IsTerminal as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

pub const CALLBACK_PATH: &str = "/callback";
const MAX_HEAD: usize = 16 * 1024;

/// Binds `127.0.0.1:port`; an occupied port gets the fix in the message.
pub async fn bind(port: u16) -> Result<TcpListener, CliError> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                CliError::other(format!(
                    "port {port} is in use by {}; pass --port N and register http://127.0.0.1:N/callback with your client",
                    crate::port_owner::describe(port)
                ))
            } else {
                CliError::other(format!(
                    "cannot listen on 127.0.0.1:{port} ({e}); pass --port N and register http://127.0.0.1:N/callback with your client"
                ))
            }
        })
}

/// What the browser brought back.
#[derive(Debug)]
pub struct Arrived {
    /// The query string of the callback request.
    pub query: String,
    stream: TcpStream,
}

impl Arrived {
    /// Answers the browser with a page (`ok` decides the wording) and closes.
    pub async fn respond(mut self, ok: bool, detail: &str) {
        let (title, text) = if ok {
            (
                "Logged in",
                format!(
                    "{}. You can close this tab and return to the terminal.",
                    html_escape(detail)
                ),
            )
        } else {
            (
                "Login failed",
                format!(
                    "{}. You can close this tab; the terminal says what to do next.",
                    html_escape(detail)
                ),
            )
        };
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>calconnect: {title}</title></head>\
             <body style=\"font-family:sans-serif;margin:3em\"><h1>{title}</h1><p>{text}</p></body></html>"
        );
        let status = if ok { "200 OK" } else { "400 Bad Request" };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = self.stream.write_all(response.as_bytes()).await;
        let _ = self.stream.shutdown().await;
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Waits up to `remaining` for `GET /callback?...`; other requests (a favicon) get a 404.
/// `total` is the whole wait, for the message when time runs out.
pub async fn wait(
    listener: &TcpListener,
    remaining: Duration,
    total: Duration,
) -> Result<Arrived, CliError> {
    let spinner = spinner();
    let result = tokio::time::timeout(remaining, accept_callback(listener)).await;
    if let Some(s) = spinner {
        s.abort();
        eprint!("\r\x1b[2K");
    }
    result.map_err(|_| {
        CliError::auth(format!(
            "no answer from the browser within {}: run `calconnect login` again (raise --timeout if you need more time)",
            humanize(total)
        ))
    })
}

pub fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

async fn accept_callback(listener: &TcpListener) -> Arrived {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let head = match tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream)).await
        {
            Ok(Some(head)) => head,
            _ => continue,
        };
        let mut parts = head.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            continue;
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if method == "GET" && path == CALLBACK_PATH {
            return Arrived {
                query: query.to_owned(),
                stream,
            };
        }
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
    }
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let line_end = buf.iter().position(|&b| b == b'\r')?;
            return String::from_utf8(buf[..line_end].to_vec()).ok();
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
    }
}

/// A spinner on stderr, only when stderr is a terminal.
fn spinner() -> Option<tokio::task::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    Some(tokio::spawn(async {
        let frames = ['|', '/', '-', '\\'];
        let mut i = 0usize;
        loop {
            eprint!(
                "\r{} Waiting for you to finish in the browser (Ctrl-C to cancel)",
                frames[i % frames.len()]
            );
            i += 1;
            tokio::time::sleep(Duration::from_millis(120)).await;
        }
    }))
}
