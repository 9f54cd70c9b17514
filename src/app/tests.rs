//! The application's own clocks and shutdown on a virtual clock: no socket, no sleep.
use std::time::{Duration, Instant};

use super::*;
use crate::trace::TraceOptions;

fn app(now: Instant) -> App {
    let tracer = Tracer::new(&TraceOptions::default()).expect("no trace sink to open");
    let config = Config {
        shutdown_grace: Duration::from_secs(2),
        ..Config::default()
    };
    App::new(config, tracer, now)
}

fn drain(out: &mut crate::outbuf::OutQueue) -> String {
    let mut sink = Vec::new();
    let mut report = crate::outbuf::WriteReport::default();
    while !out.is_empty() {
        out.write_to(&mut sink, &mut report).unwrap();
    }
    String::from_utf8(sink).unwrap()
}

#[test]
fn shutdown_waits_for_open_connections_until_the_grace_is_over() {
    let t0 = Instant::now();
    let mut app = app(t0);
    assert!(!app.shutdown_finished(0), "not before shutdown begins");
    assert_eq!(app.shutdown_deadline(), None);

    assert!(app.begin_shutdown());
    assert_eq!(app.shutdown_deadline(), Some(t0 + Duration::from_secs(2)));
    assert!(app.shutdown_finished(0), "nothing open: done at once");
    assert!(!app.shutdown_finished(3), "work under way gets the grace");

    app.now = t0 + Duration::from_millis(1999);
    assert!(!app.begin_shutdown(), "a second request changes nothing");
    assert_eq!(app.shutdown_deadline(), Some(t0 + Duration::from_secs(2)));
    assert!(!app.shutdown_finished(3));

    app.now = t0 + Duration::from_secs(2);
    assert!(app.shutdown_finished(3), "the grace is over");
}

#[test]
fn a_parked_long_poll_is_answered_empty_when_shutdown_begins() {
    let t0 = Instant::now();
    let mut app = app(t0);
    let mut client = Client::new(1, app.new_session());
    client
        .input
        .extend(b"GET /longpoll/news?since=0&timeout=30 HTTP/1.1\r\nHost: t\r\n\r\n");
    let (progressed, effect) = app.process(7, &mut client);
    assert!(progressed);
    assert!(effect.is_none());
    assert!(client.output.is_empty(), "parked: nothing to say yet");
    assert_eq!(app.hub.subscribers("news").count(), 1);

    app.begin_shutdown();
    app.on_shutdown(7, &mut client);
    let answer = drain(&mut client.output);
    assert!(answer.starts_with("HTTP/1.1 204 "), "{answer}");
    assert_eq!(
        app.hub.subscribers("news").count(),
        0,
        "unsubscribed from the hub"
    );
}
