//! The few URLs the tools take: `http://host:port/path?query` and `ws://…`, with `{channel}`
//! templates filled in before parsing.
use std::net::{SocketAddr, ToSocketAddrs};

/// A parsed `http://` or `ws://` URL: where to connect and what to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `ws` or `http` (`https`/`wss` are refused: the tools measure plain TCP).
    pub websocket: bool,
    /// `host[:port]` as written, for the `Host` field.
    pub authority: String,
    /// The first address `authority` resolves to (port 80 when none is given).
    pub addr: SocketAddr,
    /// Path and query, never empty (`/` at least).
    pub target: String,
}

impl Url {
    /// Parses an `http://` or `ws://` URL and resolves its host; an error says what is wrong.
    pub fn parse(s: &str) -> Result<Url, String> {
        let (websocket, rest) = if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("ws://") {
            (true, r)
        } else {
            return Err(format!("{s}: only http:// and ws:// URLs are supported"));
        };
        let (authority, target) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{s}: no host"));
        }
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{s}: {e}"))?
            .next()
            .ok_or_else(|| format!("{s}: no address"))?;
        Ok(Url {
            websocket,
            authority: authority.to_string(),
            addr,
            target: target.to_string(),
        })
    }

    /// Fills `{channel}` in `template` and parses the result.
    pub fn from_template(template: &str, channel: &str) -> Result<Url, String> {
        Url::parse(&template.replace("{channel}", channel))
    }

    /// The target with `name=value` set in the query (an existing `name=` is replaced).
    pub fn target_with(&self, params: &[(&str, String)]) -> String {
        let (path, query) = match self.target.split_once('?') {
            Some((p, q)) => (p, q),
            None => (self.target.as_str(), ""),
        };
        let mut pairs: Vec<String> = query
            .split('&')
            .filter(|p| {
                !p.is_empty() && !params.iter().any(|(n, _)| p.split('=').next() == Some(n))
            })
            .map(str::to_string)
            .collect();
        pairs.extend(params.iter().map(|(n, v)| format!("{n}={v}")));
        if pairs.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", pairs.join("&"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rewrites_queries() {
        let u = Url::from_template("ws://127.0.0.1:9/ws/{channel}?since=0&x=1", "news").unwrap();
        assert!(u.websocket);
        assert_eq!(u.authority, "127.0.0.1:9");
        assert_eq!(u.addr, "127.0.0.1:9".parse().unwrap());
        assert_eq!(u.target, "/ws/news?since=0&x=1");
        assert_eq!(
            u.target_with(&[("since", "7".into())]),
            "/ws/news?x=1&since=7"
        );
        let bare = Url::parse("http://127.0.0.1:8").unwrap();
        assert_eq!(bare.target, "/");
        assert_eq!(bare.target_with(&[]), "/");
        assert!(Url::parse("https://x").is_err());
    }
}
