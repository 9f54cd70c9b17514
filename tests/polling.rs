//! Interval polling and long polling over real sockets: parking and waking, timeouts, many pollers
//! chasing a fast publisher, and gap / reset reporting when history runs out.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use support::{
    Client, TestServer, assert_still_serving, longpoll_request, poll_request, publish_request,
    wait_until,
};

#[test]
fn longpoll_with_news_answers_at_once() {
    let server = TestServer::start(&[]);
    server.publish("c", "one");
    server.publish("c", "two");
    let started = Instant::now();
    let r = server.request(&longpoll_request("c", Some(0), Some(30.0)));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.body_str(),
        r#"{"last_id":2,"messages":[{"id":1,"data":"one"},{"id":2,"data":"two"}]}"#
    );
}

#[test]
fn parked_longpoll_is_answered_within_milliseconds_of_a_publish() {
    let server = TestServer::start(&[]);
    let mut parked = server.connect();
    parked.send(&longpoll_request("c", Some(0), Some(30.0)));
    assert!(
        !parked.receives_within(Duration::from_millis(100)),
        "a long-poll with nothing to tell must wait"
    );
    let started = Instant::now();
    server.publish("c", "wake up");
    let r = parked.read_response();
    let latency = started.elapsed();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["last_id"], 1);
    assert_eq!(r.message_data(), ["wake up"]);
    assert!(
        latency < Duration::from_secs(1),
        "parked long-poll answered {latency:?} after the publish"
    );
}

#[test]
fn every_parked_longpoll_on_a_channel_is_woken_and_others_are_not() {
    let server = TestServer::start(&[]);
    let mut parked: Vec<Client> = (0..3).map(|_| server.connect()).collect();
    for c in &mut parked {
        c.send(&longpoll_request("c", Some(0), Some(30.0)));
    }
    let mut elsewhere = server.connect();
    elsewhere.send(&longpoll_request("other", Some(0), Some(30.0)));
    assert!(!parked[0].receives_within(Duration::from_millis(100)));
    server.publish("c", "all of you");
    for c in &mut parked {
        let r = c.read_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.message_data(), ["all of you"]);
    }
    assert!(
        !elsewhere.receives_within(Duration::from_millis(100)),
        "a publish on c woke a long-poll on another channel"
    );
}

#[test]
fn longpoll_without_since_waits_for_the_next_message_only() {
    let server = TestServer::start(&[]);
    server.publish("c", "old");
    let mut parked = server.connect();
    parked.send(&longpoll_request("c", None, Some(30.0)));
    assert!(!parked.receives_within(Duration::from_millis(100)));
    server.publish("c", "new");
    let r = parked.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["last_id"], 2);
    assert_eq!(r.message_ids(), [2]);
    assert_eq!(r.message_data(), ["new"]);
}

#[test]
fn longpoll_times_out_with_204() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    let started = Instant::now();
    client.send(&longpoll_request("c", Some(0), Some(0.2)));
    let r = client.read_response();
    let waited = started.elapsed();
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("content-length"), None);
    assert!(
        !r.closes(),
        "a timed-out long-poll keeps the connection: {r:?}"
    );
    assert!(
        waited >= Duration::from_millis(180) && waited < Duration::from_secs(3),
        "timed out after {waited:?}"
    );
    // The connection carries on, and a message published later is not lost to it.
    server.publish("c", "later");
    client.send(&longpoll_request("c", Some(0), Some(0.2)));
    assert_eq!(client.read_response().message_data(), ["later"]);
}

#[test]
fn longpoll_without_timeout_uses_the_configured_default() {
    let server = TestServer::start(&["--longpoll-timeout", "0.3"]);
    let started = Instant::now();
    let r = server.request(&longpoll_request("c", Some(0), None));
    let waited = started.elapsed();
    assert_eq!(r.status, 204);
    assert!(
        waited >= Duration::from_millis(280) && waited < Duration::from_secs(3),
        "timed out after {waited:?}"
    );
}

#[test]
fn longpoll_timeout_is_clamped_to_the_configured_maximum() {
    // The default wait (0.1 s) stays under the maximum, so the 0.3 s below can only be the clamp.
    let server = TestServer::start(&["--longpoll-timeout", "0.1", "--longpoll-max-timeout", "0.3"]);
    let started = Instant::now();
    let r = server.request(&longpoll_request("c", Some(0), Some(60.0)));
    let waited = started.elapsed();
    assert_eq!(r.status, 204);
    // Clamped to the maximum: neither the 60 s asked for nor the default, nor answered at once.
    assert!(
        waited >= Duration::from_millis(280) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
}

#[test]
fn timed_out_longpoll_no_longer_receives_messages() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(&longpoll_request("c", Some(0), Some(0.2)));
    assert_eq!(client.read_response().status, 204);
    // The expired subscription must not write a stray response onto the idle connection.
    server.publish("c", "after");
    assert!(
        !client.receives_within(Duration::from_millis(200)),
        "an unsolicited response arrived after the long-poll timed out"
    );
    client.send(&poll_request("c", Some(0)));
    assert_eq!(client.read_response().message_data(), ["after"]);
}

#[test]
fn answered_longpoll_connection_serves_its_next_request() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(&longpoll_request("c", Some(0), Some(30.0)));
    assert!(!client.receives_within(Duration::from_millis(50)));
    server.publish("c", "one");
    assert_eq!(client.read_response().message_ids(), [1]);
    client.send(&longpoll_request("c", Some(1), Some(30.0)));
    assert!(!client.receives_within(Duration::from_millis(50)));
    server.publish("c", "two");
    assert_eq!(client.read_response().message_ids(), [2]);
}

#[test]
fn http10_longpoll_is_answered_in_http10() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(b"GET /longpoll/c?since=0&timeout=30 HTTP/1.0\r\n\r\n");
    assert!(!client.receives_within(Duration::from_millis(50)));
    server.publish("c", "x");
    let r = client.read_response();
    assert_eq!(r.version, "HTTP/1.0");
    assert_eq!(r.status, 200);
    assert_eq!(r.message_data(), ["x"]);
    client.assert_closed();
}

/// One fan-out answers every poll parked after the same id with one shared answer, its head
/// made once per exchange: each poller still gets the head its own request calls for.
#[test]
fn one_fan_out_answers_each_poller_in_its_own_version_and_connection_mode() {
    let server = TestServer::start(&["--threads", "1"]);
    let subscribers = || {
        server
            .request(b"GET /stats?channel=mixed HTTP/1.1\r\nHost: t\r\n\r\n")
            .json()["channel"]["subscribers"]
            .as_u64()
    };
    let requests: [&[u8]; 4] = [
        b"GET /longpoll/mixed?since=0&timeout=30 HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /longpoll/mixed?since=0&timeout=30 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"GET /longpoll/mixed?since=0&timeout=30 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"GET /longpoll/mixed?since=0&timeout=30 HTTP/1.1\r\nHost: t\r\n\r\n",
    ];
    let mut pollers: Vec<Client> = requests
        .iter()
        .map(|request| {
            let mut c = server.connect();
            c.send(request);
            c
        })
        .collect();
    assert!(wait_until(Duration::from_secs(5), || subscribers() == Some(4)));
    server.publish("mixed", "to all four");
    let answers: Vec<_> = pollers.iter_mut().map(Client::read_response).collect();
    for r in &answers {
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.message_data(), ["to all four"]);
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    let modes: Vec<_> = answers
        .iter()
        .map(|r| (r.version.as_str(), r.header("connection")))
        .collect();
    assert_eq!(
        modes,
        [
            ("HTTP/1.1", None),
            ("HTTP/1.1", Some("close")),
            ("HTTP/1.0", Some("keep-alive")),
            ("HTTP/1.1", None),
        ]
    );
    pollers[1].assert_closed();
    // The others stay open and serve their next request.
    for i in [0, 2, 3] {
        let next = String::from_utf8_lossy(requests[i]).replace("since=0", "since=1");
        pollers[i].send(next.as_bytes());
    }
    assert!(wait_until(Duration::from_secs(5), || subscribers() == Some(3)));
    server.publish("mixed", "again");
    for i in [0, 2, 3] {
        let r = pollers[i].read_response();
        assert_eq!(r.json()["last_id"], 2, "{r:?}");
    }
}

/// Publishes `count` messages on `publishers` keep-alive connections while `pollers` clients chase
/// `since` with `request`; each poller must see ids 1..=total exactly once, in order, and each
/// publisher's messages in the order it sent them.
fn pollers_chase_publishers(
    server: &TestServer,
    publishers: usize,
    per_publisher: usize,
    pollers: usize,
    request: fn(u64) -> Vec<u8>,
) {
    let total = (publishers * per_publisher) as u64;
    let addr = server.addr;
    let start = Arc::new(Barrier::new(publishers + pollers));
    let deadline = Instant::now() + Duration::from_secs(120);

    let poller_threads: Vec<_> = (0..pollers)
        .map(|p| {
            let start = start.clone();
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                let mut since = 0u64;
                let mut next_seq = vec![0usize; publishers];
                start.wait();
                while since < total {
                    assert!(Instant::now() < deadline, "poller {p} stuck at {since}");
                    client.send(&request(since));
                    let r = client.read_response();
                    match r.status {
                        204 => continue,
                        200 => {}
                        s => panic!("poller {p}: status {s}: {r:?}"),
                    }
                    let json = r.json();
                    assert!(json.get("gap").is_none(), "poller {p}: {json}");
                    assert!(json.get("reset").is_none(), "poller {p}: {json}");
                    for m in json["messages"].as_array().unwrap() {
                        let id = m["id"].as_u64().unwrap();
                        assert_eq!(id, since + 1, "poller {p}: ids out of order");
                        since = id;
                        let data = m["data"].as_str().unwrap();
                        let (who, seq) = data.split_once(':').unwrap();
                        let who: usize = who.parse().unwrap();
                        let seq: usize = seq.parse().unwrap();
                        assert_eq!(seq, next_seq[who], "poller {p}: publisher {who} reordered");
                        next_seq[who] += 1;
                    }
                    assert!(json["last_id"].as_u64().unwrap() >= since);
                }
                assert_eq!(next_seq, vec![per_publisher; publishers]);
                since
            })
        })
        .collect();

    let publisher_threads: Vec<_> = (0..publishers)
        .map(|who| {
            let start = start.clone();
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                start.wait();
                let mut last = 0;
                for seq in 0..per_publisher {
                    client.send(&publish_request("race", &format!("{who}:{seq}")));
                    let r = client.read_response();
                    assert_eq!(r.status, 200, "{r:?}");
                    let id = r.json()["id"].as_u64().unwrap();
                    assert!(id > last, "a publisher's ids must increase");
                    last = id;
                }
            })
        })
        .collect();

    for t in publisher_threads {
        t.join().expect("publisher thread");
    }
    for t in poller_threads {
        assert_eq!(t.join().expect("poller thread"), total);
    }
    let r = server.poll("race", None);
    assert_eq!(r.json()["last_id"], total);
}

#[test]
fn five_pollers_see_every_one_of_ten_thousand_messages_once_in_order() {
    let server = TestServer::start(&["--history-messages", "20000"]);
    pollers_chase_publishers(&server, 2, 5000, 5, |since| {
        poll_request("race", Some(since))
    });
}

#[test]
fn five_longpollers_see_every_one_of_ten_thousand_messages_once_in_order() {
    let server = TestServer::start(&["--history-messages", "20000"]);
    pollers_chase_publishers(&server, 2, 5000, 5, |since| {
        longpoll_request("race", Some(since), Some(10.0))
    });
}

#[test]
fn poll_reports_a_gap_when_history_no_longer_holds_the_next_message() {
    let server = TestServer::start(&["--history-messages", "3"]);
    for i in 1..=5 {
        server.publish("c", &format!("m{i}"));
    }
    let r = server.poll("c", Some(0));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body_str(),
        r#"{"last_id":5,"gap":{"from":1,"to":2},"messages":[{"id":3,"data":"m3"},{"id":4,"data":"m4"},{"id":5,"data":"m5"}]}"#
    );
    let r = server.poll("c", Some(1));
    assert_eq!(r.json()["gap"], serde_json::json!({"from": 2, "to": 2}));
    assert_eq!(r.message_ids(), [3, 4, 5]);
    // From the oldest held message on there is no gap.
    let r = server.poll("c", Some(2));
    assert!(r.json().get("gap").is_none(), "{}", r.body_str());
    assert_eq!(r.message_ids(), [3, 4, 5]);
}

#[test]
fn history_byte_budget_also_makes_gaps_but_keeps_the_newest_message() {
    let server = TestServer::start(&["--history-bytes", "10"]);
    server.publish("c", "aaaa");
    server.publish("c", "bbbb");
    server.publish("c", "cccc");
    let r = server.poll("c", Some(0));
    assert_eq!(r.json()["gap"], serde_json::json!({"from": 1, "to": 1}));
    assert_eq!(r.message_data(), ["bbbb", "cccc"]);
    let big = "x".repeat(50);
    server.publish("c", &big);
    let r = server.poll("c", Some(0));
    assert_eq!(r.json()["gap"], serde_json::json!({"from": 1, "to": 3}));
    assert_eq!(r.message_data(), [big]);
}

#[test]
fn longpoll_reports_a_gap_at_once() {
    let server = TestServer::start(&["--history-messages", "2"]);
    for i in 1..=4 {
        server.publish("c", &format!("m{i}"));
    }
    let started = Instant::now();
    let r = server.request(&longpoll_request("c", Some(0), Some(30.0)));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        r.body_str(),
        r#"{"last_id":4,"gap":{"from":1,"to":2},"messages":[{"id":3,"data":"m3"},{"id":4,"data":"m4"}]}"#
    );
}

/// A parked long-poll whose channel then receives a burst three times longer than its history (one
/// message): the client cannot get every message, so it must be told exactly which ones it missed.
/// Whether the wake answers with the first message of the burst (and the client's next request
/// meets the gap) or after the whole burst (and the wake itself carries the gap) is the server's
/// choice; either way the client, following the answers as a client does, sees every id from 2 to
/// 4 exactly once, each either delivered or inside the one gap reported, and ends at 4.
#[test]
fn parked_longpoll_woken_after_its_position_left_history_reports_the_gap() {
    let server = TestServer::start(&["--history-messages", "1", "--no-demo"]);
    server.publish("c", "m1");
    let mut parked = server.connect();
    parked.send(&longpoll_request("c", Some(1), Some(30.0)));
    let longpolls = || {
        server
            .request(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
            .json()["transports"]["longpoll"]["requests"]
            .as_u64()
    };
    assert!(
        support::wait_until(Duration::from_secs(5), || longpolls() == Some(1)),
        "the long-poll was parked"
    );
    assert!(!parked.receives_within(Duration::from_millis(20)));
    // Three messages in one pipelined write.
    let mut batch = Vec::new();
    for d in ["m2", "m3", "m4"] {
        batch.extend(publish_request("c", d));
    }
    let mut publisher = server.connect();
    publisher.send(&batch);
    for _ in 0..3 {
        assert_eq!(publisher.read_response().status, 200);
    }
    let woken = parked.read_response();
    assert_eq!(woken.status, 200, "{woken:?}");
    let mut answers = vec![woken];
    // Where the wake left the client, an immediate poll from there: what is left, or nothing.
    let position = answers[0].json()["last_id"].as_u64().unwrap();
    let next = server.poll("c", Some(position));
    if next.status == 200 {
        answers.push(next);
    } else {
        assert_eq!(next.status, 204, "{next:?}");
    }
    let mut position = 1;
    let mut gaps = Vec::new();
    for r in &answers {
        let json = r.json();
        let ids = r.message_ids();
        assert!(!ids.is_empty(), "{json}");
        if let Some(gap) = json.get("gap") {
            let (from, to) = (gap["from"].as_u64().unwrap(), gap["to"].as_u64().unwrap());
            assert_eq!(
                from,
                position + 1,
                "the gap starts after the client's position: {json}"
            );
            assert_eq!(
                to + 1,
                ids[0],
                "the gap ends before the first message: {json}"
            );
            gaps.push((from, to));
        } else {
            assert_eq!(
                ids[0],
                position + 1,
                "no gap, so nothing was skipped: {json}"
            );
        }
        let expected: Vec<u64> = (ids[0]..ids[0] + ids.len() as u64).collect();
        assert_eq!(ids, expected, "{json}");
        position = *ids.last().unwrap();
        assert_eq!(json["last_id"], position, "{json}");
    }
    assert_eq!(position, 4);
    assert_eq!(gaps.len(), 1, "exactly one gap was reported: {gaps:?}");
}

#[test]
fn poll_from_beyond_last_id_reports_a_reset_with_every_held_message() {
    let server = TestServer::start(&["--history-messages", "2"]);
    for i in 1..=3 {
        server.publish("c", &format!("m{i}"));
    }
    let r = server.poll("c", Some(100));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body_str(),
        r#"{"last_id":3,"reset":true,"messages":[{"id":2,"data":"m2"},{"id":3,"data":"m3"}]}"#
    );
}

#[test]
fn poll_of_an_empty_channel_from_a_later_id_reports_a_reset() {
    let server = TestServer::start(&[]);
    let r = server.poll("fresh", Some(7));
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), r#"{"last_id":0,"reset":true,"messages":[]}"#);
}

#[test]
fn longpoll_from_beyond_last_id_reports_a_reset_at_once() {
    let server = TestServer::start(&[]);
    server.publish("c", "m1");
    let started = Instant::now();
    let r = server.request(&longpoll_request("c", Some(5), Some(30.0)));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        r.body_str(),
        r#"{"last_id":1,"reset":true,"messages":[{"id":1,"data":"m1"}]}"#
    );
}

#[test]
fn poll_answers_are_never_cached() {
    let server = TestServer::start(&[]);
    server.publish("c", "x");
    for raw in [
        poll_request("c", Some(0)),
        poll_request("c", Some(1)),
        longpoll_request("c", Some(0), Some(1.0)),
    ] {
        let r = server.request(&raw);
        assert_eq!(r.header("cache-control"), Some("no-store"), "{r:?}");
    }
    assert_still_serving(&server);
}
