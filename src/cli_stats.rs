//! `pushwire stats`: fetches a server's `/stats` with one plain HTTP/1.1 request and prints it as
//! a table or as JSON.
use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::write_out;

/// Where `pushwire stats` sends its request.
#[derive(Debug, PartialEq)]
struct StatsTarget {
    /// `host:port` (port 80 when the URL names none).
    authority: String,
    /// `/stats` (or `/prefix/stats`), with `?channel=…` when asked.
    path: String,
}

impl StatsTarget {
    /// Accepts the server's base URL (`http://127.0.0.1:8080`, `http://host/prefix/`) or the full
    /// URL of its stats (`http://127.0.0.1:8080/stats`).
    fn parse(url: &str, channel: Option<&str>) -> Result<StatsTarget, String> {
        let rest = url
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
            .map(|_| &url[7..])
            .ok_or_else(|| format!("--url {url}: only http:// URLs are supported"))?;
        let rest = rest.split('#').next().unwrap_or_default();
        if rest.contains('?') {
            return Err(format!(
                "--url {url}: give the channel with --channel, not in the URL"
            ));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() {
            return Err(format!("--url {url}: no host"));
        }
        // A port-less authority: `host` or `[v6]`, not `host:port` or `[v6]:port`.
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(host, _)| !host.starts_with('[') || host.ends_with(']'));
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let path = path.trim_end_matches('/');
        let mut path = if path.ends_with("/stats") {
            path.to_string()
        } else {
            format!("{path}/stats")
        };
        if let Some(c) = channel {
            path.push_str("?channel=");
            path.push_str(&percent_encode(c));
        }
        Ok(StatsTarget { authority, path })
    }

    fn url(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }
}

/// Percent-encodes every byte but the unreserved ones (RFC 3986 §2.3), for a query value.
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fetches `/stats` with one plain HTTP/1.1 request and prints it. Every error names the URL.
pub fn print_stats(url: &str, channel: Option<&str>, json: bool) -> Result<(), String> {
    use std::io::Read;
    let target = StatsTarget::parse(url, channel)?;
    let url = target.url();
    let addrs: Vec<SocketAddr> = target
        .authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {} in {url}: {e}", target.authority))?
        .collect();
    let mut last_error = None;
    let mut stream = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, Duration::from_secs(5)) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some(mut stream) = stream else {
        let why = last_error.map_or("no address".to_string(), |e| e.to_string());
        return Err(format!(
            "cannot reach {url}: {why}; is the server running? (`cargo run --release` starts one \
             on 127.0.0.1:8080; --url names another)"
        ));
    };
    let io_error = |e: std::io::Error| format!("no answer from {url}: {e}");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io_error)?;
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    )
    .map_err(io_error)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(io_error)?;
    let body_start = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response from {url}"))?
        + 4;
    let head = String::from_utf8_lossy(&response[..body_start]);
    let body = String::from_utf8_lossy(&response[body_start..]);
    let status_line = head.lines().next().unwrap_or_default();
    if !status_line.starts_with("HTTP/1.1 200") {
        let status = status_line
            .split_once(' ')
            .map_or(status_line, |(_, status)| status);
        // The server's bodies repeat the status (`400 Bad Request: invalid channel name`).
        let body = body.trim();
        let body = body.strip_prefix(status).unwrap_or(body);
        let body = body.trim_start_matches(':').trim();
        let detail = if body.is_empty() {
            String::new()
        } else {
            format!(": {body}")
        };
        return Err(format!("GET {url} answered {status}{detail}"));
    }
    let stats: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("the answer of {url} is not JSON: {e}"))?;
    if json {
        write_out(&format!("{stats:#}\n"))
    } else {
        write_out(&pushwire::ledger::report::render_table(&stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str, channel: Option<&str>) -> (String, String) {
        let t = StatsTarget::parse(url, channel).unwrap();
        (t.authority, t.path)
    }

    #[test]
    fn stats_urls_may_be_a_base_or_the_stats_url_itself() {
        let want = ("127.0.0.1:8080".to_string(), "/stats".to_string());
        for url in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/stats",
            "http://127.0.0.1:8080/stats/",
            "HTTP://127.0.0.1:8080/stats#x",
        ] {
            assert_eq!(target(url, None), want, "{url}");
        }
        assert_eq!(
            target("http://localhost/push/", Some("news")),
            ("localhost:80".into(), "/push/stats?channel=news".into())
        );
        assert_eq!(
            target("http://[::1]:9000", Some("bad! c")),
            ("[::1]:9000".into(), "/stats?channel=bad%21%20c".into())
        );
        assert_eq!(target("http://[::1]", None).0, "[::1]:80");
        for bad in [
            "127.0.0.1:8080",
            "https://x",
            "http:///stats",
            "http://x/stats?channel=a",
        ] {
            let e = StatsTarget::parse(bad, None).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
