//! The HTTP/1.1 connection's rules on a virtual clock: no socket, no sleep.
use std::time::{Duration, Instant};

use super::*;

const SECOND: Duration = Duration::from_secs(1);

fn settings() -> Settings {
    Settings {
        limits: Limits::default(),
        head_timeout: 3 * SECOND,
        idle_timeout: 20 * SECOND,
        closing_grace: 2 * SECOND,
        max_body: 1024,
        max_pending_output: 4096,
    }
}

fn ok(text: &str) -> Response<'static> {
    Response {
        status: Status::OK,
        content_type: Some("text/plain"),
        extra: &[],
        content: Content::Owned(text.as_bytes().to_vec(), Category::Other),
    }
}

fn drain(out: &mut OutQueue) -> String {
    let mut sink = Vec::new();
    let mut report = crate::outbuf::WriteReport::default();
    while !out.is_empty() {
        out.write_to(&mut sink, &mut report).unwrap();
    }
    String::from_utf8(sink).unwrap()
}

/// Feeds `input` until the connection stops consuming, answering every head with `ok`.
fn serve(conn: &mut Connection, input: &[u8], now: Instant, out: &mut OutQueue) -> usize {
    let mut pos = 0;
    loop {
        let r = conn.receive(&input[pos..], now, out);
        pos += r.consumed;
        match r.event {
            Some(Event::Head(_)) | Some(Event::Body(_)) => conn.respond(ok("hi"), "D", now, out),
            Some(Event::Error(e)) => conn.refuse(&e.into(), true, "D", now, out),
            None if r.consumed == 0 => return pos,
            None => {}
        }
    }
}

#[test]
fn a_silent_connection_gets_408_at_the_head_deadline() {
    let t0 = Instant::now();
    let mut conn = Connection::new(settings(), t0);
    assert_eq!(conn.poll_timeout(true), Some(t0 + 3 * SECOND));
    assert_eq!(conn.handle_timeout(t0 + 2 * SECOND, true), None);
    assert_eq!(
        conn.handle_timeout(t0 + 3 * SECOND, true),
        Some(Expiry::RequestTimeout)
    );
}

#[test]
fn an_idle_keep_alive_connection_closes_at_the_idle_deadline() {
    let t0 = Instant::now();
    let mut conn = Connection::new(settings(), t0);
    let mut out = OutQueue::new();
    let t1 = t0 + SECOND;
    serve(
        &mut conn,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        t1,
        &mut out,
    );
    assert!(drain(&mut out).starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(conn.poll_timeout(true), Some(t1 + 20 * SECOND));
    assert_eq!(conn.handle_timeout(t1 + 19 * SECOND, true), None);
    assert_eq!(
        conn.handle_timeout(t1 + 20 * SECOND, true),
        Some(Expiry::Close)
    );
}

#[test]
fn a_pipelined_head_behind_a_complete_request_gets_the_head_timeout() {
    let t0 = Instant::now();
    let mut conn = Connection::new(settings(), t0);
    let mut out = OutQueue::new();
    let input = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHo";
    let consumed = serve(&mut conn, input, t0, &mut out);
    assert_eq!(consumed, 28, "the first request only");
    // The second head began in the same read: its clock runs from then, not the idle one.
    assert_eq!(conn.poll_timeout(true), Some(t0 + 3 * SECOND));
    // Dripping more of it does not restart the clock.
    serve(&mut conn, &input[consumed..], t0 + 2 * SECOND, &mut out);
    assert_eq!(
        conn.handle_timeout(t0 + 3 * SECOND, true),
        Some(Expiry::RequestTimeout)
    );
}

#[test]
fn empty_lines_before_a_request_do_not_restart_its_clock() {
    let t0 = Instant::now();
    let mut conn = Connection::new(settings(), t0);
    let mut out = OutQueue::new();
    serve(
        &mut conn,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        t0,
        &mut out,
    );
    let t1 = t0 + SECOND;
    assert_eq!(serve(&mut conn, b"\r\n", t1, &mut out), 2);
    serve(&mut conn, b"\r\n", t1 + SECOND, &mut out);
    assert_eq!(conn.poll_timeout(true), Some(t1 + 3 * SECOND));
}

#[test]
fn a_body_has_the_idle_timeout_in_all() {
    let t0 = Instant::now();
    let mut conn = Connection::new(settings(), t0);
    let mut out = OutQueue::new();
    let head = b"POST /pub/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
    let r = conn.receive(head, t0, &out);
    let Some(Event::Head(head)) = r.event else {
        panic!("{r:?}")
    };
    let plan = BodyPlan::decide(&head, 1024).unwrap();
    assert!(plan.has_body());
    conn.read_body(plan, Category::Payload, t0, &mut out);
    assert_eq!(conn.poll_timeout(true), Some(t0 + 20 * SECOND));
    let r = conn.receive(b"ab", t0 + 10 * SECOND, &out);
    assert_eq!(r.consumed, 2);
    assert_eq!(r.tally[Category::Payload.index()], 2);
    // Body bytes do not extend the deadline.
    assert_eq!(conn.poll_timeout(true), Some(t0 + 20 * SECOND));
    assert_eq!(
        conn.handle_timeout(t0 + 20 * SECOND, true),
        Some(Expiry::RequestTimeout)
    );
}

#[test]
fn a_complete_body_is_one_event() {
    let t0 = Instant::now();
    let mut conn = Connection::new(settings(), t0);
    let mut out = OutQueue::new();
    let input = b"POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let r = conn.receive(input, t0, &out);
    let Some(Event::Head(head)) = r.event else {
        panic!()
    };
    conn.read_body(
        BodyPlan::decide(&head, 1024).unwrap(),
        Category::Payload,
        t0,
        &mut out,
    );
    assert_eq!(drain(&mut out), "HTTP/1.1 100 Continue\r\n\r\n");
    let r = conn.receive(&input[r.consumed..], t0, &out);
    assert!(matches!(r.event, Some(Event::Body(ref b)) if b == b"abc"));
    assert_eq!(r.tally[Category::Payload.index()], 3);
    assert_eq!(r.tally[Category::ChunkFraming.index()], 10);
}

#[test]
fn pipelined_requests_wait_for_a_slow_reader() {
    let t0 = Instant::now();
    let mut conn = Connection::new(settings(), t0);
    let mut out = OutQueue::new();
    out.push_bytes(&[b'x'; 4096], Category::Other);
    let r = conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", t0, &out);
    assert_eq!((r.consumed, r.event.is_none()), (0, true));
}

#[test]
fn connection_close_ends_in_a_lingering_close_with_a_grace() {
    let t0 = Instant::now();
    let mut conn = Connection::new(settings(), t0);
    let mut out = OutQueue::new();
    serve(
        &mut conn,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        t0,
        &mut out,
    );
    assert!(conn.is_closing());
    // Output a reader is taking: the idle timeout from its last progress.
    assert_eq!(conn.poll_timeout(false), Some(t0 + 20 * SECOND));
    assert!(!conn.poll_write_shutdown(false, t0));
    drain(&mut out);
    let t1 = t0 + SECOND;
    assert!(conn.poll_write_shutdown(true, t1));
    assert!(!conn.poll_write_shutdown(true, t1), "only once");
    assert!(!conn.is_done(false));
    assert!(conn.is_done(true));
    // The peer never closes: the grace ends it.
    assert_eq!(conn.poll_timeout(true), Some(t1 + 2 * SECOND));
    assert_eq!(
        conn.handle_timeout(t1 + 2 * SECOND, true),
        Some(Expiry::Close)
    );
    // What the peer still sends is drained.
    assert_eq!(conn.receive(b"junk", t1, &out).consumed, 4);
}

#[test]
fn shutdown_closes_idle_connections_and_finishes_requests_under_way() {
    let t0 = Instant::now();
    let mut idle = Connection::new(settings(), t0);
    idle.begin_shutdown(true, t0);
    assert!(idle.is_closing());

    let mut busy = Connection::new(settings(), t0);
    let mut out = OutQueue::new();
    let r = busy.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", t0, &out);
    assert!(matches!(r.event, Some(Event::Head(_))));
    busy.begin_shutdown(true, t0);
    assert!(!busy.is_closing());
    busy.respond(ok("bye"), "D", t0, &mut out);
    assert!(drain(&mut out).contains("Connection: close\r\n"));
    assert!(busy.is_closing());
}

#[test]
fn a_bad_head_is_an_error_answered_in_http_1_1_and_closed() {
    let t0 = Instant::now();
    let mut conn = Connection::new(settings(), t0);
    let mut out = OutQueue::new();
    let r = conn.receive(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", t0, &out);
    let Some(Event::Error(e)) = r.event else {
        panic!()
    };
    conn.refuse(&e.into(), true, "D", t0, &mut out);
    let text = drain(&mut out);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("Connection: close\r\n"));
    assert!(conn.is_closing());
}

#[test]
fn http_1_0_is_answered_in_kind_and_closed_unless_kept_alive() {
    let t0 = Instant::now();
    let mut conn = Connection::new(settings(), t0);
    let mut out = OutQueue::new();
    serve(&mut conn, b"GET / HTTP/1.0\r\n\r\n", t0, &mut out);
    let text = drain(&mut out);
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(text.contains("Connection: close\r\n"));
    assert!(conn.is_closing());
    let mut conn = Connection::new(settings(), t0);
    serve(
        &mut conn,
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        t0,
        &mut out,
    );
    assert!(drain(&mut out).contains("Connection: keep-alive\r\n"));
    assert!(!conn.is_closing());
}

#[test]
fn a_peer_gone_mid_request_is_dropped_at_once() {
    let t0 = Instant::now();
    let mut conn = Connection::new(settings(), t0);
    let out = OutQueue::new();
    conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", t0, &out);
    assert!(conn.on_peer_closed(t0));
    let mut idle = Connection::new(settings(), t0);
    assert!(!idle.on_peer_closed(t0));
    assert!(idle.is_closing());
}

/// The debug check on shared heads reads the `Content-Length` field whole: a value that only
/// starts with the length, or no such field, is not a match.
#[test]
fn a_head_declares_its_content_length_exactly() {
    let head =
        b"HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 17\r\nCache-Control: no-store\r\n\r\n";
    assert!(declares_length(head, 17));
    assert!(!declares_length(head, 1));
    assert!(!declares_length(head, 170));
    assert!(!declares_length(
        b"HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n",
        0
    ));
}
