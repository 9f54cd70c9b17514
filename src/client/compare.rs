//! `pushwire compare`: one workload over the four transports against one pushwire server, a forced
//! drop in the middle, and what each transport cost, measured on the client and checked against the
//! server's ledger.
//!
//! ```text
//!  connect N subscribers per transport (since=0: nothing published can be missed)
//!  publish the first half at --rate ─► wait until every subscriber has it
//!  drop: every subscriber closes at a quiet moment, then resumes by its own rules
//!  publish the second half ─► wait until every subscriber has everything (or a deadline)
//!  close, read GET /stats, compare bytes to the byte
//! ```
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

use super::driver::{Driver, Role, Sink};
use super::http::fetch_json;
use super::payload;
use super::publisher::Publisher;
use super::subscriber::{Counters, Delivery, Kind, Options, Subscriber};
use super::url::Url;
use crate::config::Config;
use crate::server::Server;

/// The workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// A running pushwire; `None` starts one in this process on a loopback port.
    pub url: Option<String>,
    /// Subscribers per transport.
    pub subscribers: usize,
    /// Messages published in all: half before the drop, half after.
    pub messages: u64,
    /// Messages per second.
    pub rate: f64,
    /// Size of each message, in bytes (longer when the sequence number and send time need more).
    pub payload: usize,
    /// How long pollers wait between an answer and their next request.
    pub poll_interval: Duration,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            url: None,
            subscribers: 4,
            messages: 200,
            rate: 20.0,
            payload: 64,
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// Latency percentiles of one transport, in microseconds from publish to receipt, measured on
/// the client against the send time each payload carries.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Median latency, µs.
    pub p50: u64,
    /// 90th percentile, µs.
    pub p90: u64,
    /// 99th percentile, µs.
    pub p99: u64,
    /// Largest latency, µs (to the histogram's 3 significant digits).
    pub max: u64,
}

impl Latency {
    /// The percentiles of `h`, a histogram in microseconds.
    pub fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// The server's view of one transport for the run (the difference of two `/stats` readings).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LedgerView {
    /// Bytes the ledger counts as written to this transport's clients during the run.
    pub bytes_out: u64,
    /// Bytes the ledger counts as read from them.
    pub bytes_in: u64,
    /// Payload bytes among `bytes_out`.
    pub payload_out: u64,
    /// Whether the ledger's out equals the clients' bytes read and its in their bytes written:
    /// every byte accounted for on both sides.
    pub agrees: bool,
}

/// One column of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    /// The transport measured.
    pub transport: Kind,
    /// Subscribers of this transport.
    pub subscribers: usize,
    /// Messages every subscriber should have received, summed.
    pub expected: u64,
    /// Messages received, duplicates included.
    pub delivered: u64,
    /// Expected messages some subscriber never received, summed over subscribers.
    pub lost: u64,
    /// Extra copies of messages a subscriber had already received, summed over subscribers.
    pub duplicated: u64,
    /// The subscribers' counters, summed.
    pub counters: Counters,
    /// Requests written per delivered message (the cost of asking; a stream's is near 0).
    pub requests_per_message: f64,
    /// Messages per non-empty poll answer (pollers only; 0 for streams).
    pub messages_per_response: f64,
    /// Server → client, per delivered message.
    pub down_per_message: f64,
    /// Payload bytes received per delivered message: the message size when nothing is lost.
    pub down_payload_per_message: f64,
    /// Bytes received per delivered message that are not payload: heads, framing, envelopes,
    /// handshakes, control frames and empty answers.
    pub down_overhead_per_message: f64,
    /// Server → client overhead per message once the stream is open: without the opening
    /// exchanges and control frames (SSE and WebSocket framing and envelope).
    pub stream_overhead_per_message: f64,
    /// Client → server, per delivered message.
    pub up_per_message: f64,
    /// Opening request and answer head, per connection (SSE and WebSocket).
    pub handshake_up: f64,
    /// Answer head bytes of the opening exchange, per connection (SSE and WebSocket).
    pub handshake_down: f64,
    /// Publish-to-receipt latency percentiles, in microseconds.
    pub latency_us: Latency,
    /// From the drop to the first message on the resumed connection, slowest subscriber.
    pub recovery_ms: f64,
    /// How the transport resumes after a drop ([`Kind::resume_rule`]).
    pub resumed_by: &'static str,
    /// The server's ledger for this transport over the run, checked against `counters`.
    pub ledger: LedgerView,
}

/// One claim of the comparison (`shared/CLAIMS.md`) and what this run measured about it.
#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    /// The claim as the comparison states it.
    pub claim: &'static str,
    /// What the run's figures say about it, numbers included.
    pub verdict: String,
}

/// What `pushwire compare` measured: the workload, one column per transport, the publisher's
/// counts, and a verdict for each claim.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The server's base URL, or `embedded` for one started in this process.
    pub server: String,
    /// Subscribers per transport.
    pub subscribers: usize,
    /// Messages published, half before the drop and half after.
    pub messages: u64,
    /// Publish rate, in messages per second.
    pub rate: f64,
    /// Size of each message, in bytes.
    pub payload: usize,
    /// The pollers' interval, in seconds.
    pub poll_interval_s: f64,
    /// Wall time of the run, in seconds (one decimal).
    pub elapsed_s: f64,
    /// One column per transport, in [`Kind::ALL`] order.
    pub columns: Vec<Column>,
    /// The publisher: one keep-alive connection of `POST`s.
    pub publish: Counters,
    /// The server's ledger for the `publish` transport over the run, checked against `publish`.
    pub publish_ledger: LedgerView,
    /// Every transport's client-side byte counts equal the server ledger's.
    pub ledger_agrees: bool,
    /// Each claim with its measured verdict.
    pub claims: Vec<Claim>,
}

/// Per-subscriber bookkeeping.
#[derive(Default)]
struct Track {
    seen: Vec<u8>,
    first_after_drop: Option<Instant>,
}

struct CompareSink {
    tracks: Vec<Track>,
    latency: Vec<Histogram<u64>>,
    dropped_at: Option<Instant>,
}

impl Sink for CompareSink {
    fn deliver(&mut self, key: usize, sub: &Subscriber, d: Delivery<'_>, now: Instant) {
        let Some((seq, sent)) = payload::decode(d.data) else {
            return;
        };
        let t = &mut self.tracks[key];
        let i = seq as usize;
        if t.seen.len() <= i {
            t.seen.resize(i + 1, 0);
        }
        t.seen[i] = t.seen[i].saturating_add(1);
        if self.dropped_at.is_some() && t.first_after_drop.is_none() {
            t.first_after_drop = Some(now);
        }
        let lat = payload::micros_at(now).saturating_sub(sent).max(1);
        let _ = self.latency[sub.tag].record(lat);
    }
}

impl CompareSink {
    fn count(&self, key: usize, upto: u64) -> u64 {
        let seen = &self.tracks[key].seen;
        (1..=upto as usize)
            .filter(|&i| seen.get(i).is_some_and(|&c| c > 0))
            .count() as u64
    }
}

/// A pushwire started in this process, stopped when dropped.
struct Embedded {
    handle: crate::server::ShutdownHandle,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn embedded() -> Result<(Embedded, SocketAddr), String> {
    let config = Config {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        demo_channel: None,
        shutdown_grace: Duration::from_millis(200),
        ..Config::default()
    };
    let server = Server::bind(config).map_err(|e| format!("cannot start a server: {e}"))?;
    let addr = server.local_addr();
    let handle = server.shutdown_handle();
    let thread = std::thread::Builder::new()
        .name("pushwire-server".into())
        .spawn(move || server.run())
        .map_err(|e| e.to_string())?;
    Ok((
        Embedded {
            handle,
            thread: Some(thread),
        },
        addr,
    ))
}

/// Runs the workload; `progress` is told how many messages were published.
pub fn run(w: &Workload, progress: &dyn Fn(u64, &str)) -> Result<Report, String> {
    let (_server, base) = match &w.url {
        Some(u) => (None, u.trim_end_matches('/').to_string()),
        None => {
            let (s, addr) = embedded()?;
            (Some(s), format!("http://{addr}"))
        }
    };
    let base_url = Url::parse(&base)?;
    let (addr, authority) = (base_url.addr, base_url.authority.clone());
    let before = fetch_json(addr, &authority, "GET", "/stats")?;
    let started = Instant::now();
    payload::epoch();
    let channel = format!(
        "compare-{}-{}",
        std::process::id(),
        payload::now_micros() % 1_000_000
    );
    let ws_base = base.replacen("http://", "ws://", 1);
    let template = |k: Kind| match k {
        Kind::Poll => format!("{base}/poll/{channel}?since=0"),
        Kind::LongPoll => format!("{base}/longpoll/{channel}?since=0"),
        Kind::Sse => format!("{base}/sse/{channel}?last_event_id=0"),
        Kind::Ws | Kind::WsDeflate => format!("{ws_base}/ws/{channel}?since=0"),
    };
    let opts = Options {
        poll_interval: w.poll_interval,
        ..Options::default()
    };
    let mut driver = Driver::new(Vec::new()).map_err(|e| e.to_string())?;
    let mut subs = Vec::new();
    for (tag, kind) in Kind::COMPARED.into_iter().enumerate() {
        let url = Url::parse(&template(kind))?;
        for i in 0..w.subscribers {
            let sub = Subscriber::new(
                kind,
                url.clone(),
                tag,
                opts.clone(),
                (tag * 1000 + i) as u64,
            );
            let key = driver.add(Role::Sub(Box::new(sub)), url.addr);
            driver.connect(key);
            subs.push(key);
        }
    }
    let pub_url = Url::parse(&format!("{base}/pub/{channel}"))?;
    let publisher = driver.add(
        Role::Pub(Box::new(Publisher::new(pub_url.clone(), 0))),
        pub_url.addr,
    );
    driver.connect(publisher);
    let mut sink = CompareSink {
        tracks: (0..driver.len()).map(|_| Track::default()).collect(),
        latency: (0..Kind::COMPARED.len())
            .map(|_| Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"))
            .collect(),
        dropped_at: None,
    };
    let tick = Duration::from_millis(5);
    let ready = |d: &Driver| {
        d.roles().all(|(_, r)| match r {
            Role::Sub(s) => s.is_ready(),
            Role::Pub(p) => p.counters.connections > 0,
        })
    };
    wait(
        &mut driver,
        &mut sink,
        Duration::from_secs(10),
        tick,
        |d, _| ready(d),
    )
    .map_err(|_| "subscribers did not all connect within 10 s".to_string())?;
    progress(0, "subscribed");

    let half = w.messages / 2;
    let mut buf = Vec::new();
    let mut publish = |driver: &mut Driver, sink: &mut CompareSink, from: u64, to: u64| {
        let t0 = Instant::now();
        for seq in from..=to {
            let due = t0 + Duration::from_secs_f64((seq - from) as f64 / w.rate.max(0.001));
            while Instant::now() < due {
                let _ = driver.turn(
                    due.saturating_duration_since(Instant::now()).min(tick),
                    sink,
                );
            }
            buf.clear();
            payload::encode(seq, payload::now_micros(), w.payload, &mut buf);
            driver.publish(publisher, &buf);
            progress(
                seq,
                if sink.dropped_at.is_some() {
                    "resumed"
                } else {
                    "publishing"
                },
            );
        }
    };
    let all_have = |d: &Driver, s: &CompareSink, upto: u64| {
        subs.iter().all(|&k| s.count(k, upto) == upto) && {
            matches!(d.role(publisher), Some(Role::Pub(p)) if p.outstanding == 0)
        }
    };
    let settle = w.poll_interval * 2 + Duration::from_secs(5);
    publish(&mut driver, &mut sink, 1, half);
    let _ = wait(&mut driver, &mut sink, settle, tick, |d, s| {
        all_have(d, s, half)
    });
    // The drop: every subscriber closes at a quiet moment and resumes by its own rules.
    progress(half, "dropping every subscriber");
    sink.dropped_at = Some(Instant::now());
    for &k in &subs {
        driver.close_soon(k, true);
    }
    // Publishing again before the server has seen every close would write the next message into
    // sockets the clients already closed: bytes the ledger counts and no client reads.
    let query = format!("/stats?channel={channel}");
    let unsubscribed = Instant::now() + Duration::from_secs(3);
    while Instant::now() < unsubscribed {
        let stats = fetch_json(addr, &authority, "GET", &query)?;
        if stats["channel"]["subscribers"].as_u64() == Some(0) {
            break;
        }
        let _ = driver.turn(tick, &mut sink);
    }
    publish(&mut driver, &mut sink, half + 1, w.messages);
    let _ = wait(
        &mut driver,
        &mut sink,
        settle + opts.sse_default_retry,
        tick,
        |d, s| all_have(d, s, w.messages),
    );
    // Close at quiet moments, then let the server read every EOF.
    for &k in &subs {
        driver.close_soon(k, false);
    }
    let _ = wait(&mut driver, &mut sink, settle, tick, |d, _| {
        d.roles().all(|(_, r)| match r {
            Role::Sub(s) => !s.is_connected(),
            Role::Pub(p) => p.outstanding == 0,
        })
    });
    driver.close_all();
    let elapsed = started.elapsed();
    progress(w.messages, "reading the ledger");
    let mut totals = [Counters::default(); Kind::COMPARED.len()];
    let mut publish_counters = Counters::default();
    for (_, role) in driver.roles() {
        match role {
            Role::Sub(s) => totals[s.tag].add(&s.counters),
            Role::Pub(p) => publish_counters.add(&p.counters),
        }
    }
    // The server reads our last bytes and EOFs on its own loop: read /stats until it agrees.
    let deadline = Instant::now() + Duration::from_secs(3);
    let (ledgers, publish_ledger) = loop {
        let after = fetch_json(addr, &authority, "GET", "/stats")?;
        let view = |name: &str, c: &Counters| ledger_view(&before, &after, name, c);
        // Both WebSocket columns are one transport in the server's ledger: checked together.
        let mut ws = Counters::default();
        for (k, c) in Kind::COMPARED.iter().zip(&totals) {
            if k.is_ws() {
                ws.add(c);
            }
        }
        let ledgers: Vec<LedgerView> = Kind::COMPARED
            .iter()
            .zip(&totals)
            .map(|(k, c)| view(k.ledger_name(), if k.is_ws() { &ws } else { c }))
            .collect();
        let publish_ledger = view("publish", &publish_counters);
        let agree = ledgers.iter().all(|l| l.agrees) && publish_ledger.agrees;
        if agree || Instant::now() > deadline {
            break (ledgers, publish_ledger);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let columns: Vec<Column> = Kind::COMPARED
        .into_iter()
        .enumerate()
        .map(|(tag, kind)| {
            let keys: Vec<usize> = subs
                .iter()
                .copied()
                .filter(|&k| matches!(driver.role(k), Some(Role::Sub(s)) if s.tag == tag))
                .collect();
            column(
                kind,
                &keys,
                &totals[tag],
                &sink,
                w,
                ledgers[tag],
                &sink.latency[tag],
            )
        })
        .collect();
    let ledger_agrees = columns.iter().all(|c| c.ledger.agrees) && publish_ledger.agrees;
    let mut report = Report {
        server: if w.url.is_some() {
            base
        } else {
            "embedded".into()
        },
        subscribers: w.subscribers,
        messages: w.messages,
        rate: w.rate,
        payload: w.payload,
        poll_interval_s: w.poll_interval.as_secs_f64(),
        elapsed_s: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        columns,
        publish: publish_counters,
        publish_ledger,
        ledger_agrees,
        claims: Vec::new(),
    };
    report.claims = super::report::claims(&report);
    Ok(report)
}

fn column(
    kind: Kind,
    keys: &[usize],
    c: &Counters,
    sink: &CompareSink,
    w: &Workload,
    ledger: LedgerView,
    latency: &Histogram<u64>,
) -> Column {
    let expected = w.messages * keys.len() as u64;
    let mut distinct = 0;
    let mut duplicated = 0;
    let mut recovery = Duration::ZERO;
    for &k in keys {
        distinct += sink.count(k, w.messages);
        let seen = &sink.tracks[k].seen;
        duplicated += seen
            .iter()
            .map(|&n| u64::from(n.saturating_sub(1)))
            .sum::<u64>();
        if let (Some(at), Some(drop)) = (sink.tracks[k].first_after_drop, sink.dropped_at) {
            recovery = recovery.max(at.saturating_duration_since(drop));
        }
    }
    let delivered = c.messages.max(1) as f64;
    let per = |n: u64| round2(n as f64 / delivered);
    let conns = c.connections.max(1) as f64;
    let with_messages = c.responses.saturating_sub(c.empty).max(1) as f64;
    Column {
        transport: kind,
        subscribers: keys.len(),
        expected,
        delivered: c.messages,
        lost: expected.saturating_sub(distinct),
        duplicated,
        counters: *c,
        requests_per_message: per(c.requests),
        messages_per_response: match kind {
            Kind::Poll | Kind::LongPoll => round2(c.messages as f64 / with_messages),
            _ => 0.0,
        },
        down_per_message: per(c.bytes_in),
        down_payload_per_message: per(c.payload_in),
        // Negative for a compressed WebSocket when compression saves more than the framing costs.
        down_overhead_per_message: round2((c.bytes_in as f64 - c.payload_in as f64) / delivered),
        stream_overhead_per_message: per(c
            .bytes_in
            .saturating_sub(c.payload_in + c.handshake_in + c.control_in)),
        up_per_message: per(c.bytes_out),
        handshake_up: round2(c.handshake_out as f64 / conns),
        handshake_down: round2(c.handshake_in as f64 / conns),
        latency_us: Latency::of(latency),
        recovery_ms: round2(recovery.as_secs_f64() * 1000.0),
        resumed_by: kind.resume_rule(),
        ledger,
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The ledger's figures for one transport between two `/stats` readings, checked against the
/// client's counts (the server's out is the client's in).
fn ledger_view(before: &Value, after: &Value, name: &str, c: &Counters) -> LedgerView {
    let get = |v: &Value, path: &[&str]| -> u64 {
        let mut v = &v["transports"][name];
        for p in path {
            v = &v[*p];
        }
        v.as_u64().unwrap_or(0)
    };
    let delta = |path: &[&str]| get(after, path).saturating_sub(get(before, path));
    let view = LedgerView {
        bytes_out: delta(&["total_out"]),
        bytes_in: delta(&["total_in"]),
        payload_out: delta(&["bytes_out", "payload"]),
        agrees: false,
    };
    LedgerView {
        agrees: view.bytes_out == c.bytes_in && view.bytes_in == c.bytes_out,
        ..view
    }
}

/// Turns the driver until `done` or the timeout; `Err` on timeout.
fn wait(
    driver: &mut Driver,
    sink: &mut CompareSink,
    timeout: Duration,
    tick: Duration,
    mut done: impl FnMut(&Driver, &CompareSink) -> bool,
) -> Result<(), ()> {
    let deadline = Instant::now() + timeout;
    loop {
        if done(driver, sink) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(());
        }
        let _ = driver.turn(tick, sink);
    }
}
