//! Black-box harness: runs the `pushwire` binary on port 0 and talks to it over real sockets with
//! literal bytes. Every read has a timeout, so a server that stops answering fails the test instead
//! of hanging it.
#![allow(dead_code)]

pub mod ws;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any single read may wait before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the server gets to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A `pushwire` process on a free port, killed when dropped.
pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
}

impl TestServer {
    /// Spawns `pushwire --addr 127.0.0.1:0 <flags>` and waits for its listening line.
    pub fn start(flags: &[&str]) -> TestServer {
        TestServer::start_at("127.0.0.1:0", flags)
    }

    /// Spawns `pushwire --addr <addr> <flags>` and waits for its listening line.
    pub fn start_at(addr: &str, flags: &[&str]) -> TestServer {
        TestServer::spawn(addr, flags, false, None)
    }

    /// Like [`TestServer::start`], run by `sh` after `ulimit` with `limit` (`-Sn 64`: the soft
    /// open-file limit; `-n 128`: soft and hard).
    pub fn start_with_ulimit(limit: &str, flags: &[&str]) -> TestServer {
        TestServer::spawn("127.0.0.1:0", flags, false, Some(limit))
    }

    /// Like [`TestServer::start`], with the server's stderr a pipe whose reading end is closed at
    /// once: every write to stderr fails with `EPIPE`.
    pub fn start_with_closed_stderr(flags: &[&str]) -> TestServer {
        TestServer::spawn("127.0.0.1:0", flags, true, None)
    }

    fn spawn(addr: &str, flags: &[&str], closed_stderr: bool, ulimit: Option<&str>) -> TestServer {
        let bin = env!("CARGO_BIN_EXE_pushwire");
        let mut cmd = match ulimit {
            Some(limit) => {
                let mut sh = Command::new("sh");
                // `exec` keeps the pid: the child handle is the server itself.
                sh.args(["-c", &format!("ulimit {limit} && exec \"$0\" \"$@\""), bin]);
                sh
            }
            None => Command::new(bin),
        };
        cmd.args(["--addr", addr])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        // Server logs stay out of the test output unless asked for.
        if closed_stderr {
            cmd.stderr(Stdio::piped());
        } else if std::env::var_os("PUSHWIRE_TEST_LOG").is_some() {
            cmd.stderr(Stdio::inherit());
        } else {
            cmd.stderr(Stdio::null()).env("RUST_LOG", "error");
        }
        let mut child = cmd.spawn().expect("spawn pushwire");
        drop(child.stderr.take());
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("pushwire {flags:?} printed no listening line within {START_TIMEOUT:?}");
            }
        };
        let Some(addr) = line
            .trim_end()
            .strip_prefix("pushwire listening on http://")
            .and_then(|a| a.parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unexpected first line from pushwire {flags:?}: {line:?}");
        };
        TestServer { child, addr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The server's resident memory now, in bytes (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .expect("VmRSS line");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in kB");
        kib * 1024
    }

    /// CPU time this server process has used so far, user and system, from `/proc/<pid>/stat`
    /// (fields 14 and 15, in the kernel's USER_HZ ticks: 100 per second on Linux).
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read /proc/<pid>/stat");
        // The command name (field 2) is in parentheses and may hold spaces: count after it.
        let after_name = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
        let fields: Vec<&str> = after_name.split(' ').collect();
        // fields[0] is field 3 (state), so utime (14) and stime (15) are fields[11] and [12].
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10)
    }

    /// Sends a signal (`INT`, `TERM`, …) to this server's process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// The exit status, if the process exits within `timeout`.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A fresh connection.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Sends `raw` on a fresh connection and reads one response.
    pub fn request(&self, raw: &[u8]) -> Response {
        let mut c = self.connect();
        c.send(raw);
        c.read_response()
    }

    /// Publishes `data` to `channel` on a fresh connection; returns the id the server assigned.
    pub fn publish(&self, channel: &str, data: &str) -> u64 {
        let r = self.request(&publish_request(channel, data));
        assert_eq!(r.status, 200, "publish to {channel}: {r:?}");
        let json = r.json();
        assert_eq!(json["channel"], channel, "{json}");
        json["id"].as_u64().expect("numeric id")
    }

    /// `GET /poll/{channel}[?since=N]` on a fresh connection.
    pub fn poll(&self, channel: &str, since: Option<u64>) -> Response {
        self.request(&poll_request(channel, since))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Only the child this harness spawned, by its handle.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `POST /pub/{channel}` with a Content-Length body.
pub fn publish_request(channel: &str, data: &str) -> Vec<u8> {
    format!(
        "POST /pub/{channel} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{data}",
        data.len()
    )
    .into_bytes()
}

/// `GET /poll/{channel}[?since=N]`.
pub fn poll_request(channel: &str, since: Option<u64>) -> Vec<u8> {
    let query = since.map(|s| format!("?since={s}")).unwrap_or_default();
    format!("GET /poll/{channel}{query} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

/// `GET /longpoll/{channel}?since=N&timeout=S` (either part optional).
pub fn longpoll_request(channel: &str, since: Option<u64>, timeout: Option<f64>) -> Vec<u8> {
    let mut params = Vec::new();
    if let Some(s) = since {
        params.push(format!("since={s}"));
    }
    if let Some(t) = timeout {
        params.push(format!("timeout={t}"));
    }
    let query = if params.is_empty() {
        String::new()
    } else {
        format!("?{}", params.join("&"))
    };
    format!("GET /longpoll/{channel}{query} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

/// One parsed response.
#[derive(Clone)]
pub struct Response {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("version", &self.version)
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl Response {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body_str()))
    }

    /// Whether the response says `Connection: close`.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    /// The ids in a poll body's `messages`, in order.
    pub fn message_ids(&self) -> Vec<u64> {
        self.json()["messages"]
            .as_array()
            .expect("messages array")
            .iter()
            .map(|m| m["id"].as_u64().expect("numeric id"))
            .collect()
    }

    /// The data strings in a poll body's `messages`, in order.
    pub fn message_data(&self) -> Vec<String> {
        self.json()["messages"]
            .as_array()
            .expect("messages array")
            .iter()
            .map(|m| m["data"].as_str().expect("string data").to_owned())
            .collect()
    }
}

/// A client connection with a read buffer, so pipelined responses can be read one by one.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// A client on a socket connected by the caller (e.g. bound to another loopback address).
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    /// Like [`Client::send`], but a failure (the server already closed) is returned, not a panic.
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Ends our side of the connection (the server sees EOF).
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    /// Reads more bytes into the buffer; Ok(0) at EOF. Panics on timeout.
    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!(
                        "no answer from the server within the read timeout; buffered: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    )
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn fill_or_panic(&mut self, what: &str) -> usize {
        self.fill()
            .unwrap_or_else(|e| panic!("read error while reading {what}: {e}"))
    }

    /// Takes exactly `n` bytes from the connection (panics on EOF or timeout).
    pub fn read_exact_bytes(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            if self.fill_or_panic("bytes") == 0 {
                panic!(
                    "EOF after {} of {n} bytes: {:?}",
                    self.buf.len(),
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
        self.buf.drain(..n).collect()
    }

    /// Reads one response: status line, headers, and a body framed by Content-Length, chunked,
    /// nothing (1xx/204/304), or the end of the connection.
    pub fn read_response(&mut self) -> Response {
        let mut response = self.read_response_head();
        let status = response.status;
        if status < 200 || status == 204 || status == 304 {
            return response;
        }
        if let Some(len) = response.header("content-length") {
            let len: usize = len.parse().expect("numeric Content-Length");
            response.body = self.read_exact_bytes(len);
        } else if response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            response.body = self.read_chunked_body();
        } else {
            response.body = self.read_to_eof();
        }
        response
    }

    /// Reads a response's status line and header fields only (a stream's body stays unread).
    pub fn read_response_head(&mut self) -> Response {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.fill_or_panic("a response head") == 0 {
                panic!(
                    "EOF before a complete response head: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        };
        let head: Vec<u8> = self.buf.drain(..head_end).collect();
        let head = String::from_utf8(head).expect("ASCII response head");
        let mut lines = head.trim_end_matches("\r\n").split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_owned();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let reason = parts.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {l:?}"));
                (n.to_owned(), v.trim().to_owned())
            })
            .collect();
        Response {
            version,
            status,
            reason,
            headers,
            body: Vec::new(),
        }
    }

    fn read_line(&mut self) -> String {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).collect();
                return String::from_utf8_lossy(&line[..i]).into_owned();
            }
            if self.fill_or_panic("a line") == 0 {
                panic!("EOF inside a chunked body");
            }
        }
    }

    fn read_chunked_body(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line();
            let size = line.split(';').next().unwrap().trim();
            let size = usize::from_str_radix(size, 16).expect("hex chunk size");
            if size == 0 {
                while !self.read_line().is_empty() {}
                return body;
            }
            body.extend(self.read_exact_bytes(size));
            assert_eq!(self.read_exact_bytes(2), b"\r\n", "chunk data ends in CRLF");
        }
    }

    /// Everything until the server closes its side (panics on timeout).
    pub fn read_to_eof(&mut self) -> Vec<u8> {
        while self.fill_or_panic("until EOF") > 0 {}
        std::mem::take(&mut self.buf)
    }

    /// Asserts the server closes the connection without sending anything more. A reset counts as
    /// closed too.
    pub fn assert_closed(&mut self) {
        match self.fill() {
            Ok(0) => assert!(
                self.buf.is_empty(),
                "unexpected bytes before close: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
            Ok(_) => {
                // Read the rest so the message shows everything.
                let _ = self.fill();
                panic!(
                    "expected the server to close, got bytes: {:?}",
                    String::from_utf8_lossy(&self.buf)
                )
            }
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ),
                "unexpected read error: {e}"
            ),
        }
    }

    /// Whether any byte arrives within `wait` (false on silence; panics on EOF).
    pub fn receives_within(&mut self, wait: Duration) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut b = [0u8; 4096];
        let got = match self.stream.read(&mut b) {
            Ok(0) => panic!("server closed the connection"),
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(e) => panic!("read error: {e}"),
        };
        self.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        got
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A channel name no other part of a test uses.
pub fn unique_channel(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The server still answers a fresh client: a publish and a poll round trip.
pub fn assert_still_serving(server: &TestServer) {
    let channel = unique_channel("alive");
    let id = server.publish(&channel, "still here");
    assert_eq!(id, 1);
    let r = server.poll(&channel, Some(0));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.message_data(), ["still here"]);
}
