//! `pushwire load` against pushwire (nothing lost or duplicated) and against a deliberately lossy
//! server written here (the loss and the duplicates are seen).
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pushwire::client::Kind;
use pushwire::client::load::{self, LoadConfig};
use support::TestServer;

fn config(base: &str, kinds: &[(Kind, &str)]) -> LoadConfig {
    LoadConfig {
        pub_url: format!("http://{base}/pub/{{channel}}"),
        sub_urls: kinds
            .iter()
            .map(|(k, path)| {
                let scheme = if *k == Kind::Ws { "ws" } else { "http" };
                (*k, format!("{scheme}://{base}{path}"))
            })
            .collect(),
        subscribers: 20,
        channels: 3,
        channel_prefix: "load-test-".into(),
        rate: 40.0,
        payload: 64,
        duration: Duration::from_millis(1500),
        source_ips: load::parse_source_ips("127.0.0.1-127.0.0.3").unwrap(),
        threads: 2,
        server_pid: None,
        poll_interval: Duration::from_millis(100),
        drain: Duration::from_secs(2),
    }
}

#[test]
fn load_against_pushwire_loses_nothing() {
    let server = TestServer::start(&["--no-demo"]);
    let base = server.addr.to_string();
    let mut cfg = config(
        &base,
        &[
            (Kind::Ws, "/ws/{channel}?since=0"),
            (Kind::Sse, "/sse/{channel}?last_event_id=0"),
            (Kind::LongPoll, "/longpoll/{channel}?since=0"),
            (Kind::Poll, "/poll/{channel}?since=0"),
        ],
    );
    cfg.server_pid = Some(server.pid());
    let report = load::run(&cfg, &|_| {}).expect("load runs");
    // 1.5 s at 40/s: about 60 per channel (fewer if the machine stalls the publisher at the end).
    assert!((150..=180).contains(&report.published), "{report:#?}");
    assert_eq!(report.connections_open, 80);
    for t in &report.transports {
        let name = t.transport.name();
        assert_eq!(t.subscribers, 20, "{name}");
        assert_eq!(t.expected, 20 * report.published / 3, "{name}");
        assert_eq!(t.delivered, t.expected, "{name}: {t:#?}");
        assert_eq!((t.lost, t.duplicates, t.out_of_order), (0, 0, 0), "{name}");
        assert!(t.latency_us.p50 > 0, "{name}");
        assert!(t.bytes_down_per_message > 64.0, "{name}");
    }
    let usage = report.server.as_ref().expect("server usage");
    assert!(usage.rss_end_bytes > 0);
    let table = load::table(&report);
    assert!(table.contains("lost (holes + tail)"), "{table}");
    // In JSON each row names its transport, and the sum of them all says so.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["transports"][2]["transport"], "longpoll");
    assert_eq!(json["total"]["transport"], "all");
    assert_eq!(json["total"]["delivered"], report.total.delivered);
}

/// A pub/sub server that loses every fifth message and sends every seventh twice: `POST /pub/x`
/// and an SSE stream on any other GET, read until close (no chunking).
fn lossy_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let count = Arc::new(Mutex::new(0u64));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let (streams, count) = (streams.clone(), count.clone());
            std::thread::spawn(move || serve(conn, &streams, &count));
        }
    });
    addr
}

fn serve(conn: TcpStream, streams: &Mutex<Vec<TcpStream>>, count: &Mutex<u64>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        if line.starts_with("GET") {
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
                .unwrap();
            streams.lock().unwrap().push(conn);
            return;
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let n = {
            let mut c = count.lock().unwrap();
            *c += 1;
            *c
        };
        let event = format!("data: {}\n\n", String::from_utf8_lossy(&body));
        let copies = if n % 5 == 0 {
            0
        } else if n % 7 == 0 {
            2
        } else {
            1
        };
        for s in streams.lock().unwrap().iter_mut() {
            for _ in 0..copies {
                let _ = s.write_all(event.as_bytes());
            }
        }
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    }
}

#[test]
fn load_sees_what_a_lossy_server_loses() {
    let addr = lossy_server();
    let mut cfg = config(&addr.to_string(), &[(Kind::Sse, "/sub/{channel}")]);
    cfg.channels = 1;
    cfg.subscribers = 5;
    cfg.source_ips.clear();
    cfg.threads = 1;
    cfg.drain = Duration::from_millis(500);
    let report = load::run(&cfg, &|_| {}).expect("load runs");
    let sse = &report.transports[0];
    let published = report.published;
    assert!(published >= 40, "{report:#?}");
    // Every fifth publish lost, for each of 5 subscribers.
    let lost = published / 5;
    assert_eq!(sse.lost, 5 * lost, "{sse:#?}");
    assert!(sse.lost_holes > 0, "{sse:#?}");
    // Every seventh that is not a multiple of five sent twice.
    let doubled = (1..=published).filter(|n| n % 7 == 0 && n % 5 != 0).count() as u64;
    assert_eq!(sse.duplicates, 5 * doubled, "{sse:#?}");
    assert_eq!(sse.delivered, 5 * (published - lost));
}
