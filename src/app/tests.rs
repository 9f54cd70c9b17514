//! The application's own clocks and shutdown on a virtual clock: no socket, no sleep.
use std::time::{Duration, Instant};

use super::*;
use crate::trace::TraceOptions;

fn app(now: Instant) -> App {
    let config = Config {
        shutdown_grace: Duration::from_secs(2),
        ..Config::default()
    };
    app_with(config, now)
}

/// The application of a one-loop server.
fn app_with(config: Config, now: Instant) -> App {
    let tracer = Tracer::new(&TraceOptions::default()).expect("no trace sink to open");
    let (shared, _inboxes) = Shared::new(1, config.history, config.max_fanout_backlog);
    App::new(config, tracer, now, shared, 0)
}

/// Client 1 at key 7 of loop 0.
const WHO: ClientRef = ClientRef {
    loop_index: 0,
    key: 7,
    serial: 1,
};

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

/// A client whose `GET /longpoll/news?since=0` is read and not yet processed.
fn long_poll_client(app: &App) -> Client {
    let mut client = Client::new(1, app.new_session());
    client
        .input
        .extend(b"GET /longpoll/news?since=0&timeout=30 HTTP/1.1\r\nHost: t\r\n\r\n");
    client
}

#[test]
fn a_parked_long_poll_is_answered_empty_when_shutdown_begins() {
    let t0 = Instant::now();
    let mut app = app(t0);
    let mut client = long_poll_client(&app);
    let (progressed, effect) = app.process(WHO, &mut client);
    assert!(progressed);
    assert!(effect.is_none());
    assert!(client.output.is_empty(), "parked: nothing to say yet");
    assert_eq!(app.hub().subscribers("news").count(), 1);

    app.begin_shutdown();
    app.on_shutdown(WHO, &mut client);
    let answer = drain(&mut client.output);
    assert!(answer.starts_with("HTTP/1.1 204 "), "{answer}");
    assert_eq!(
        app.hub().subscribers("news").count(),
        0,
        "unsubscribed from the hub"
    );
}

/// The ids of the SSE events in `text`, in order.
fn event_ids(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| id.parse().unwrap())
        .collect()
}

#[test]
fn a_long_replay_is_queued_a_window_at_a_time_and_live_messages_wait_their_turn() {
    let t0 = Instant::now();
    let mut app = app_with(
        Config {
            max_pending_output: 8 * 1024,
            ..Config::default()
        },
        t0,
    );
    let payload = "x".repeat(500);
    for _ in 0..100 {
        app.hub()
            .publish("news", payload.as_str().into(), t0)
            .expect("room");
    }
    let mut client = Client::new(1, app.new_session());
    client
        .input
        .extend(b"GET /sse/news?last_event_id=0 HTTP/1.1\r\nHost: t\r\n\r\n");
    app.process(WHO, &mut client);
    let first_window = client.output.memory();
    assert!(
        first_window <= app.replay_window() + 1024,
        "one window queued, not the history: {first_window} bytes"
    );
    assert!(client.replaying, "more to come");
    assert!(!app.on_output_taken(&mut client), "nothing taken yet");

    // A live message while the replay is under way: not queued ahead of it.
    let live = app
        .hub()
        .publish("news", "live".into(), t0)
        .expect("room")
        .message;
    let encodings = crate::delivery::Encodings::default();
    let verdict = app.deliver(&mut client, "news", &live, &encodings, &mut Vec::new());
    assert!(matches!(verdict, Delivery::Skipped));

    // The reader takes its output; each time, the next window follows.
    let mut text = drain(&mut client.output);
    let mut windows = 1;
    while app.on_output_taken(&mut client) {
        assert!(client.output.memory() <= app.replay_window() + 1024);
        text.push_str(&drain(&mut client.output));
        windows += 1;
    }
    assert!(!client.replaying, "the stream is live again");
    assert!(windows > 3, "paced in windows: {windows}");
    assert_eq!(event_ids(&text), (1..=101).collect::<Vec<u64>>());

    // Now live messages go straight out.
    // The live message's fan-out, had it waited in the loop's inbox until now (published by
    // another loop): the replay sent it, so it is not sent twice.
    let verdict = app.deliver(&mut client, "news", &live, &encodings, &mut Vec::new());
    assert!(matches!(verdict, Delivery::Skipped));
    assert!(client.output.is_empty());

    let next = app
        .hub()
        .publish("news", "next".into(), t0)
        .expect("room")
        .message;
    let verdict = app.deliver(&mut client, "news", &next, &encodings, &mut Vec::new());
    assert!(matches!(verdict, Delivery::Queued));
    assert_eq!(event_ids(&drain(&mut client.output)), [102]);
}

#[test]
fn a_late_fan_out_of_another_channel_does_not_answer_a_parked_long_poll() {
    let t0 = Instant::now();
    let mut app = app(t0);
    let mut client = long_poll_client(&app);
    app.process(WHO, &mut client);
    assert!(client.output.is_empty(), "parked");
    let message = app
        .hub()
        .publish("sport", "goal".into(), t0)
        .unwrap()
        .message;
    let encodings = crate::delivery::Encodings::default();
    let verdict = app.deliver(&mut client, "sport", &message, &encodings, &mut Vec::new());
    assert!(matches!(verdict, Delivery::Skipped));
    assert!(client.output.is_empty(), "still parked");
    let message = app
        .hub()
        .publish("news", "hello".into(), t0)
        .unwrap()
        .message;
    let verdict = app.deliver(&mut client, "news", &message, &encodings, &mut Vec::new());
    assert!(matches!(verdict, Delivery::Queued));
    assert!(drain(&mut client.output).contains("hello"));
}

/// The ids of the messages in the long-poll answers of `text` (heads and JSON bodies).
fn answered_ids(text: &str) -> Vec<Vec<u64>> {
    text.split("HTTP/1.1 ")
        .filter(|answer| !answer.is_empty())
        .map(|answer| {
            let (_, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
            let json: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
            json["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .map(|m| m["id"].as_u64().expect("an id"))
                .collect()
        })
        .collect()
}

/// `message`'s fan-out reaching `client` at `at`, as the event loop delivers it.
fn publish_and_deliver(app: &mut App, client: &mut Client, data: &str, at: Instant) -> Delivery {
    app.now = at;
    let message = app.hub().publish("news", data.into(), at).unwrap().message;
    let encodings = crate::delivery::Encodings::default();
    app.deliver(client, "news", &message, &encodings, &mut Vec::new())
}

#[test]
fn a_long_poll_answered_less_than_the_window_ago_is_held_and_carries_what_came_meanwhile() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_micros(n * 1000);
    let mut app = app(t0);
    assert_eq!(app.config.write_coalesce, Duration::from_millis(2));
    let mut client = long_poll_client(&app);
    app.process(WHO, &mut client);
    let verdict = publish_and_deliver(&mut app, &mut client, "one", t0);
    assert!(matches!(verdict, Delivery::Queued), "first answer: at once");
    assert_eq!(answered_ids(&drain(&mut client.output)), [vec![1]]);

    // The next poll parks; a message inside the window is held, not answered.
    app.now = ms(1) - Duration::from_micros(500);
    poll_again(&mut app, &mut client, "since=1&timeout=30");
    assert!(client.output.is_empty(), "parked");
    let verdict = publish_and_deliver(&mut app, &mut client, "two", ms(1));
    assert!(matches!(verdict, Delivery::Held));
    assert!(client.output.is_empty(), "held");
    assert_eq!(client.session.poll_timeout(true), Some(ms(2)));
    // Later messages need not wake it: the answer reads them from the history.
    let verdict = publish_and_deliver(&mut app, &mut client, "three", ms(1));
    assert!(matches!(verdict, Delivery::Skipped));

    app.now = ms(2);
    assert!(!app.on_timeout(WHO, &mut client));
    assert_eq!(answered_ids(&drain(&mut client.output)), [vec![2, 3]]);

    // The held answer starts the next window: a message 1 ms after it is held again.
    poll_again(&mut app, &mut client, "since=3&timeout=30");
    let verdict = publish_and_deliver(&mut app, &mut client, "four", ms(3));
    assert!(matches!(verdict, Delivery::Held));
    app.now = ms(4);
    assert!(!app.on_timeout(WHO, &mut client));
    assert_eq!(answered_ids(&drain(&mut client.output)), [vec![4]]);

    // Past the window, a message is answered at once again.
    poll_again(&mut app, &mut client, "since=4&timeout=30");
    let verdict = publish_and_deliver(&mut app, &mut client, "five", ms(7));
    assert!(matches!(verdict, Delivery::Queued));
    assert_eq!(answered_ids(&drain(&mut client.output)), [vec![5]]);
}

/// `client`'s next `GET /longpoll/news?{query}`, read and processed at `app.now`.
fn poll_again(app: &mut App, client: &mut Client, query: &str) {
    let request = format!("GET /longpoll/news?{query} HTTP/1.1\r\nHost: t\r\n\r\n");
    client.input.extend(request.as_bytes());
    app.process(WHO, client);
}

/// A long-poller answered message 1 at `t0`, whose next poll (`GET /longpoll/news?{query}`)
/// arrives 1 ms later, with message 2 published meanwhile: inside the 2 ms window.
fn answered_then_polls_again_with_news(app: &mut App, t0: Instant, query: &str) -> Client {
    let mut client = long_poll_client(app);
    app.process(WHO, &mut client);
    publish_and_deliver(app, &mut client, "one", t0);
    assert_eq!(answered_ids(&drain(&mut client.output)), [vec![1]]);
    app.hub().publish("news", "two".into(), t0).unwrap();
    app.now = t0 + Duration::from_millis(1);
    poll_again(app, &mut client, query);
    assert!(
        client.output.is_empty(),
        "news, but inside the window: held, not {}",
        drain(&mut client.output)
    );
    client
}

#[test]
fn a_poll_with_news_inside_the_window_is_held_and_shutdown_answers_it_with_the_news() {
    let t0 = Instant::now();
    let mut app = app(t0);
    let mut client = answered_then_polls_again_with_news(&mut app, t0, "since=1&timeout=30");
    let due = t0 + Duration::from_millis(2);
    assert_eq!(client.session.poll_timeout(true), Some(due));

    assert!(app.begin_shutdown());
    app.on_shutdown(WHO, &mut client);
    let text = drain(&mut client.output);
    assert!(text.contains("Connection: close"), "{text}");
    assert_eq!(answered_ids(&text), [vec![2]], "the news, not a 204");
}

#[test]
fn with_no_window_every_long_poll_answer_leaves_at_once() {
    let t0 = Instant::now();
    let config = Config {
        write_coalesce: Duration::ZERO,
        ..Config::default()
    };
    let mut app = app_with(config, t0);
    let mut client = long_poll_client(&app);
    app.process(WHO, &mut client);
    publish_and_deliver(&mut app, &mut client, "one", t0);
    assert_eq!(answered_ids(&drain(&mut client.output)), [vec![1]]);
    poll_again(&mut app, &mut client, "since=1&timeout=30");
    let verdict = publish_and_deliver(&mut app, &mut client, "two", t0);
    assert!(matches!(verdict, Delivery::Queued));
    assert_eq!(answered_ids(&drain(&mut client.output)), [vec![2]]);
}

#[test]
fn a_held_poll_whose_deadline_comes_first_is_answered_with_its_news_not_204() {
    let t0 = Instant::now();
    let mut app = app(t0);
    let query = "since=1&timeout=0.0005";
    let mut client = answered_then_polls_again_with_news(&mut app, t0, query);
    // The poll's deadline (1.5 ms) comes before the window's end (2 ms).
    let deadline = app.now + Duration::from_micros(500);
    assert_eq!(client.session.poll_timeout(true), Some(deadline));
    app.now = deadline;
    assert!(!app.on_timeout(WHO, &mut client));
    assert_eq!(answered_ids(&drain(&mut client.output)), [vec![2]]);
}

#[test]
fn an_answer_given_when_the_poll_arrives_also_starts_a_window() {
    let t0 = Instant::now();
    let mut app = app(t0);
    app.hub().publish("news", "one".into(), t0).unwrap();
    let mut client = long_poll_client(&app);
    app.process(WHO, &mut client);
    assert_eq!(
        answered_ids(&drain(&mut client.output)),
        [vec![1]],
        "at once"
    );
    app.hub().publish("news", "two".into(), t0).unwrap();
    app.now = t0 + Duration::from_millis(1);
    poll_again(&mut app, &mut client, "since=1&timeout=30");
    assert!(client.output.is_empty(), "held until the window ends");
    app.now = t0 + Duration::from_millis(2);
    assert!(!app.on_timeout(WHO, &mut client));
    assert_eq!(answered_ids(&drain(&mut client.output)), [vec![2]]);
}
