//! The compare report as a table, Markdown, CSV or JSON, and the claims of the comparison it
//! answers (`shared/CLAIMS.md`) with the verdict the run measured.
use super::compare::{Claim, Column, Report};
use super::load::{LoadReport, TransportReport};
use super::subscriber::Kind;

/// Lines of each transport's protocol module (tests excluded), counted at build time.
fn lines_of_code() -> [(Kind, usize); 4] {
    let count = |files: &[&str]| -> usize {
        files
            .iter()
            .map(|f| {
                f.lines()
                    .filter(|l| {
                        let t = l.trim();
                        !t.is_empty() && !t.starts_with("//")
                    })
                    .count()
            })
            .sum()
    };
    let polling = count(&[include_str!("../polling/mod.rs")]);
    let sse = count(&[
        include_str!("../sse/mod.rs"),
        include_str!("../sse/event.rs"),
        include_str!("../sse/parser.rs"),
        include_str!("../sse/error.rs"),
    ]);
    let ws = count(&[
        include_str!("../websocket/mod.rs"),
        include_str!("../websocket/frame.rs"),
        include_str!("../websocket/handshake.rs"),
        include_str!("../websocket/mask.rs"),
        include_str!("../websocket/close.rs"),
        include_str!("../websocket/error.rs"),
        include_str!("../websocket/session.rs"),
        include_str!("../websocket/utf8.rs"),
    ]);
    [
        (Kind::Poll, polling),
        (Kind::LongPoll, polling),
        (Kind::Sse, sse),
        (Kind::Ws, ws),
    ]
}

fn col(r: &Report, k: Kind) -> &Column {
    r.columns
        .iter()
        .find(|c| c.transport == k)
        .unwrap_or(&r.columns[0])
}

/// Each claim of the comparison with what this run measured.
pub fn claims(r: &Report) -> Vec<Claim> {
    let (poll, lp, sse, ws) = (
        col(r, Kind::Poll),
        col(r, Kind::LongPoll),
        col(r, Kind::Sse),
        col(r, Kind::Ws),
    );
    let pubm = r.publish.messages.max(1) as f64;
    let post_up = r.publish.bytes_out as f64 / pubm - r.publish.payload_out as f64 / pubm;
    let post_down = r.publish.bytes_in as f64 / pubm;
    let loc = lines_of_code();
    let ws_frame_overhead = ws.stream_overhead_per_message;
    let c = |claim, verdict: String| Claim { claim, verdict };
    let loss = |col: &Column| format!("{} lost, {} duplicated", col.lost, col.duplicated);
    let mut claims = vec![
        c(
            "direction: SSE, polls server → client only; WebSocket both ways",
            format!(
                "imprecise: sending one message upstream costs an HTTP POST on the three HTTP transports \
                 ({post_up:.0} bytes of request overhead up, {post_down:.0} bytes of answer down), and one \
                 masked frame on WebSocket (6 bytes of frame head and mask + payload, by the codec)"
            ),
        ),
        c(
            "WebSocket: protocol TCP",
            format!(
                "wrong: it starts as an HTTP/1.1 GET with Upgrade: {:.0} bytes up, {:.0} bytes down (101), \
                 then one frame per message: {:.1} bytes around the payload (a 2-byte frame head, the rest \
                 pushwire's JSON envelope); all four ride TCP",
                ws.handshake_up, ws.handshake_down, ws_frame_overhead
            ),
        ),
        c(
            "WebSocket opens with a \"3-way handshake\"",
            format!(
                "conflated: TCP's handshake precedes every transport ({} TCP connections here in all); \
                 WebSocket adds one HTTP round trip ({:.0} + {:.0} bytes), SSE one GET ({:.0} + {:.0} bytes); \
                 no TLS in this run",
                r.columns
                    .iter()
                    .map(|c| c.counters.connections)
                    .sum::<u64>(),
                ws.handshake_up,
                ws.handshake_down,
                sse.handshake_up,
                sse.handshake_down
            ),
        ),
        c(
            "difficulty: polling ★, long polling ★, SSE ★★, WebSocket ★★★",
            format!(
                "subjective: protocol code here is {} lines for polling and long polling (shared), {} for SSE, \
                 {} for WebSocket, besides the server's HTTP core every transport needs",
                loc[0].1, loc[2].1, loc[3].1
            ),
        ),
        c(
            "polling: many connections, one request per interval",
            format!(
                "imprecise: {} subscribers opened {} connections (keep-alive, one reconnect after the drop) \
                 for {} requests; {:.2} requests and {:.0} bytes per delivered message, {} empty answers",
                poll.subscribers,
                poll.counters.connections,
                poll.counters.requests,
                poll.requests_per_message,
                poll.down_per_message + poll.up_per_message,
                poll.counters.empty
            ),
        ),
        c(
            "long polling: one request per response",
            format!(
                "partly: {:.2} messages per answer, {:.2} requests per message; across the re-arm and the drop: {}",
                lp.messages_per_response,
                lp.requests_per_message,
                loss(lp)
            ),
        ),
        c(
            "SSE: one connection per client",
            format!(
                "imprecise: {} connections for {} subscribers (one more each after the drop), one stream each on \
                 HTTP/1.1; the browser's six-per-origin limit and HTTP/2 streams are not measured here",
                sse.counters.connections, sse.subscribers
            ),
        ),
        c(
            "scalability: polling low, SSE high, WebSocket highest",
            format!(
                "unsubstantiated: per delivered message the server sent poll {:.0}, long-poll {:.0}, SSE {:.0}, \
                 WebSocket {:.0} bytes; SSE and WebSocket differ by bytes, not kind (see `pushwire load` for CPU \
                 and memory per connection)",
                poll.down_per_message,
                lp.down_per_message,
                sse.down_per_message,
                ws.down_per_message
            ),
        ),
        c(
            "browser support: SSE and WebSocket most modern",
            "dated: EventSource is in every major browser since January 2020 (not measured)".into(),
        ),
        c(
            "error handling: SSE reconnects by itself; WebSocket has a built-in mechanism",
            format!(
                "half wrong: after the drop SSE came back by itself after {:.0} ms (retry:, Last-Event-ID), {}; \
                 WebSocket has no reconnection: this client's own code reconnected with ?since= after {:.0} ms, {}; \
                 polling {:.0} ms, {}; long polling {:.0} ms, {}",
                sse.recovery_ms,
                loss(sse),
                ws.recovery_ms,
                loss(ws),
                poll.recovery_ms,
                loss(poll),
                lp.recovery_ms,
                loss(lp)
            ),
        ),
    ];
    if let Some(d) = r.columns.iter().find(|c| c.transport == Kind::WsDeflate) {
        claims.push(c(
            "WebSocket compression (permessage-deflate) makes messages smaller on the wire",
            format!(
                "measured: {:.1} bytes down per message with permessage-deflate against {:.1} without \
                 ({:.1} bytes of payload each; the server compresses a message once and shares the \
                 frame, keeping no context; short messages that would not shrink go uncompressed), \
                 {}",
                d.down_per_message,
                ws.down_per_message,
                d.down_payload_per_message,
                loss(d)
            ),
        ));
    }
    claims
}

/// The rows of the table: a label and one cell per transport.
pub fn rows(r: &Report) -> Vec<(String, Vec<String>)> {
    let cells = |f: &dyn Fn(&Column) -> String| r.columns.iter().map(f).collect::<Vec<_>>();
    let f2 = |v: f64| format!("{v:.2}");
    let ms = |us: u64| format!("{:.1}", us as f64 / 1000.0);
    vec![
        ("subscribers".into(), cells(&|c| c.subscribers.to_string())),
        (
            "connections opened".into(),
            cells(&|c| c.counters.connections.to_string()),
        ),
        (
            "requests".into(),
            cells(&|c| c.counters.requests.to_string()),
        ),
        (
            "requests / delivered message".into(),
            cells(&|c| f2(c.requests_per_message)),
        ),
        (
            "empty answers".into(),
            cells(&|c| c.counters.empty.to_string()),
        ),
        (
            "bytes down / message".into(),
            cells(&|c| f2(c.down_per_message)),
        ),
        (
            "  of which payload".into(),
            cells(&|c| f2(c.down_payload_per_message)),
        ),
        (
            "  of which overhead".into(),
            cells(&|c| f2(c.down_overhead_per_message)),
        ),
        (
            "bytes up / message (all overhead)".into(),
            cells(&|c| f2(c.up_per_message)),
        ),
        (
            "handshake bytes up / down".into(),
            cells(&|c| format!("{:.0} / {:.0}", c.handshake_up, c.handshake_down)),
        ),
        (
            "latency p50 / p99 ms".into(),
            cells(&|c| format!("{} / {}", ms(c.latency_us.p50), ms(c.latency_us.p99))),
        ),
        (
            "delivered / expected".into(),
            cells(&|c| format!("{} / {}", c.delivered, c.expected)),
        ),
        (
            "lost / duplicated (drop)".into(),
            cells(&|c| format!("{} / {}", c.lost, c.duplicated)),
        ),
        (
            "back after the drop, ms".into(),
            cells(&|c| format!("{:.0}", c.recovery_ms)),
        ),
        ("resumed by".into(), cells(&|c| c.resumed_by.to_string())),
        (
            "server ledger agrees".into(),
            cells(&|c| {
                if c.ledger.agrees {
                    "yes".into()
                } else {
                    format!(
                        "no ({}/{} vs {}/{})",
                        c.ledger.bytes_out,
                        c.ledger.bytes_in,
                        c.counters.bytes_in,
                        c.counters.bytes_out
                    )
                }
            }),
        ),
    ]
}

fn settings(r: &Report) -> String {
    format!(
        "{} subscribers per transport, {} messages of {} bytes at {}/s, poll interval {} s, one drop after \
         message {}; server {}; {:.1} s",
        r.subscribers,
        r.messages,
        r.payload,
        r.rate,
        r.poll_interval_s,
        r.messages / 2,
        r.server,
        r.elapsed_s
    )
}

/// The `pushwire compare` report as an aligned text table: the run's settings, one column per
/// transport, then each claim with its measured verdict.
pub fn table(r: &Report) -> String {
    let rows = rows(r);
    let label_w = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let heads: Vec<&str> = r.columns.iter().map(|c| c.transport.name()).collect();
    let mut widths: Vec<usize> = heads.iter().map(|h| h.len()).collect();
    for (_, cells) in &rows {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c.len().min(40));
        }
    }
    let mut out = format!("{}\n\n{:label_w$}", settings(r), "");
    for (h, w) in heads.iter().zip(&widths) {
        out.push_str(&format!("  {h:>w$}"));
    }
    out.push('\n');
    for (label, cells) in &rows {
        out.push_str(&format!("{label:label_w$}"));
        for (c, w) in cells.iter().zip(&widths) {
            out.push_str(&format!("  {c:>w$}"));
        }
        out.push('\n');
    }
    out.push_str("\nThe comparison's claims, measured:\n");
    for c in &r.claims {
        out.push_str(&format!("- {}\n  → {}\n", c.claim, c.verdict));
    }
    out
}

/// The same report in GitHub Markdown: the table, then a claim and verdict table.
pub fn markdown(r: &Report) -> String {
    let mut out = format!("{}\n\n| | ", settings(r));
    let heads: Vec<&str> = r.columns.iter().map(|c| c.transport.name()).collect();
    out.push_str(&heads.join(" | "));
    out.push_str(" |\n|---|");
    out.push_str(&"---:|".repeat(heads.len()));
    out.push('\n');
    for (label, cells) in rows(r) {
        out.push_str(&format!("| {} | {} |\n", label.trim(), cells.join(" | ")));
    }
    out.push_str("\n| claim | measured verdict |\n|---|---|\n");
    for c in &r.claims {
        out.push_str(&format!(
            "| {} | {} |\n",
            c.claim,
            c.verdict.replace('|', "\\|")
        ));
    }
    out
}

/// The same report as CSV: one line per row, prefixed with the run's payload size and rate, so
/// runs of several sizes and rates can be concatenated.
pub fn csv(r: &Report) -> String {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::from("payload,rate,row");
    for c in &r.columns {
        out.push(',');
        out.push_str(c.transport.name());
    }
    out.push('\n');
    for (label, cells) in rows(r) {
        out.push_str(&format!("{},{},{}", r.payload, r.rate, quote(label.trim())));
        for c in cells {
            out.push(',');
            out.push_str(&quote(&c));
        }
        out.push('\n');
    }
    out
}

/// A `pushwire load` report as a table.
pub fn load_table(r: &LoadReport) -> String {
    let mut out = format!(
        "{} channels × {}/s × {} B for {:.1} s, {} thread(s), {} source address(es): {} published, {} refused, \
         {} connections open at start, {} connect errors\n\n",
        r.channels,
        r.rate_per_channel,
        r.payload,
        r.duration_s,
        r.threads,
        r.source_ips,
        r.published,
        r.publish_refused,
        r.connections_open,
        r.connect_errors
    );
    let mut cols: Vec<&TransportReport> = r.transports.iter().collect();
    cols.push(&r.total);
    let heads: Vec<String> = r
        .transports
        .iter()
        .map(|t| t.transport.name().to_string())
        .chain(["total".to_string()])
        .collect();
    type Cell = Box<dyn Fn(&TransportReport) -> String>;
    let rows: Vec<(&str, Cell)> = vec![
        ("subscribers", Box::new(|t| t.subscribers.to_string())),
        ("expected", Box::new(|t| t.expected.to_string())),
        ("delivered", Box::new(|t| t.delivered.to_string())),
        (
            "lost (holes + tail)",
            Box::new(|t| format!("{} ({} + {})", t.lost, t.lost_holes, t.lost_tail)),
        ),
        ("duplicates", Box::new(|t| t.duplicates.to_string())),
        ("out of order", Box::new(|t| t.out_of_order.to_string())),
        (
            "latency p50 ms",
            Box::new(|t| format!("{:.2}", t.latency_us.p50 as f64 / 1000.0)),
        ),
        (
            "latency p90 ms",
            Box::new(|t| format!("{:.2}", t.latency_us.p90 as f64 / 1000.0)),
        ),
        (
            "latency p99 ms",
            Box::new(|t| format!("{:.2}", t.latency_us.p99 as f64 / 1000.0)),
        ),
        (
            "latency max ms",
            Box::new(|t| format!("{:.2}", t.latency_us.max as f64 / 1000.0)),
        ),
        (
            "deliveries / s",
            Box::new(|t| format!("{:.0}", t.deliveries_per_s)),
        ),
        (
            "bytes down / message",
            Box::new(|t| format!("{:.1}", t.bytes_down_per_message)),
        ),
        (
            "bytes up / message",
            Box::new(|t| format!("{:.1}", t.bytes_up_per_message)),
        ),
        (
            "connections opened",
            Box::new(|t| t.counters.connections.to_string()),
        ),
        ("errors", Box::new(|t| t.counters.errors.to_string())),
    ];
    out.push_str(&format!("{:22}", ""));
    for h in &heads {
        out.push_str(&format!("{h:>14}"));
    }
    out.push('\n');
    for (label, f) in &rows {
        out.push_str(&format!("{label:22}"));
        for c in &cols {
            out.push_str(&format!("{:>14}", f(c)));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "\nclient CPU per received message, per thread: {} µs\n",
        r.client_cpu_us_per_message
            .iter()
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Some(s) = &r.server {
        out.push_str(&format!(
            "server pid {}: {:.2} s CPU, {} µs per delivery; RSS {:.1} MB before, {:.1} MB connected, {:.1} MB at end; {} bytes per connection\n",
            s.pid,
            s.cpu_s,
            s.cpu_us_per_delivery.map_or("-".into(), |v| format!("{v:.2}")),
            s.rss_before_bytes as f64 / 1e6,
            s.rss_connected_bytes as f64 / 1e6,
            s.rss_end_bytes as f64 / 1e6,
            s.rss_per_connection_bytes.map_or("-".into(), |v| format!("{v:.0}")),
        ));
    }
    if let Some(e) = &r.last_error {
        out.push_str(&format!("last error: {e}\n"));
    }
    out
}
