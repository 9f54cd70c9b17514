//! Interval polling and long polling: the query a poll carries and the JSON body that answers it.
//!
//! Pure functions over the hub's [`Backlog`]; the server decides when to answer (at once for
//! `/poll`, on a publish or a deadline for a parked `/longpoll`).
//!
//! ```text
//! GET /poll/c?since=N ──► messages after N held? ──yes──► 200 {"last_id":L,"messages":[…]}
//!                                  │no
//!                                  ▼
//!                     /poll: 204 No Content
//!                     /longpoll: park until a publish (→ 200) or the timeout (→ 204)
//! ```
//! The body always says `last_id`; a `gap` member lists ids that were published but are no longer
//! held, and `"reset":true` says the client's `since` is newer than anything the channel has (the
//! server restarted): in both cases `messages` carries everything held after the client's position.
pub mod longpoll;

pub use longpoll::LongPoll;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::hub::{Backlog, Message};
use crate::ledger::{Category, Layout};
use crate::outbuf::{Part, SharedUnit};

/// What a poll or long-poll request asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollQuery {
    /// Messages after this id; `None` means "from now": only `last_id` is returned.
    pub since: Option<u64>,
    /// How long a long-poll may stay parked (`timeout=S`, seconds, fractions allowed).
    pub timeout: Option<Duration>,
}

/// A query parameter that is not what the API takes → 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    /// `since` is not a non-negative integer.
    BadSince,
    /// `timeout` is not a positive number of seconds.
    BadTimeout,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueryError::BadSince => "since must be a non-negative integer",
            QueryError::BadTimeout => "timeout must be a positive number of seconds",
        })
    }
}

impl PollQuery {
    /// Reads `since` and `timeout` from a query string (other parameters are ignored).
    pub fn parse(query: Option<&str>) -> Result<PollQuery, QueryError> {
        let mut q = PollQuery {
            since: None,
            timeout: None,
        };
        for pair in query.unwrap_or("").split('&') {
            match pair.split_once('=') {
                Some(("since", v)) => {
                    q.since = Some(parse_id(v).ok_or(QueryError::BadSince)?);
                }
                Some(("timeout", v)) => {
                    let secs: f64 = v.parse().map_err(|_| QueryError::BadTimeout)?;
                    if !(secs.is_finite() && secs > 0.0) {
                        return Err(QueryError::BadTimeout);
                    }
                    q.timeout = Some(Duration::from_secs_f64(secs.min(1e9)));
                }
                _ => {}
            }
        }
        Ok(q)
    }
}

/// Parses a message id: ASCII digits only, fitting in 64 bits.
pub fn parse_id(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// The JSON object of one message, `{"id":N,"data":"…"}`, with its layout: the envelope around
/// the payload, and the payload counted at its published length (escaping is envelope).
pub fn encode_message_json<C>(message: &Message<C>) -> SharedUnit {
    let mut out = Vec::with_capacity(message.data.len() + 24);
    out.extend_from_slice(b"{\"id\":");
    out.extend_from_slice(message.id.to_string().as_bytes());
    out.extend_from_slice(b",\"data\":\"");
    let prefix = out.len();
    // Serializing a str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &*message.data);
    // serde_json wrote the opening quote again: drop ours.
    out.remove(prefix - 1);
    out.push(b'}');
    let payload = message.data.len();
    let layout = Layout::from_runs(&[
        (Category::JsonEnvelope, prefix),
        (Category::Payload, payload),
        (Category::JsonEnvelope, out.len() - prefix - payload),
    ]);
    SharedUnit::new(out, layout)
}

/// The JSON members that tell a client its position could not be served as asked:
/// `"gap":{"from":a,"to":b}` and `"reset":true`, each with a leading comma (the poll envelope,
/// the WebSocket notices and the SSE events all say it in these words).
pub fn gap_json(gap: crate::hub::Gap) -> String {
    format!("{{\"from\":{},\"to\":{}}}", gap.from, gap.to)
}

/// Whether a backlog has anything to tell: messages, a gap or a reset. When it does not, a poll is
/// answered 204 and a long-poll parks.
pub fn has_news<C>(backlog: &Backlog<C>) -> bool {
    !backlog.messages.is_empty() || backlog.gap.is_some() || backlog.reset
}

/// The JSON body answering a poll.
#[derive(Debug, Clone)]
pub struct Body {
    /// The envelope and each message's shared JSON object. Every long-poll parked after the same
    /// id is answered with the same body, so the parts are shared too: answering one more poll
    /// takes a reference, not a copy.
    pub parts: Arc<[Part]>,
    /// Total length, for Content-Length.
    pub len: usize,
    /// Messages carried.
    pub messages: usize,
}

/// Builds the body answering a poll: the envelope is made for this response, each message's JSON
/// object comes from `json` (the server's shares one encoding per message).
pub fn encode_body<C>(backlog: &Backlog<C>, json: impl Fn(&Message<C>) -> Arc<SharedUnit>) -> Body {
    let mut head = format!("{{\"last_id\":{}", backlog.last_id);
    if let Some(gap) = backlog.gap {
        head.push_str(",\"gap\":");
        head.push_str(&gap_json(gap));
    }
    if backlog.reset {
        head.push_str(",\"reset\":true");
    }
    head.push_str(",\"messages\":[");
    let mut parts = Vec::with_capacity(backlog.messages.len() * 2 + 2);
    let mut len = head.len();
    parts.push(Part::Shared(
        head.into_bytes().into(),
        Category::JsonEnvelope,
    ));
    for (i, m) in backlog.messages.iter().enumerate() {
        if i > 0 {
            parts.push(Part::Static(b",", Category::JsonEnvelope));
            len += 1;
        }
        let unit = json(m);
        len += unit.bytes.len();
        parts.push(Part::Delivery(unit, m.published_at));
    }
    parts.push(Part::Static(b"]}", Category::JsonEnvelope));
    len += 2;
    Body {
        parts: parts.into(),
        len,
        messages: backlog.messages.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Gap, HistoryLimits, Hub};

    fn body_string(b: &Backlog) -> String {
        let body = encode_body(b, |m| Arc::new(encode_message_json(m)));
        let bytes: Vec<u8> = body
            .parts
            .iter()
            .flat_map(|p| match p {
                Part::Shared(v, _) => v.to_vec(),
                Part::Static(v, _) => v.to_vec(),
                Part::Delivery(unit, _) => unit.bytes.to_vec(),
            })
            .collect();
        assert_eq!(bytes.len(), body.len);
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn parses_query() {
        assert_eq!(
            PollQuery::parse(Some("since=12&timeout=0.5&x=1")),
            Ok(PollQuery {
                since: Some(12),
                timeout: Some(Duration::from_millis(500))
            })
        );
        assert_eq!(PollQuery::parse(None).unwrap().since, None);
        for bad in [
            "since=-1",
            "since=",
            "since=1e3",
            "since=99999999999999999999",
        ] {
            assert_eq!(
                PollQuery::parse(Some(bad)),
                Err(QueryError::BadSince),
                "{bad}"
            );
        }
        for bad in [
            "timeout=0",
            "timeout=abc",
            "timeout=-2",
            "timeout=NaN",
            "timeout=inf",
        ] {
            assert_eq!(
                PollQuery::parse(Some(bad)),
                Err(QueryError::BadTimeout),
                "{bad}"
            );
        }
    }

    #[test]
    fn ids_are_plain_digits_and_errors_say_what_is_wanted() {
        assert_eq!(parse_id("42"), Some(42));
        for bad in ["+5", "", " 5", "5 "] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
        assert_eq!(
            QueryError::BadSince.to_string(),
            "since must be a non-negative integer"
        );
        assert_eq!(
            QueryError::BadTimeout.to_string(),
            "timeout must be a positive number of seconds"
        );
    }

    #[test]
    fn news_is_a_message_a_gap_or_a_reset() {
        let nothing: Backlog = Backlog {
            last_id: 3,
            messages: Vec::new(),
            gap: None,
            reset: false,
        };
        assert!(!has_news(&nothing));
        let message = Arc::new(Message::new(4, "m".into(), std::time::Instant::now()));
        for news in [
            Backlog {
                messages: vec![message],
                ..nothing.clone()
            },
            Backlog {
                gap: Some(Gap { from: 1, to: 2 }),
                ..nothing.clone()
            },
            Backlog {
                reset: true,
                ..nothing.clone()
            },
        ] {
            assert!(has_news(&news), "{news:?}");
        }
    }

    #[test]
    fn encodes_messages_json_escaped() {
        let m: Message = Message::new(7, "say \"hi\"\n\u{1}é".into(), std::time::Instant::now());
        let unit = encode_message_json(&m);
        assert_eq!(
            std::str::from_utf8(&unit.bytes).unwrap(),
            r#"{"id":7,"data":"say \"hi\"\n\u0001é"}"#
        );
        assert_eq!(
            unit.layout.runs(),
            [
                (Category::JsonEnvelope, 16),
                (Category::Payload, 12),
                (Category::JsonEnvelope, 10)
            ]
        );
    }

    #[test]
    fn encodes_body_with_gap_and_reset() {
        let mut hub: Hub = Hub::new(HistoryLimits {
            max_messages: 2,
            max_bytes: 100,
            ..HistoryLimits::default()
        });
        for d in ["a", "b", "c"] {
            hub.publish("ch", d.into(), std::time::Instant::now())
                .unwrap();
        }
        let b = hub.since("ch", 0);
        assert_eq!(b.gap, Some(Gap { from: 1, to: 1 }));
        assert_eq!(
            body_string(&b),
            r#"{"last_id":3,"gap":{"from":1,"to":1},"messages":[{"id":2,"data":"b"},{"id":3,"data":"c"}]}"#
        );
        assert_eq!(
            body_string(&hub.since("ch", 9)),
            r#"{"last_id":3,"reset":true,"messages":[{"id":2,"data":"b"},{"id":3,"data":"c"}]}"#
        );
        assert!(!has_news(&hub.since("ch", 3)));
        assert_eq!(
            body_string(&hub.since("ch", 3)),
            r#"{"last_id":3,"messages":[]}"#
        );
    }
}
