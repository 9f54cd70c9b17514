//! `pushwire load`: N subscribers per transport across K channels, published to at a rate, on
//! one mio loop per thread. Every message carries its sequence number and send time
//! ([`super::payload`]), so loss (holes and tail), duplicates, order and latency are measured
//! without trusting the server's ids; any server whose endpoints fit the URL templates can be
//! driven.
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::compare::Latency;
use super::driver::{Driver, Role, Sink};
use super::payload;
use super::procstat;
use super::publisher::Publisher;
use super::subscriber::{Counters, Delivery, Kind, Options, Subscriber};
use super::url::Url;

pub use super::report::load_table as table;

/// What `pushwire load` runs: the URL templates (`{channel}` is filled in), how many subscribers
/// and channels, and the publish rate, size and duration.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// `http://host/pub/{channel}`
    pub pub_url: String,
    /// Subscriber URL template per transport.
    pub sub_urls: Vec<(Kind, String)>,
    /// Subscribers per transport.
    pub subscribers: usize,
    /// Channels the subscribers spread over (subscriber `i` takes channel `i % channels`).
    pub channels: usize,
    /// Channel names are this prefix followed by 0, 1, 2…
    pub channel_prefix: String,
    /// Messages per second on each channel (0: idle connections only).
    pub rate: f64,
    /// Size of each message, in bytes (at least what the sequence number and send time take).
    pub payload: usize,
    /// How long to publish for.
    pub duration: Duration,
    /// Local addresses the subscribers' connections bind to in turn (empty: the kernel picks), to
    /// open more connections than one source address has ports.
    pub source_ips: Vec<IpAddr>,
    /// Subscriber threads, each with its own `mio` loop.
    pub threads: usize,
    /// The server's process id, when it runs on this machine: its CPU time and RSS are reported.
    pub server_pid: Option<u32>,
    /// Time between a poll's answer and the next request (poll subscribers).
    pub poll_interval: Duration,
    /// How long to wait for stragglers after the last publish.
    pub drain: Duration,
}

/// What one transport's subscribers (or, in `total`, all of them) measured during a load run.
#[derive(Debug, Clone, Serialize)]
pub struct TransportReport {
    /// The transport (in JSON, `all` in the `total` row, which sums every transport).
    pub transport: Kind,
    /// Subscribers of this transport.
    pub subscribers: usize,
    /// Subscribers whose connection was up when publishing started.
    pub ready: usize,
    /// Messages the subscribers should have received: each one's channel's publishes, summed.
    pub expected: u64,
    /// Distinct messages received (duplicates not counted).
    pub delivered: u64,
    /// Expected messages never received: `lost_holes + lost_tail`.
    pub lost: u64,
    /// Lost messages older than the newest one received: gaps a resume should have filled.
    pub lost_holes: u64,
    /// Lost messages after the newest one received: not arrived by the end of the drain.
    pub lost_tail: u64,
    /// Copies of messages a subscriber had already received.
    pub duplicates: u64,
    /// Messages received after a newer one (by sequence number).
    pub out_of_order: u64,
    /// Publish-to-receipt latency percentiles, in microseconds, measured on the client.
    pub latency_us: Latency,
    /// Distinct messages received per second of publishing, all subscribers together.
    pub deliveries_per_s: f64,
    /// Bytes received per message received: payload plus every overhead, server to client.
    pub bytes_down_per_message: f64,
    /// Bytes sent per message received, client to server (polls, handshakes, pongs).
    pub bytes_up_per_message: f64,
    /// The subscribers' counters, summed.
    pub counters: Counters,
}

/// What the server process cost during the run, read from `/proc` (with `server_pid` given).
#[derive(Debug, Clone, Serialize)]
pub struct ServerUsage {
    /// The server's process id.
    pub pid: u32,
    /// CPU time (user and system) the server used while publishing and draining, in seconds.
    pub cpu_s: f64,
    /// Server CPU per delivered message, in microseconds; `None` when nothing was delivered.
    pub cpu_us_per_delivery: Option<f64>,
    /// Resident memory before the subscribers connected, in bytes.
    pub rss_before_bytes: u64,
    /// Resident memory once every subscriber was connected, in bytes.
    pub rss_connected_bytes: u64,
    /// Resident memory at the end of the run, in bytes.
    pub rss_end_bytes: u64,
    /// Memory each open connection added (`rss_connected - rss_before` over open connections), in
    /// bytes; `None` when RSS did not grow.
    pub rss_per_connection_bytes: Option<f64>,
}

/// The `total` row as JSON: the sum of every transport, so its `transport` says `all` rather
/// than the kind the summing borrowed.
fn total_row<S: serde::Serializer>(total: &TransportReport, s: S) -> Result<S::Ok, S::Error> {
    let mut row = serde_json::to_value(total).map_err(serde::ser::Error::custom)?;
    row["transport"] = "all".into();
    row.serialize(s)
}

/// What `pushwire load` measured: the run's settings, then the figures per transport and in
/// total, client CPU, and the server's usage when its pid was given.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Channels published to.
    pub channels: usize,
    /// Publish rate on each channel, in messages per second.
    pub rate_per_channel: f64,
    /// Size of each message, in bytes.
    pub payload: usize,
    /// Seconds of publishing, measured.
    pub duration_s: f64,
    /// Subscriber threads used.
    pub threads: usize,
    /// Source addresses the connections were spread over (1 when the kernel picked).
    pub source_ips: usize,
    /// Messages published, every channel together.
    pub published: u64,
    /// Publishes answered with a status other than 2xx.
    pub publish_refused: u64,
    /// Subscribers ready when publishing started, every thread together.
    pub connections_open: usize,
    /// Subscriber connections that failed to open (each retry counts).
    pub connect_errors: u64,
    /// One report per transport, in the order the subscriber URLs were given.
    pub transports: Vec<TransportReport>,
    /// Every transport together (its `transport` is `all` in JSON).
    #[serde(serialize_with = "total_row")]
    pub total: TransportReport,
    /// Client CPU per received message, per subscriber thread (µs).
    pub client_cpu_us_per_message: Vec<f64>,
    /// The server's CPU and memory, when `server_pid` was given and `/proc` could be read.
    pub server: Option<ServerUsage>,
    /// The latest failure a subscriber connection met, if any (a connect error, a bad response).
    pub last_error: Option<String>,
}

#[derive(Default, Clone)]
struct Track {
    seen: Vec<u8>,
    last: Option<u64>,
    out_of_order: u64,
    duplicates: u64,
}

struct LoadSink {
    tracks: Vec<Track>,
    latency: Vec<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

impl Sink for LoadSink {
    fn deliver(&mut self, key: usize, sub: &Subscriber, d: Delivery<'_>, now: Instant) {
        let Some((seq, sent)) = payload::decode(d.data) else {
            return;
        };
        let t = &mut self.tracks[key];
        let i = seq as usize;
        if i >= t.seen.len() {
            t.seen.resize(i + 1, 0);
        }
        if t.seen[i] > 0 {
            t.duplicates += 1;
        } else if t.last.is_some_and(|l| seq < l) {
            t.out_of_order += 1;
        }
        t.seen[i] = t.seen[i].saturating_add(1);
        t.last = Some(t.last.map_or(seq, |l| l.max(seq)));
        let lat = payload::micros_at(now).saturating_sub(sent).max(1);
        let _ = self.latency[kind_index(sub.kind)].record(lat);
    }
}

fn kind_index(k: Kind) -> usize {
    Kind::ALL.iter().position(|&x| x == k).unwrap_or(0)
}

/// What a subscriber thread hands back.
struct ThreadResult {
    counters: Vec<(Kind, usize, Counters, Track)>,
    latency: Vec<Histogram<u64>>,
    cpu_s: f64,
    received: u64,
    connect_errors: u64,
    last_error: Option<String>,
}

struct Shared {
    ready: AtomicUsize,
    go: AtomicBool,
    stop: AtomicBool,
    open: AtomicUsize,
}

/// New connections started per loop turn, so a burst of thousands does not overflow the
/// server's listen backlog.
const CONNECTS_PER_TURN: usize = 128;

fn subscriber_thread(
    subs: Vec<Subscriber>,
    sources: Vec<IpAddr>,
    shared: Arc<Shared>,
) -> Result<ThreadResult, String> {
    let mut driver = Driver::new(sources).map_err(|e| e.to_string())?;
    let keys: Vec<usize> = subs
        .into_iter()
        .map(|s| {
            let addr = s.url.addr;
            driver.add(Role::Sub(Box::new(s)), addr)
        })
        .collect();
    let mut sink = LoadSink {
        tracks: vec![Track::default(); driver.len()],
        latency: (0..4).map(|_| histogram()).collect(),
    };
    let mut pending = keys.iter().copied().rev().collect::<Vec<_>>();
    let mut reported_ready = false;
    let mut cpu_start = None;
    let tick = Duration::from_millis(10);
    while !shared.stop.load(Ordering::Relaxed) {
        for _ in 0..CONNECTS_PER_TURN {
            match pending.pop() {
                Some(k) => driver.connect(k),
                None => break,
            }
        }
        let _ = driver.turn(tick, &mut sink);
        if !reported_ready
            && pending.is_empty()
            && driver
                .roles()
                .all(|(_, r)| matches!(r, Role::Sub(s) if s.is_ready()))
        {
            reported_ready = true;
            shared.ready.fetch_add(keys.len(), Ordering::SeqCst);
        }
        if cpu_start.is_none() && shared.go.load(Ordering::Relaxed) {
            cpu_start = procstat::thread_cpu_seconds();
            let ready = driver
                .roles()
                .filter(|(_, r)| matches!(r, Role::Sub(s) if s.is_ready()))
                .count();
            shared.open.fetch_add(ready, Ordering::SeqCst);
        }
    }
    let cpu_s = match (cpu_start, procstat::thread_cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => 0.0,
    };
    let mut received = 0;
    let counters = driver
        .roles()
        .filter_map(|(k, r)| match r {
            Role::Sub(s) => {
                received += s.counters.messages;
                Some((
                    s.kind,
                    s.tag,
                    s.counters,
                    std::mem::take(&mut sink.tracks[k]),
                ))
            }
            Role::Pub(_) => None,
        })
        .collect();
    driver.close_all();
    Ok(ThreadResult {
        counters,
        latency: sink.latency,
        cpu_s,
        received,
        connect_errors: driver.connect_errors,
        last_error: driver.last_error.clone(),
    })
}

/// Runs the load: connects every subscriber (spread over `threads`), publishes for `duration`
/// at `rate` per channel, waits up to `drain` for stragglers, and reports; `progress` is told
/// what is happening.
pub fn run(cfg: &LoadConfig, progress: &dyn Fn(&str)) -> Result<LoadReport, String> {
    payload::epoch();
    let threads = cfg.threads.max(1);
    let channels = cfg.channels.max(1);
    let names: Vec<String> = (0..channels)
        .map(|c| format!("{}{c}", cfg.channel_prefix))
        .collect();
    let opts = Options {
        poll_interval: cfg.poll_interval,
        ..Options::default()
    };
    let mut per_thread: Vec<Vec<Subscriber>> = (0..threads).map(|_| Vec::new()).collect();
    let mut n = 0usize;
    for (kind, template) in &cfg.sub_urls {
        for i in 0..cfg.subscribers {
            let channel = i % channels;
            let url = Url::from_template(template, &names[channel])?;
            per_thread[n % threads].push(Subscriber::new(
                *kind,
                url,
                channel,
                opts.clone(),
                n as u64,
            ));
            n += 1;
        }
    }
    let total_subs = n;
    let shared = Arc::new(Shared {
        ready: AtomicUsize::new(0),
        go: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        open: AtomicUsize::new(0),
    });
    let rss_before = cfg.server_pid.and_then(procstat::rss_bytes).unwrap_or(0);
    let handles: Vec<_> = per_thread
        .into_iter()
        .enumerate()
        .map(|(i, subs)| {
            let (sources, shared) = (cfg.source_ips.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || subscriber_thread(subs, sources, shared))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    // Publishers: one keep-alive connection per channel, on this thread.
    let mut driver = Driver::new(Vec::new()).map_err(|e| e.to_string())?;
    let pubs: Vec<usize> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let url = Url::from_template(&cfg.pub_url, name)?;
            let addr = url.addr;
            let key = driver.add(Role::Pub(Box::new(Publisher::new(url, i))), addr);
            driver.connect(key);
            Ok(key)
        })
        .collect::<Result<_, String>>()?;
    let mut none = super::driver::Discard;
    let connect_deadline =
        Instant::now() + Duration::from_secs(30) + Duration::from_millis(total_subs as u64);
    let tick = Duration::from_millis(1);
    while shared.ready.load(Ordering::SeqCst) < total_subs && Instant::now() < connect_deadline {
        let _ = driver.turn(Duration::from_millis(20), &mut none);
        progress(&format!(
            "connecting: {}/{total_subs} ready",
            shared.ready.load(Ordering::SeqCst)
        ));
    }
    // Let servers that subscribe after answering the head (and long-pollers) settle.
    let settle = Instant::now() + Duration::from_millis(300);
    while Instant::now() < settle {
        let _ = driver.turn(Duration::from_millis(20), &mut none);
    }
    let rss_connected = cfg.server_pid.and_then(procstat::rss_bytes).unwrap_or(0);
    let server_cpu_start = cfg.server_pid.and_then(procstat::process_cpu_seconds);
    shared.go.store(true, Ordering::SeqCst);
    let start = Instant::now();
    let end = start + cfg.duration;
    let mut published = vec![0u64; channels];
    let mut buf = Vec::with_capacity(cfg.payload + 32);
    let mut last_progress = start;
    while Instant::now() < end {
        let now = Instant::now();
        if cfg.rate > 0.0 {
            let due = (now - start).as_secs_f64() * cfg.rate;
            let due = due.floor() as u64 + 1;
            for (c, &key) in pubs.iter().enumerate() {
                while published[c] < due {
                    buf.clear();
                    payload::encode(published[c], payload::now_micros(), cfg.payload, &mut buf);
                    driver.publish(key, &buf);
                    published[c] += 1;
                }
            }
        }
        let next = if cfg.rate > 0.0 {
            Duration::from_secs_f64(1.0 / cfg.rate).min(Duration::from_millis(20))
        } else {
            Duration::from_millis(50)
        };
        let _ = driver.turn(next.min(tick), &mut none);
        if now - last_progress > Duration::from_millis(250) {
            last_progress = now;
            progress(&format!(
                "publishing: {:.1}/{:.0} s, {} published",
                (now - start).as_secs_f64(),
                cfg.duration.as_secs_f64(),
                published.iter().sum::<u64>()
            ));
        }
    }
    let publish_end = Instant::now();
    let drain_until = publish_end + cfg.drain;
    while Instant::now() < drain_until {
        let _ = driver.turn(Duration::from_millis(20), &mut none);
        let acked = pubs
            .iter()
            .all(|&k| matches!(driver.role(k), Some(Role::Pub(p)) if p.outstanding == 0));
        if acked && Instant::now() >= publish_end + Duration::from_millis(500).min(cfg.drain) {
            break;
        }
    }
    let server_cpu_end = cfg.server_pid.and_then(procstat::process_cpu_seconds);
    let rss_end = cfg.server_pid.and_then(procstat::rss_bytes).unwrap_or(0);
    shared.stop.store(true, Ordering::SeqCst);
    let elapsed = publish_end - start;
    progress("collecting");
    let results: Vec<ThreadResult> = handles
        .into_iter()
        .map(|h| h.join().map_err(|_| "a load thread panicked".to_string())?)
        .collect::<Result<_, _>>()?;
    let publish_refused = pubs
        .iter()
        .map(|&k| match driver.role(k) {
            Some(Role::Pub(p)) => p.refused,
            _ => 0,
        })
        .sum();
    let mut report = summarize(
        cfg,
        &results,
        &published,
        elapsed,
        shared.open.load(Ordering::SeqCst),
    );
    report.publish_refused = publish_refused;
    if let (Some(pid), Some(a), Some(b)) = (cfg.server_pid, server_cpu_start, server_cpu_end) {
        let deliveries = report.total.delivered;
        let open = report.connections_open.max(1) as f64;
        report.server = Some(ServerUsage {
            pid,
            cpu_s: round2(b - a),
            cpu_us_per_delivery: (deliveries > 0)
                .then(|| round2((b - a) * 1e6 / deliveries as f64)),
            rss_before_bytes: rss_before,
            rss_connected_bytes: rss_connected,
            rss_end_bytes: rss_end,
            rss_per_connection_bytes: (rss_connected > rss_before)
                .then(|| round2((rss_connected - rss_before) as f64 / open)),
        });
    }
    driver.close_all();
    Ok(report)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn summarize(
    cfg: &LoadConfig,
    results: &[ThreadResult],
    published: &[u64],
    elapsed: Duration,
    open: usize,
) -> LoadReport {
    let mut latency: Vec<Histogram<u64>> = (0..4).map(|_| histogram()).collect();
    for r in results {
        for (h, t) in latency.iter_mut().zip(&r.latency) {
            let _ = h.add(t);
        }
    }
    let mut all = histogram();
    for h in &latency {
        let _ = all.add(h);
    }
    let secs = elapsed.as_secs_f64().max(1e-9);
    let build = |kind: Kind, subs: Vec<&(Kind, usize, Counters, Track)>, h: &Histogram<u64>| {
        let mut rep = TransportReport {
            transport: kind,
            subscribers: subs.len(),
            ready: 0,
            expected: 0,
            delivered: 0,
            lost: 0,
            lost_holes: 0,
            lost_tail: 0,
            duplicates: 0,
            out_of_order: 0,
            latency_us: Latency::of(h),
            deliveries_per_s: 0.0,
            bytes_down_per_message: 0.0,
            bytes_up_per_message: 0.0,
            counters: Counters::default(),
        };
        for (_, channel, c, t) in subs {
            let expected = published[*channel];
            rep.expected += expected;
            rep.counters.add(c);
            if c.connections > 0 {
                rep.ready += 1;
            }
            let distinct = t
                .seen
                .iter()
                .take(expected as usize)
                .filter(|&&n| n > 0)
                .count() as u64;
            rep.delivered += distinct;
            let max = t
                .seen
                .iter()
                .rposition(|&n| n > 0)
                .map_or(0, |i| i as u64 + 1);
            let below = t
                .seen
                .iter()
                .take(max.min(expected) as usize)
                .filter(|&&n| n == 0)
                .count() as u64;
            rep.lost_holes += below;
            rep.lost_tail += expected.saturating_sub(max);
            rep.duplicates += t.duplicates;
            rep.out_of_order += t.out_of_order;
        }
        rep.lost = rep.expected - rep.delivered;
        let m = rep.counters.messages.max(1) as f64;
        rep.deliveries_per_s = round2(rep.delivered as f64 / secs);
        rep.bytes_down_per_message = round2(rep.counters.bytes_in as f64 / m);
        rep.bytes_up_per_message = round2(rep.counters.bytes_out as f64 / m);
        rep
    };
    let entries: Vec<&(Kind, usize, Counters, Track)> =
        results.iter().flat_map(|r| &r.counters).collect();
    let transports: Vec<TransportReport> = cfg
        .sub_urls
        .iter()
        .map(|(k, _)| {
            let subs = entries.iter().copied().filter(|e| e.0 == *k).collect();
            build(*k, subs, &latency[kind_index(*k)])
        })
        .collect();
    let mut total = build(Kind::Ws, entries.clone(), &all);
    total.subscribers = entries.len();
    LoadReport {
        channels: published.len(),
        rate_per_channel: cfg.rate,
        payload: cfg.payload,
        duration_s: round2(secs),
        threads: results.len(),
        source_ips: cfg.source_ips.len().max(1),
        published: published.iter().sum(),
        publish_refused: 0,
        connections_open: open,
        connect_errors: results.iter().map(|r| r.connect_errors).sum(),
        transports,
        total,
        client_cpu_us_per_message: results
            .iter()
            .map(|r| round2(r.cpu_s * 1e6 / r.received.max(1) as f64))
            .collect(),
        server: None,
        last_error: results.iter().find_map(|r| r.last_error.clone()),
    }
}

/// `127.0.0.1-127.0.0.8` or `127.0.0.1,127.0.0.2`.
pub fn parse_source_ips(spec: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: std::net::Ipv4Addr =
                    a.parse().map_err(|_| format!("{a}: not an IPv4 address"))?;
                let b: std::net::Ipv4Addr =
                    b.parse().map_err(|_| format!("{b}: not an IPv4 address"))?;
                let (a, b) = (u32::from(a), u32::from(b));
                if b < a || b - a > 1024 {
                    return Err(format!("{part}: bad range"));
                }
                out.extend((a..=b).map(|v| IpAddr::from(std::net::Ipv4Addr::from(v))));
            }
            None => out.push(
                part.parse()
                    .map_err(|_| format!("{part}: not an address"))?,
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn source_ranges() {
        let ips = super::parse_source_ips("127.0.0.1-127.0.0.3,127.0.0.9").unwrap();
        assert_eq!(ips.len(), 4);
        assert!(super::parse_source_ips("127.0.0.3-127.0.0.1").is_err());
    }
}
