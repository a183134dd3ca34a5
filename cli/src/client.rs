//! The HTTP/1.1 client that talks to kilnd, over its unix socket or TCP.
//!
//! Each request opens its own connection: the CLI makes a handful of
//! requests per run, and a fresh connection keeps a broken one from
//! poisoning the next.
//!
//! # Limitations
//!
//! - Plain HTTP only: `--url https://...` is refused. kilnd serves TCP
//!   without TLS; put it behind a TLS-terminating proxy on the same host
//!   if it must be reached across a network.
//! - Only connecting has a timeout. A request waits as long as the daemon
//!   takes, because clone and resize answer when they are done, which for
//!   a large volume on a medium without copy-on-write can take minutes.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpStream, UnixStream};

use crate::error::CliError;

/// How long to wait for the daemon to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where kilnd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket path.
    Unix(PathBuf),
    /// A TCP `host:port`.
    Tcp(String),
}

impl Endpoint {
    /// Picks the endpoint from `--url` (TCP, if given) or `--socket`.
    pub fn from_flags(socket: PathBuf, url: Option<&str>) -> Result<Endpoint, CliError> {
        let Some(url) = url else {
            if socket.as_os_str().is_empty() {
                return Err(CliError::SocketPath {
                    path: socket,
                    reason: "it is empty".into(),
                });
            }
            return Ok(Endpoint::Unix(socket));
        };
        let usage = |why: &str| CliError::Usage {
            message: format!("--url {url:?} {why}; expected http://HOST:PORT"),
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| usage("is not an http:// URL"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(usage("has no host"));
        }
        if authority.contains(['/', '?', '#', '@']) {
            return Err(usage("must have no path, query or user"));
        }
        match authority.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => return Err(usage("needs a port")),
        }
        // What hyper would refuse later (an unclosed `[`, a space) is a
        // usage error now, not a failed connection.
        if authority.parse::<hyper::http::uri::Authority>().is_err() {
            return Err(usage("has a malformed host"));
        }
        Ok(Endpoint::Tcp(authority.to_owned()))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
            Endpoint::Tcp(authority) => write!(f, "http://{authority}"),
        }
    }
}

/// A client of one kilnd, with the identity to send.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    token: Option<String>,
    owner: Option<String>,
}

impl Client {
    /// A client for `endpoint`, sending `token` as a bearer token and
    /// `owner` as `?owner=` when given.
    pub fn new(endpoint: Endpoint, token: Option<String>, owner: Option<String>) -> Client {
        Client {
            endpoint,
            token: token.filter(|t| !t.is_empty()),
            owner,
        }
    }

    /// `GET path`, answering the JSON body.
    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(Method::GET, path, None).await
    }

    /// `POST path`, with a JSON body if given, answering the JSON body.
    pub async fn post(&self, path: &str, body: Option<Value>) -> Result<Value, CliError> {
        self.send(Method::POST, path, body).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<(), CliError> {
        self.send(Method::DELETE, path, None).await.map(drop)
    }

    /// Sends one request and turns the answer into JSON or an error.
    ///
    /// A 2xx answer with an empty body (204) is `null`. Any other status
    /// becomes [`CliError::Api`] with the daemon's code and message.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CliError> {
        let target = self.target(path);
        let http_error = |source| CliError::Http {
            method: method.to_string(),
            path: target.clone(),
            source,
        };

        let mut sender = match &self.endpoint {
            Endpoint::Unix(socket) => {
                let stream = connect(&self.endpoint, UnixStream::connect(socket)).await?;
                handshake(stream).await.map_err(http_error)?
            }
            Endpoint::Tcp(authority) => {
                let stream = connect(&self.endpoint, TcpStream::connect(authority)).await?;
                handshake(stream).await.map_err(http_error)?
            }
        };

        let host = match &self.endpoint {
            Endpoint::Unix(_) => "localhost",
            Endpoint::Tcp(authority) => authority.as_str(),
        };
        let mut request = Request::builder()
            .method(method.clone())
            .uri(&target)
            .header(HOST, host)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("kiln/", env!("CARGO_PKG_VERSION")));
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let payload = match body {
            Some(body) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(payload))
            .map_err(|err| CliError::Usage {
                message: format!("cannot build request {method} {target}: {err}"),
            })?;

        let response = sender.send_request(request).await.map_err(http_error)?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(http_error)?
            .to_bytes();

        if status.is_success() {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|err| CliError::BadResponse {
                method: method.to_string(),
                path: target.clone(),
                reason: format!("the body is not JSON: {err}"),
            });
        }
        Err(api_error(status, &bytes))
    }

    /// The request target: the path and, when acting for an owner, the
    /// `owner` query parameter.
    fn target(&self, path: &str) -> String {
        match &self.owner {
            Some(owner) => {
                let sep = if path.contains('?') { '&' } else { '?' };
                format!("{path}{sep}owner={}", segment(owner))
            }
            None => path.to_owned(),
        }
    }
}

/// Connects with a timeout, naming the endpoint when it fails.
async fn connect<S>(
    endpoint: &Endpoint,
    attempt: impl std::future::Future<Output = std::io::Result<S>>,
) -> Result<S, CliError> {
    let failed = |source| CliError::Connect {
        endpoint: endpoint.to_string(),
        source,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(err)) => Err(failed(err)),
        Err(_) => Err(failed(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
        ))),
    }
}

/// Starts HTTP/1.1 on a connected stream, driving the connection in the
/// background until the request is answered.
async fn handshake<S>(
    stream: S,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // A connection error also fails the pending request, which reports it.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Turns an error answer into [`CliError::Api`], tolerating bodies that
/// are not kiln's error shape (a proxy's page, an empty body).
pub fn api_error(status: hyper::StatusCode, body: &[u8]) -> CliError {
    let parsed: Option<(String, String, Option<String>)> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| {
            let error = value.get("error")?;
            let code = error.get("code")?.as_str()?.to_owned();
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let request_id = error
                .get("request_id")
                .and_then(Value::as_str)
                .map(str::to_owned);
            Some((code, message, request_id))
        });
    let (code, message, request_id) = parsed.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body).trim().to_owned();
        let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
        let message = if text.is_empty() { reason } else { text };
        (format!("http {}", status.as_u16()), message, None)
    });
    CliError::Api {
        status: status.as_u16(),
        code,
        message,
        request_id,
    }
}

/// Percent-encodes one path segment or query value, so a name can never
/// change the route it is sent to.
pub fn segment(text: &str) -> String {
    if text.bytes().all(|b| b == b'.') {
        // `.` and `..` would be taken as relative steps by anything on the way.
        return text.bytes().map(|_| "%2E").collect();
    }
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use hyper::StatusCode;

    use super::*;

    #[test]
    fn url_selects_tcp_and_must_be_http_host_port() {
        let socket = PathBuf::from("./kiln-data/kiln.sock");
        assert_eq!(
            Endpoint::from_flags(socket.clone(), Some("http://127.0.0.1:7480")).ok(),
            Some(Endpoint::Tcp("127.0.0.1:7480".into()))
        );
        assert_eq!(
            Endpoint::from_flags(socket.clone(), Some("http://[::1]:7480/")).ok(),
            Some(Endpoint::Tcp("[::1]:7480".into()))
        );
        assert_eq!(
            Endpoint::from_flags(socket.clone(), None).ok(),
            Some(Endpoint::Unix(socket.clone()))
        );
        for bad in [
            "https://h:1",
            "h:1",
            "http://h",
            "http://h:x",
            "http://h:1/v1",
            "http://",
            "http://[::1",
            "http://[::1:7480",
            "http://a b:1",
        ] {
            let err = Endpoint::from_flags(socket.clone(), Some(bad)).expect_err(bad);
            assert_eq!(err.exit(), crate::error::Exit::Usage, "{bad}");
        }
    }

    #[test]
    fn error_bodies_give_code_and_message() {
        let body = br#"{"error":{"code":"conflict","message":"volume \"data\" is attached to sb1","request_id":"req-1"}}"#;
        let err = api_error(StatusCode::CONFLICT, body);
        assert_eq!(
            err.to_string(),
            "volume \"data\" is attached to sb1 (conflict)"
        );
    }

    #[test]
    fn internal_errors_print_the_request_id_the_daemon_logged() {
        let body = br#"{"error":{"code":"internal","message":"internal error; the daemon log has the details under this request id","request_id":"req-7"}}"#;
        let err = api_error(StatusCode::INTERNAL_SERVER_ERROR, body);
        assert_eq!(
            err.report(),
            "error: internal error; the daemon log has the details under this request id \
             (internal)\n  request id: req-7"
        );
        // Other errors say all there is to say without it.
        let body = br#"{"error":{"code":"conflict","message":"busy","request_id":"req-8"}}"#;
        let err = api_error(StatusCode::CONFLICT, body);
        assert_eq!(err.report(), "error: busy (conflict)");
    }

    #[test]
    fn foreign_error_bodies_still_say_what_happened() {
        let err = api_error(StatusCode::BAD_GATEWAY, b"");
        assert_eq!(err.to_string(), "bad gateway (http 502)");
        let err = api_error(StatusCode::NOT_FOUND, b"no route\n");
        assert_eq!(err.to_string(), "no route (http 404)");
    }

    #[test]
    fn names_cannot_escape_their_path_segment() {
        assert_eq!(segment("data"), "data");
        assert_eq!(segment("a.b_c-d"), "a.b_c-d");
        assert_eq!(segment("../x"), "..%2Fx");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("a b?c"), "a%20b%3Fc");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn owner_is_sent_as_a_query_parameter() {
        let client = Client::new(Endpoint::Unix("s".into()), None, Some("team a".into()));
        assert_eq!(client.target("/v1/volumes"), "/v1/volumes?owner=team%20a");
        assert_eq!(client.target("/v1/x?y=1"), "/v1/x?y=1&owner=team%20a");
    }
}
