//! A minimal Docker Engine API client for container attribution: `GET
//! /containers/{id}/json` over the daemon's unix socket, as plain HTTP/1.0
//! (the daemon closes the connection after the response, so no chunking or
//! keep-alive is needed, though a chunked body is decoded anyway), with a
//! short timeout. It only reads a container's name and image; it is
//! optional and every failure is an error the caller may ignore.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the Docker daemon listens by default.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Largest response read; an inspect document is a few KiB.
const MAX_RESPONSE: u64 = 4 << 20;

/// What the daemon says about a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerContainer {
    /// The container's name without Docker's leading `/`.
    pub name: String,
    /// The image as the container was started with it (`Config.Image`,
    /// e.g. `nginx:1.27`), or the image id when that is missing.
    pub image: Option<String>,
}

/// Talks to one Docker daemon socket.
#[derive(Clone, Debug)]
pub struct DockerClient {
    socket: PathBuf,
    timeout: Duration,
}

impl DockerClient {
    /// A client of the daemon at `socket`; each request must finish within
    /// `timeout` (connect, write and every read).
    pub fn new(socket: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self {
            socket: socket.into(),
            timeout,
        }
    }

    /// A client of the default socket with a 500 ms timeout, if the socket
    /// exists.
    pub fn detect() -> Option<Self> {
        Path::new(DEFAULT_SOCKET)
            .exists()
            .then(|| Self::new(DEFAULT_SOCKET, Duration::from_millis(500)))
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Inspects container `id`: `Ok(None)` when the daemon does not know it
    /// (HTTP 404).
    pub fn inspect(&self, id: &str) -> io::Result<Option<DockerContainer>> {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "invalid container id"));
        }
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        write!(stream, "GET /containers/{id}/json HTTP/1.0\r\nHost: docker\r\n\r\n")?;
        let mut response = Vec::new();
        stream.take(MAX_RESPONSE).read_to_end(&mut response)?;
        let response = HttpResponse::parse(&response).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        match response.status {
            200 => parse_inspect(&response.body)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            404 => Ok(None),
            status => Err(io::Error::other(format!("docker API answered HTTP {status}"))),
        }
    }
}

/// A response that did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseError {
    /// No status line.
    NoStatusLine,
    /// No blank line after the headers.
    NoHeaderEnd,
    /// A chunked body whose framing is broken.
    BadChunk,
    /// The body is not the JSON object expected.
    BadJson,
    /// The inspect document has no `Name`.
    NoName,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResponseError::NoStatusLine => "HTTP response without a status line",
            ResponseError::NoHeaderEnd => "HTTP response headers not terminated",
            ResponseError::BadChunk => "broken chunked encoding",
            ResponseError::BadJson => "response body is not the expected JSON",
            ResponseError::NoName => "inspect document without Name",
        })
    }
}

impl std::error::Error for ResponseError {}

/// A parsed HTTP response: status and (de-chunked) body.
#[derive(Debug, PartialEq, Eq)]
struct HttpResponse {
    status: u16,
    body: Vec<u8>,
}

impl HttpResponse {
    fn parse(bytes: &[u8]) -> Result<Self, ResponseError> {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or(ResponseError::NoHeaderEnd)?;
        let head = String::from_utf8_lossy(&bytes[..end]);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| {
                let mut words = line.split_whitespace();
                words.next().filter(|v| v.starts_with("HTTP/"))?;
                words.next()?.parse().ok()
            })
            .ok_or(ResponseError::NoStatusLine)?;
        let chunked = lines.any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("transfer-encoding") && value.trim().eq_ignore_ascii_case("chunked")
            })
        });
        let raw = &bytes[end + 4..];
        let body = if chunked { dechunk(raw)? } else { raw.to_vec() };
        Ok(Self { status, body })
    }
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, ResponseError> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or(ResponseError::BadChunk)?;
        let size_text = std::str::from_utf8(&raw[..line_end]).map_err(|_| ResponseError::BadChunk)?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| ResponseError::BadChunk)?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = raw.get(..size).ok_or(ResponseError::BadChunk)?;
        body.extend_from_slice(chunk);
        raw = raw
            .get(size..)
            .and_then(|r| r.strip_prefix(b"\r\n"))
            .ok_or(ResponseError::BadChunk)?;
    }
}

fn parse_inspect(body: &[u8]) -> Result<DockerContainer, ResponseError> {
    let document: serde_json::Value = serde_json::from_slice(body).map_err(|_| ResponseError::BadJson)?;
    let name = document
        .get("Name")
        .and_then(|n| n.as_str())
        .ok_or(ResponseError::NoName)?
        .trim_start_matches('/')
        .to_owned();
    let image = document
        .pointer("/Config/Image")
        .and_then(|i| i.as_str())
        .or_else(|| document.get("Image").and_then(|i| i.as_str()))
        .filter(|i| !i.is_empty())
        .map(str::to_owned);
    Ok(DockerContainer { name, image })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    const ID: &str = "3f4e8a0c2b1d9e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f";

    fn inspect_body() -> String {
        format!(
            r#"{{"Id":"{ID}","Created":"2024-05-01T10:00:00Z","Name":"/web","State":{{"Pid":4242}},"Image":"sha256:9f1c","Config":{{"Image":"nginx:1.27","Hostname":"3f4e8a0c2b1d"}},"NetworkSettings":{{"SandboxKey":"/var/run/docker/netns/5c2d9f0e1a3b"}}}}"#
        )
    }

    #[test]
    fn plain_response_parses() {
        let body = inspect_body();
        let raw = format!(
            "HTTP/1.0 200 OK\r\nApi-Version: 1.45\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let response = HttpResponse::parse(raw.as_bytes()).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(
            parse_inspect(&response.body).unwrap(),
            DockerContainer {
                name: "web".into(),
                image: Some("nginx:1.27".into())
            }
        );
    }

    #[test]
    fn chunked_response_parses() {
        let raw =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"Nam\r\n9;ext=1\r\ne\":\"/db\"}\r\n0\r\n\r\n";
        let response = HttpResponse::parse(raw).unwrap();
        assert_eq!(response.body, br#"{"Name":"/db"}"#);
        assert_eq!(
            parse_inspect(&response.body).unwrap(),
            DockerContainer {
                name: "db".into(),
                image: None
            }
        );
        let truncated = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10\r\nshort";
        assert_eq!(HttpResponse::parse(truncated), Err(ResponseError::BadChunk));
    }

    #[test]
    fn malformed_responses_are_errors() {
        assert_eq!(
            HttpResponse::parse(b"HTTP/1.0 200 OK\r\n"),
            Err(ResponseError::NoHeaderEnd)
        );
        assert_eq!(
            HttpResponse::parse(b"garbage\r\n\r\n"),
            Err(ResponseError::NoStatusLine)
        );
        assert_eq!(parse_inspect(b"not json"), Err(ResponseError::BadJson));
        assert_eq!(parse_inspect(b"{\"Id\":\"x\"}"), Err(ResponseError::NoName));
        // Image id when Config.Image is missing.
        assert_eq!(
            parse_inspect(br#"{"Name":"/a","Image":"sha256:1"}"#)
                .unwrap()
                .image
                .as_deref(),
            Some("sha256:1")
        );
    }

    /// Serves one connection on a socket in a temporary directory with
    /// `response`, returning the request it read.
    fn fake_daemon(response: String) -> (tempfile::TempDir, PathBuf, std::thread::JoinHandle<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                request.push(byte[0]);
            }
            stream.write_all(response.as_bytes()).unwrap();
            String::from_utf8(request).unwrap()
        });
        (dir, path, server)
    }

    #[test]
    fn inspect_over_a_unix_socket() {
        let body = inspect_body();
        let (_dir, path, server) = fake_daemon(format!(
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{body}"
        ));
        let client = DockerClient::new(&path, Duration::from_secs(2));
        let container = client.inspect(ID).unwrap().unwrap();
        assert_eq!(container.name, "web");
        assert_eq!(container.image.as_deref(), Some("nginx:1.27"));
        let request = server.join().unwrap();
        assert!(
            request.starts_with(&format!("GET /containers/{ID}/json HTTP/1.0\r\n")),
            "{request}"
        );
    }

    #[test]
    fn unknown_container_is_none_and_errors_fail_soft() {
        let (_dir, path, server) = fake_daemon(
            "HTTP/1.0 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"message\":\"No such container\"}"
                .into(),
        );
        assert_eq!(
            DockerClient::new(&path, Duration::from_secs(2)).inspect(ID).unwrap(),
            None
        );
        server.join().unwrap();
        let (_dir, path, server) = fake_daemon("HTTP/1.0 500 Internal Server Error\r\n\r\n{}".into());
        assert!(DockerClient::new(&path, Duration::from_secs(2)).inspect(ID).is_err());
        server.join().unwrap();
        // No daemon at all.
        let missing = DockerClient::new("/nonexistent/docker.sock", Duration::from_millis(100));
        assert!(missing.inspect(ID).is_err());
        // An id that would escape the path is refused before connecting.
        assert_eq!(
            missing.inspect("../../version").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn silent_daemon_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let client = DockerClient::new(&path, Duration::from_millis(100));
        let started = std::time::Instant::now();
        // The listener accepts (the kernel queues the connection) but never
        // answers.
        let error = client.inspect(ID).unwrap_err();
        assert!(
            matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
            "{error:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(listener);
    }
}
