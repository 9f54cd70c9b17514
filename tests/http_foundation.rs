//! Publishing and polling over real sockets, and the HTTP/1.1 connection handling around them:
//! keep-alive, pipelining, HTTP/1.0, `Connection: close`, `Expect: 100-continue`, chunked bodies,
//! timeouts, the connection limit and graceful shutdown.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::time::{Duration, Instant};

use support::{
    TestServer, assert_still_serving, longpoll_request, poll_request, publish_request, wait_until,
};

#[test]
fn publish_answers_json_with_channel_and_ids_counting_from_one() {
    let server = TestServer::start(&[]);
    let r = server.request(b"POST /pub/news HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body_str(), r#"{"channel":"news","id":1}"#);
    assert_eq!(server.publish("news", "again"), 2);
    assert_eq!(server.publish("news", "third"), 3);
}

#[test]
fn each_channel_counts_its_own_ids() {
    let server = TestServer::start(&[]);
    assert_eq!(server.publish("a", "1"), 1);
    assert_eq!(server.publish("b", "1"), 1);
    assert_eq!(server.publish("a", "2"), 2);
    assert_eq!(server.publish("b", "2"), 2);
    assert_eq!(server.poll("a", Some(0)).message_data(), ["1", "2"]);
}

#[test]
fn channel_names_of_every_allowed_character_and_64_long_are_accepted() {
    let server = TestServer::start(&[]);
    assert_eq!(server.publish("A-z_0.9", "x"), 1);
    let long = "c".repeat(64);
    assert_eq!(server.publish(&long, "x"), 1);
}

#[test]
fn poll_since_zero_returns_every_message_oldest_first() {
    let server = TestServer::start(&[]);
    for data in ["one", "two", "three"] {
        server.publish("c", data);
    }
    let r = server.poll("c", Some(0));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.body_str(),
        r#"{"last_id":3,"messages":[{"id":1,"data":"one"},{"id":2,"data":"two"},{"id":3,"data":"three"}]}"#
    );
}

#[test]
fn poll_since_returns_only_newer_messages() {
    let server = TestServer::start(&[]);
    for data in ["one", "two", "three"] {
        server.publish("c", data);
    }
    let r = server.poll("c", Some(1));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["last_id"], 3);
    assert_eq!(r.message_ids(), [2, 3]);
}

#[test]
fn poll_with_nothing_new_answers_204_without_content_length() {
    let server = TestServer::start(&[]);
    server.publish("c", "one");
    for since in [1, 0] {
        let channel = if since == 1 { "c" } else { "empty" };
        let mut client = server.connect();
        client.send(&poll_request(channel, Some(since)));
        let r = client.read_response();
        assert_eq!(r.status, 204, "{channel}: {r:?}");
        assert_eq!(r.header("content-length"), None, "{r:?}");
        assert!(r.header("date").is_some(), "{r:?}");
        // No body bytes follow: the next request on the connection is answered cleanly.
        client.send(&poll_request("c", Some(0)));
        assert_eq!(client.read_response().message_ids(), [1]);
    }
}

#[test]
fn poll_without_since_reports_last_id_and_no_messages() {
    let server = TestServer::start(&[]);
    let r = server.poll("c", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), r#"{"last_id":0,"messages":[]}"#);
    server.publish("c", "one");
    server.publish("c", "two");
    let r = server.poll("c", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), r#"{"last_id":2,"messages":[]}"#);
}

#[test]
fn message_data_round_trips_through_json_escaping() {
    let server = TestServer::start(&[]);
    let data = "say \"hi\"\n\ttab \\ slash \u{1} é 漢字 🎉 </script>";
    server.publish("c", data);
    assert_eq!(server.poll("c", Some(0)).message_data(), [data]);
}

#[test]
fn empty_publish_body_is_refused_and_publishes_nothing() {
    // An EventSource never dispatches an event with empty data: the transports would disagree.
    let server = TestServer::start(&[]);
    let r = server.request(b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(String::from_utf8_lossy(&r.body).contains("empty"), "{r:?}");
    server.publish("c", "x");
    assert_eq!(server.poll("c", Some(0)).message_data(), ["x"]);
}

#[test]
fn every_response_but_204_carries_content_length_and_date() {
    let server = TestServer::start(&[]);
    let requests: Vec<Vec<u8>> = vec![
        publish_request("c", "x"),
        poll_request("c", Some(0)),
        poll_request("c", None),
        b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        b"GET /pub/c HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        b"GET /poll/c?since=x HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
    ];
    for raw in requests {
        let r = server.request(&raw);
        assert_ne!(r.status, 204);
        let len: usize = r
            .header("content-length")
            .unwrap_or_else(|| panic!("no Content-Length: {r:?}"))
            .parse()
            .unwrap();
        assert_eq!(len, r.body.len());
        assert_eq!(r.header_count("content-length"), 1, "{r:?}");
        let date = r.header("date").unwrap_or_else(|| panic!("no Date: {r:?}"));
        assert!(date.ends_with(" GMT"), "Date is an IMF-fixdate: {date:?}");
    }
}

#[test]
fn keep_alive_connection_serves_many_requests() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    for i in 1..=20u64 {
        client.send(&publish_request("c", &format!("m{i}")));
        let r = client.read_response();
        assert_eq!(r.status, 200);
        assert!(!r.closes(), "{r:?}");
        assert_eq!(r.json()["id"], i);
    }
    client.send(&poll_request("c", Some(18)));
    assert_eq!(client.read_response().message_data(), ["m19", "m20"]);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    let mut batch = publish_request("c", "first");
    batch.extend(poll_request("c", Some(0)));
    batch.extend(publish_request("c", "second"));
    batch.extend(poll_request("c", Some(1)));
    batch.extend(poll_request("c", Some(2)));
    client.send(&batch);
    let r = client.read_response();
    assert_eq!(r.body_str(), r#"{"channel":"c","id":1}"#);
    let r = client.read_response();
    assert_eq!(r.message_data(), ["first"]);
    let r = client.read_response();
    assert_eq!(r.body_str(), r#"{"channel":"c","id":2}"#);
    let r = client.read_response();
    assert_eq!(r.message_data(), ["second"]);
    let r = client.read_response();
    assert_eq!(r.status, 204);
}

#[test]
fn pipelined_requests_split_across_writes_are_answered_in_order() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    let mut batch = publish_request("c", "first");
    batch.extend(publish_request("c", "second"));
    batch.extend(poll_request("c", Some(0)));
    // Cut inside the second request's head and inside the third's request line.
    let (a, rest) = batch.split_at(60);
    let (b, c) = rest.split_at(rest.len() - 10);
    client.send(a);
    client.send(b);
    client.send(c);
    assert_eq!(client.read_response().json()["id"], 1);
    assert_eq!(client.read_response().json()["id"], 2);
    assert_eq!(client.read_response().message_data(), ["first", "second"]);
}

#[test]
fn http10_request_is_answered_in_http10_and_closed() {
    let server = TestServer::start(&[]);
    server.publish("c", "x");
    let mut client = server.connect();
    client.send(b"GET /poll/c?since=0 HTTP/1.0\r\n\r\n");
    let r = client.read_response();
    assert_eq!(r.version, "HTTP/1.0");
    assert_eq!(r.status, 200);
    assert_eq!(r.message_data(), ["x"]);
    client.assert_closed();
}

#[test]
fn http10_with_keep_alive_stays_open() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(b"POST /pub/c HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi");
    let r = client.read_response();
    assert_eq!(r.version, "HTTP/1.0");
    assert_eq!(r.status, 200);
    assert!(
        r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
        "an HTTP/1.0 keep-alive answer says so: {r:?}"
    );
    client.send(b"GET /poll/c?since=0 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = client.read_response();
    assert_eq!(r.version, "HTTP/1.0");
    assert_eq!(r.message_data(), ["hi"]);
}

#[test]
fn connection_close_request_is_answered_and_closed() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
    );
    let r = client.read_response();
    assert_eq!(r.status, 200);
    assert!(r.closes(), "{r:?}");
    client.assert_closed();
    assert_eq!(server.poll("c", Some(0)).message_data(), ["x"]);
}

#[test]
fn requests_pipelined_after_connection_close_are_ignored() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    let mut batch =
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"
            .to_vec();
    batch.extend(publish_request("c", "ignored"));
    client.send(&batch);
    let r = client.read_response();
    assert_eq!(r.status, 200);
    assert!(r.closes());
    client.assert_closed();
    assert_eq!(server.poll("c", Some(0)).message_data(), ["x"]);
}

#[test]
fn expect_100_continue_gets_an_interim_answer_before_the_body_is_sent() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    let interim = client.read_exact_bytes(25);
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    client.send(b"hello");
    let r = client.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], 1);
    assert_eq!(server.poll("c", Some(0)).message_data(), ["hello"]);
}

#[test]
fn expect_100_continue_is_case_insensitive_and_read_by_the_response_reader() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n",
    );
    let interim = client.read_response();
    assert_eq!(interim.status, 100);
    client.send(b"ok");
    assert_eq!(client.read_response().status, 200);
}

#[test]
fn chunked_publish_joins_its_chunks() {
    let server = TestServer::start(&[]);
    let r = server.request(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["id"], 1);
    assert_eq!(
        server.poll("c", Some(0)).message_data(),
        ["hello 0123456789"]
    );
}

#[test]
fn chunked_publish_sent_byte_by_byte_is_accepted() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    let raw = b"POST /pub/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
                3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    for b in raw {
        client.send(&[*b]);
    }
    assert_eq!(client.read_response().status, 200);
    // The connection is still in step for the next request.
    client.send(&poll_request("c", Some(0)));
    assert_eq!(client.read_response().message_data(), ["abcde"]);
}

#[test]
fn publish_body_arriving_in_pieces_is_assembled() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01");
    client.send(b"2345");
    client.send(b"6789");
    assert_eq!(client.read_response().status, 200);
    assert_eq!(server.poll("c", Some(0)).message_data(), ["0123456789"]);
}

#[test]
fn body_of_exactly_the_maximum_message_size_is_accepted() {
    let server = TestServer::start(&["--max-message-size", "16"]);
    assert_eq!(server.publish("c", "0123456789abcdef"), 1);
}

#[test]
fn slow_request_head_gets_408_and_is_closed() {
    let server = TestServer::start(&["--head-timeout", "0.3"]);
    let mut client = server.connect();
    let started = Instant::now();
    client.send(b"GET /poll/c HTTP/1.1\r\nHo");
    let r = client.read_response();
    let waited = started.elapsed();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(r.closes(), "{r:?}");
    assert!(
        waited >= Duration::from_millis(250),
        "408 came after only {waited:?}"
    );
    client.assert_closed();
    assert_still_serving(&server);
}

#[test]
fn trickling_a_request_head_does_not_extend_the_head_timeout() {
    let server = TestServer::start(&["--head-timeout", "0.3"]);
    let mut client = server.connect();
    let started = Instant::now();
    let head = b"GET /poll/c HTTP/1.1\r\nHost: t\r\nX-Slow: ";
    client.send(head);
    // One byte every 50 ms would keep a per-read timer alive for ever; the head deadline must
    // not move.
    let mut answered = false;
    while started.elapsed() < Duration::from_secs(3) {
        if client.try_send(b"a").is_err() || client.receives_within(Duration::from_millis(50)) {
            answered = true;
            break;
        }
    }
    assert!(answered, "no 408 within 3 s of trickling");
    let r = client.read_response();
    assert_eq!(r.status, 408, "{r:?}");
    assert_still_serving(&server);
}

#[test]
fn idle_keep_alive_connection_is_closed_without_an_answer() {
    let server = TestServer::start(&["--idle-timeout", "0.3"]);
    let mut client = server.connect();
    client.send(&publish_request("c", "x"));
    assert_eq!(client.read_response().status, 200);
    let started = Instant::now();
    client.assert_closed();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
    assert_still_serving(&server);
}

#[test]
fn active_connection_is_not_closed_by_the_idle_timeout() {
    let server = TestServer::start(&["--idle-timeout", "0.3"]);
    let mut client = server.connect();
    let started = Instant::now();
    // Requests keep coming, each well within the idle timeout, for longer than the timeout.
    let mut n = 0;
    while started.elapsed() < Duration::from_millis(900) {
        client.send(&poll_request("c", None));
        assert_eq!(client.read_response().status, 200);
        n += 1;
        assert!(!client.receives_within(Duration::from_millis(100)));
    }
    assert!(n >= 3);
}

#[test]
fn connections_over_the_limit_get_503_and_are_closed() {
    let server = TestServer::start(&["--max-connections", "2"]);
    let mut first = server.connect();
    let mut second = server.connect();
    for c in [&mut first, &mut second] {
        c.send(&poll_request("c", None));
        assert_eq!(c.read_response().status, 200);
    }
    let mut third = server.connect();
    let _ = third.try_send(&poll_request("c", None));
    let r = third.read_response();
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.closes(), "{r:?}");
    third.assert_closed();

    // The two admitted connections still work.
    first.send(&poll_request("c", None));
    assert_eq!(first.read_response().status, 200);

    // Once one leaves, a newcomer is admitted.
    drop(second);
    let admitted = wait_until(Duration::from_secs(3), || {
        let mut c = server.connect();
        if c.try_send(&poll_request("c", None)).is_err() {
            return false;
        }
        c.read_response().status == 200
    });
    assert!(admitted, "no connection admitted after one closed");
}

#[test]
fn sigint_answers_parked_long_polls_with_204_and_exits_zero() {
    let mut server = TestServer::start(&["--shutdown-grace", "2"]);
    let mut parked = server.connect();
    // The poll in front proves the server has read the long-poll behind it.
    let mut batch = poll_request("c", None);
    batch.extend(longpoll_request("c", Some(0), Some(60.0)));
    parked.send(&batch);
    assert_eq!(parked.read_response().status, 200);
    assert!(!parked.receives_within(Duration::from_millis(100)));

    let started = Instant::now();
    server.signal("INT");
    let r = parked.read_response();
    assert_eq!(r.status, 204, "{r:?}");
    assert!(r.closes(), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the parked long-poll waited {:?}",
        started.elapsed()
    );
    parked.assert_closed();
    drop(parked);
    let status = server
        .wait_for_exit(Duration::from_secs(5))
        .expect("pushwire exits after SIGINT");
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn sigterm_with_only_idle_connections_exits_zero_promptly() {
    let mut server = TestServer::start(&[]);
    let mut idle = server.connect();
    idle.send(&poll_request("c", None));
    assert_eq!(idle.read_response().status, 200);
    let started = Instant::now();
    server.signal("TERM");
    idle.assert_closed();
    drop(idle);
    let status = server
        .wait_for_exit(Duration::from_secs(5))
        .expect("pushwire exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "idle connections held shutdown for {:?}",
        started.elapsed()
    );
}

#[test]
fn request_finishing_during_shutdown_is_answered_with_connection_close() {
    let mut server = TestServer::start(&["--shutdown-grace", "3"]);
    let mut client = server.connect();
    // A body under way when the signal arrives is still read and answered.
    let mut batch = poll_request("c", None);
    batch.extend(b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab");
    client.send(&batch);
    assert_eq!(client.read_response().status, 200);
    server.signal("INT");
    // Shutdown has begun once the listener is gone.
    let addr = server.addr;
    assert!(
        wait_until(Duration::from_secs(3), || std::net::TcpStream::connect(
            addr
        )
        .is_err()),
        "the listener stayed open after SIGINT"
    );
    client.send(b"cd");
    let r = client.read_response();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.closes(), "{r:?}");
    client.assert_closed();
    drop(client);
    let status = server
        .wait_for_exit(Duration::from_secs(5))
        .expect("pushwire exits after SIGINT");
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn client_vanishing_mid_request_does_not_disturb_others() {
    let server = TestServer::start(&[]);
    let mut gone = server.connect();
    gone.send(b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\npartial");
    drop(gone);
    let mut parked = server.connect();
    parked.send(&longpoll_request("c", Some(0), Some(30.0)));
    drop(parked);
    assert_still_serving(&server);
    let r = server.poll("c", Some(0));
    assert_eq!(
        r.status, 204,
        "the partial publish must not be published: {r:?}"
    );
}

#[test]
fn expect_100_continue_on_a_request_without_body_gets_only_the_final_answer() {
    let server = TestServer::start(&[]);
    let r = server.request(b"GET /poll/c HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn expect_100_continue_from_http10_gets_no_interim_answer() {
    // RFC 9110 §10.1.1: a server MUST NOT send 100 to an HTTP/1.0 client.
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(b"POST /pub/c HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    assert!(
        !client.receives_within(Duration::from_millis(200)),
        "an interim answer went to an HTTP/1.0 client"
    );
    client.send(b"hi");
    let r = client.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.version, "HTTP/1.0");
}

#[test]
fn expect_100_continue_with_an_oversized_body_gets_413_instead_of_100() {
    let server = TestServer::start(&["--max-message-size", "16"]);
    let mut client = server.connect();
    client.send(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 17\r\n\r\n",
    );
    let r = client.read_response();
    assert_eq!(r.status, 413, "{r:?}");
    client.assert_closed();
}

#[test]
fn stalled_request_body_gets_408_after_the_idle_timeout() {
    let server = TestServer::start(&["--idle-timeout", "0.3"]);
    let mut client = server.connect();
    client.send(b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab");
    let started = Instant::now();
    let r = client.read_response();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    client.assert_closed();
    assert_eq!(
        server.poll("c", Some(0)).status,
        204,
        "nothing was published"
    );
}

#[test]
fn request_pipelined_behind_a_parked_longpoll_is_answered_after_it() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    let mut batch = longpoll_request("c", Some(0), Some(30.0));
    batch.extend(poll_request("c", None));
    client.send(&batch);
    assert!(
        !client.receives_within(Duration::from_millis(100)),
        "the request behind a parked long-poll must not be answered before it"
    );
    server.publish("c", "x");
    let first = client.read_response();
    assert_eq!(first.message_data(), ["x"]);
    let second = client.read_response();
    assert_eq!(second.body_str(), r#"{"last_id":1,"messages":[]}"#);
}

#[test]
fn empty_lines_before_a_request_line_are_ignored() {
    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(&publish_request("c", "x"));
    assert_eq!(client.read_response().status, 200);
    client.send(b"\r\n\r\nGET /poll/c?since=0 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.read_response().message_data(), ["x"]);
}

#[test]
fn absolute_form_request_target_is_accepted() {
    // RFC 9112 §3.2.2: a server MUST accept the absolute-form in requests.
    let server = TestServer::start(&[]);
    server.publish("c", "x");
    let r = server.request(b"GET http://t/poll/c?since=0 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.message_data(), ["x"]);
}

#[test]
fn header_names_and_connection_tokens_are_case_insensitive() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(
        b"POST /pub/c HTTP/1.1\r\nhOsT: t\r\ncontent-LENGTH: 1\r\nCONNECTION: Close\r\n\r\nx",
    );
    let r = client.read_response();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.closes(), "{r:?}");
    client.assert_closed();
}
