//! Several event loops (`--threads`) serve as one server: connections spread over the loops by the
//! kernel, and whatever loop a publisher or a subscriber lands on, every subscriber gets every
//! message of its channel once and in order; `/stats`, `/drop` and `/trace` see every loop.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{TestServer, poll_request, publish_request, unique_channel, wait_until};

const LOOPS: &str = "4";

fn stats(server: &TestServer) -> Value {
    server
        .request(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
        .json()
}

/// How many of the server's connections each loop holds (the asking one included).
fn by_loop(server: &TestServer) -> Vec<u64> {
    let s = stats(server);
    let v = s["connections_by_thread"]
        .as_array()
        .expect("per-loop counts");
    v.iter().map(|n| n.as_u64().unwrap()).collect()
}

/// An SSE subscriber on a raw socket: reads events and returns their ids and data.
struct Sse {
    stream: TcpStream,
    text: String,
}

impl Sse {
    /// A stream of `/sse/{channel}`, once the server has subscribed it.
    fn open(server: &TestServer, channel: &str) -> Sse {
        Sse::request(server.addr, &format!("/sse/{channel}"), "").subscribed()
    }

    /// Sends `GET path` with `extra` header lines; nothing read yet.
    fn request(addr: SocketAddr, path: &str, extra: &str) -> Sse {
        let mut stream = TcpStream::connect(addr).unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Sse {
            stream,
            text: String::new(),
        }
    }

    /// Reads the head and the `retry:` field: the stream is subscribed from here on.
    fn subscribed(mut self) -> Sse {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.text.contains("retry:") {
            assert!(Instant::now() < deadline, "no stream head: {}", self.text);
            self.read_some();
        }
        self
    }

    fn read_some(&mut self) -> bool {
        let mut buf = [0u8; 65536];
        match self.stream.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.text.push_str(&String::from_utf8_lossy(&buf[..n]));
                true
            }
            Err(_) => true,
        }
    }

    fn ids(&self) -> Vec<u64> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .map(|id| id.trim().parse().unwrap())
            .collect()
    }

    /// Reads until `n` events came or `wait` passed; returns the ids seen.
    fn ids_after(&mut self, n: usize, wait: Duration) -> Vec<u64> {
        let deadline = Instant::now() + wait;
        while self.ids().len() < n && Instant::now() < deadline {
            self.read_some();
        }
        self.ids()
    }

    /// Whether the server closed the stream within `wait`.
    fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if !self.read_some() {
                return true;
            }
        }
        false
    }
}

/// The JSON id of a WebSocket message.
fn ws_id(text: &str) -> u64 {
    serde_json::from_str::<Value>(text).unwrap()["id"]
        .as_u64()
        .unwrap()
}

#[test]
fn connections_spread_over_the_loops_and_stats_sum_every_loop() {
    let server = TestServer::start(&["--no-demo", "--threads", LOOPS]);
    let s = stats(&server);
    assert_eq!(s["threads"], 4, "{s}");
    let channel = unique_channel("spread");
    let streams: Vec<_> = (0..40).map(|_| Sse::open(&server, &channel)).collect();
    let counts = by_loop(&server);
    assert_eq!(counts.len(), 4);
    // The stats request is the 41st connection.
    assert_eq!(counts.iter().sum::<u64>(), 41, "{counts:?}");
    // Forty connections on one loop of four: a chance of 4^-39.
    assert!(
        counts.iter().filter(|&&n| n > 0).count() >= 2,
        "the kernel spread the connections: {counts:?}"
    );
    // Each poll on a connection of its own, whatever loop it lands on, is counted exactly once.
    for _ in 0..30 {
        let r = server.request(&poll_request(&channel, Some(0)));
        assert_eq!(r.status, 204);
    }
    let s = stats(&server);
    assert_eq!(s["transports"]["poll"]["requests"], 30, "{s}");
    assert_eq!(s["transports"]["sse"]["connections"], 40, "{s}");
    // The polls' connections close as the server reads their end.
    assert!(wait_until(
        Duration::from_secs(10),
        || stats(&server)["connections_open"] == 41
    ));
    let c = server
        .request(format!("GET /stats?channel={channel} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    assert_eq!(c.json()["channel"]["subscribers_by_transport"]["sse"], 40);
    drop(streams);
    assert!(wait_until(
        Duration::from_secs(10),
        || stats(&server)["connections_open"] == 1
    ));
}

#[test]
fn racing_publishers_on_every_loop_reach_every_subscriber_once_and_in_order() {
    const PUBLISHERS: usize = 4;
    const EACH: usize = 100;
    const TOTAL: usize = PUBLISHERS * EACH;
    let server = TestServer::start(&["--no-demo", "--threads", LOOPS]);
    let channel = unique_channel("race");
    let mut sse: Vec<_> = (0..12).map(|_| Sse::open(&server, &channel)).collect();
    let mut ws: Vec<_> = (0..12)
        .map(|_| support::ws::RawWs::open(&server, &format!("/ws/{channel}")))
        .collect();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let mut c = server.connect();
            let channel = channel.clone();
            std::thread::spawn(move || {
                // Pipelined in batches, so the loops publish at the same time.
                for batch in 0..EACH / 20 {
                    let reqs: Vec<u8> = (0..20)
                        .flat_map(|i| {
                            publish_request(&channel, &format!("p{p}-{}", batch * 20 + i))
                        })
                        .collect();
                    c.send(&reqs);
                    for _ in 0..20 {
                        assert_eq!(c.read_response().status, 200);
                    }
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    let want: Vec<u64> = (1..=TOTAL as u64).collect();
    for s in &mut sse {
        assert_eq!(s.ids_after(TOTAL, Duration::from_secs(20)), want);
    }
    for w in &mut ws {
        let ids: Vec<u64> = (0..TOTAL).map(|_| ws_id(&w.text())).collect();
        assert_eq!(ids, want);
    }
    let s = stats(&server);
    assert_eq!(s["transports"]["sse"]["messages"], 12 * TOTAL as u64, "{s}");
    assert_eq!(s["transports"]["ws"]["messages"], 12 * TOTAL as u64, "{s}");
}

#[test]
fn resumes_while_other_loops_publish_lose_and_repeat_nothing() {
    const BEFORE: u64 = 50;
    const DURING: u64 = 400;
    // Replays go out a window (half of --max-pending-output) at a time: with 1 KB messages each
    // takes some 30 windows, while the publisher's fan-outs reach the readers' loops in between.
    // (Smaller windows would cut a reader that falls a few messages behind as a slow consumer.)
    let server = TestServer::start(&[
        "--no-demo",
        "--threads",
        LOOPS,
        "--max-pending-output",
        "65536",
    ]);
    let body = "x".repeat(1000);
    let channel = unique_channel("resume");
    for i in 0..BEFORE {
        server.publish(&channel, &format!("before {i} {body}"));
    }
    let last = BEFORE + DURING;
    // How many events each reader has: the publisher stays within 20 messages of the slowest, so
    // no reader is cut as a slow consumer (this test is about order, not about slow readers).
    let progress: std::sync::Arc<Vec<std::sync::atomic::AtomicUsize>> =
        std::sync::Arc::new((0..4).map(|_| Default::default()).collect());
    // Resumes from id 10 while the publisher runs: each gets 11..=last, once each, in order.
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let addr = server.addr;
            let channel = channel.clone();
            let progress = progress.clone();
            std::thread::spawn(move || {
                let path = format!("/sse/{channel}");
                let mut sse = Sse::request(addr, &path, "Last-Event-ID: 10\r\n");
                let deadline = Instant::now() + Duration::from_secs(30);
                let want = (last - 10) as usize;
                while sse.ids().len() < want && Instant::now() < deadline {
                    sse.read_some();
                    let seen = sse.ids().len();
                    progress[r].store(seen, std::sync::atomic::Ordering::SeqCst);
                }
                sse.ids()
            })
        })
        .collect();
    let mut c = server.connect();
    for i in 0..DURING {
        let published = (BEFORE + i) as usize;
        assert!(wait_until(Duration::from_secs(20), || {
            progress
                .iter()
                .all(|p| p.load(std::sync::atomic::Ordering::SeqCst) + 10 + 20 >= published)
        }));
        c.send(&publish_request(&channel, &format!("during {i} {body}")));
        assert_eq!(c.read_response().status, 200);
    }
    let want: Vec<u64> = (11..=last).collect();
    for r in readers {
        let got = r.join().unwrap();
        if got != want {
            let s = stats(&server);
            panic!(
                "got {} ids, first wrong at {:?} (stats: {})",
                got.len(),
                got.iter().zip(&want).position(|(a, b)| a != b),
                s["transports"]["sse"]
            );
        }
    }
}

#[test]
fn drop_closes_the_transport_on_every_loop_and_counts_them_all() {
    let server = TestServer::start(&["--no-demo", "--threads", LOOPS]);
    let channel = unique_channel("drop");
    let mut streams: Vec<_> = (0..24).map(|_| Sse::open(&server, &channel)).collect();
    let counts = by_loop(&server);
    assert!(counts.iter().filter(|&&n| n > 0).count() >= 2, "{counts:?}");
    let r = server.request(b"POST /drop/sse HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["dropped"], 24, "{r:?}");
    for s in &mut streams {
        assert!(s.closed_within(Duration::from_secs(10)), "still open");
    }
}

#[test]
fn the_trace_feed_shows_connections_of_every_loop() {
    let server = TestServer::start(&["--no-demo", "--threads", LOOPS]);
    let mut feed = Sse::request(server.addr, "/trace", "").subscribed();
    // Tracing reaches the other loops through their command queues: wait until a poll shows.
    let channel = unique_channel("traced");
    let polls_seen = |feed: &mut Sse| -> BTreeSet<u64> {
        feed.read_some();
        feed.text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter(|r| r["transport"] == "poll")
            .filter_map(|r| r["conn"].as_u64())
            .collect()
    };
    assert!(wait_until(Duration::from_secs(10), || {
        let r = server.request(&poll_request(&channel, Some(0)));
        assert_eq!(r.status, 204);
        !polls_seen(&mut feed).is_empty()
    }));
    let before = polls_seen(&mut feed).len();
    for _ in 0..20 {
        server.request(&poll_request(&channel, Some(0)));
    }
    // Twenty connections of their own, spread over four loops: every one is traced.
    assert!(
        wait_until(Duration::from_secs(10), || polls_seen(&mut feed).len()
            >= before + 20),
        "traced poll connections: {} of {}",
        polls_seen(&mut feed).len(),
        before + 20
    );
}

#[test]
fn one_loop_runs_on_one_thread_and_any_loop_count_stops_on_a_signal() {
    for (loops, threads) in [("1", 1), ("3", 3)] {
        let mut server = TestServer::start(&["--threads", loops]);
        // Answered, so the loops are up; no thread waits for signals beside them (with one loop
        // the kernel then looks sockets up without reference counting: `Server::stop_on_signals`).
        assert_eq!(server.poll("c", None).status, 200);
        // The other loops' threads may still be starting when one of them has answered.
        let tasks = || {
            std::fs::read_dir(format!("/proc/{}/task", server.pid()))
                .expect("read /proc/<pid>/task")
                .count()
        };
        wait_until(Duration::from_secs(5), || tasks() >= threads);
        assert_eq!(tasks(), threads, "--threads {loops}");
        server.signal("TERM");
        let status = server
            .wait_for_exit(Duration::from_secs(5))
            .expect("pushwire exits after SIGTERM");
        assert!(
            status.success(),
            "--threads {loops}: exit status {status:?}"
        );
    }
}

#[test]
fn a_publish_wakes_loops_that_went_to_sleep_every_time() {
    // One publish at a time, each waited for: between publishes every loop runs out of work and
    // sleeps in `poll`, so each fan-out must wake the subscribers' loops (a loop is woken only
    // when it marked itself asleep). No timer would wake them: pings and heartbeats are far off.
    const ROUNDS: u64 = 150;
    let server = TestServer::start(&["--no-demo", "--threads", LOOPS, "--sse-heartbeat", "600"]);
    let channel = unique_channel("sleepers");
    let mut subscribers: Vec<_> = (0..12).map(|_| Sse::open(&server, &channel)).collect();
    let spread = by_loop(&server).iter().filter(|&&n| n > 0).count();
    assert!(
        spread >= 2,
        "subscribers on one loop only: {:?}",
        by_loop(&server)
    );
    let mut publisher = server.connect();
    for id in 1..=ROUNDS {
        // A new connection now and then, so publishes come from different loops too.
        if id % 10 == 0 {
            publisher = server.connect();
        }
        publisher.send(&publish_request(&channel, &format!("m{id}")));
        assert_eq!(publisher.read_response().status, 200);
        for (i, s) in subscribers.iter_mut().enumerate() {
            let ids = s.ids_after(id as usize, Duration::from_secs(5));
            assert_eq!(ids.last(), Some(&id), "subscriber {i} missed message {id}");
        }
    }
}

#[test]
fn a_publisher_that_outruns_another_loops_subscribers_gets_503_and_nothing_is_lost() {
    const BURST: usize = 400;
    // Any fan-out waiting for a loop puts it behind: the next publish to reach it is refused.
    let flags = ["--no-demo", "--threads", "2", "--max-fanout-backlog", "1"];
    let server = TestServer::start(&flags);
    let channel = unique_channel("behind");
    // The kernel spreads connections over the loops by address: with 40, both loops hold some.
    let mut sse: Vec<_> = (0..40).map(|_| Sse::open(&server, &channel)).collect();
    let counts = by_loop(&server);
    assert!(
        counts.iter().all(|&n| n >= 5),
        "subscribers by loop: {counts:?}"
    );

    // One pipelined burst: the publisher's loop reads publishes far faster than the other loop
    // writes each message to its 20-odd subscribers.
    let mut publisher = server.connect();
    let burst: Vec<u8> = (0..BURST)
        .flat_map(|i| publish_request(&channel, &format!("m{i}")))
        .collect();
    publisher.send(&burst);
    let mut accepted = Vec::new();
    let mut refused = 0;
    for _ in 0..BURST {
        let r = publisher.read_response();
        match r.status {
            200 => accepted.push(r.json()["id"].as_u64().unwrap()),
            503 => {
                refused += 1;
                assert_eq!(r.header("retry-after"), Some("1"), "{r:?}");
                assert!(r.body_str().contains("behind"), "{}", r.body_str());
            }
            other => panic!("publish answered {other}: {r:?}"),
        }
    }
    eprintln!("{} published, {refused} refused", accepted.len());
    assert!(refused > 0, "the other loop never fell behind");
    // A refused publish took no id: the accepted ones are 1, 2, 3… and every subscriber, on
    // either loop, gets each of them once and in order.
    let want: Vec<u64> = (1..=accepted.len() as u64).collect();
    assert_eq!(accepted, want);
    for s in &mut sse {
        assert_eq!(s.ids_after(want.len(), Duration::from_secs(20)), want);
    }
    // Caught up: nothing waits, and publishing goes on with the next id.
    assert!(wait_until(Duration::from_secs(10), || {
        let s = stats(&server);
        let backlog = s["fanout_backlog_bytes_by_thread"]
            .as_array()
            .unwrap()
            .clone();
        backlog.len() == 2 && backlog.iter().all(|b| b.as_u64() == Some(0))
    }));
    assert_eq!(server.publish(&channel, "after"), want.len() as u64 + 1);
}
