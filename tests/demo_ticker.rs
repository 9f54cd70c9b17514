//! The built-in ticker: with no other traffic at all, it publishes to `demo` once a second a JSON
//! payload carrying its send time; `--no-demo` switches it off.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::time::Duration;

use support::{TestServer, wait_until};

#[test]
fn ticker_publishes_on_its_own() {
    let server = TestServer::start(&[]);
    // Nothing else wakes the server: the ticker's own deadline must.
    std::thread::sleep(Duration::from_millis(2300));
    let r = server.poll("demo", Some(0));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.message_ids().len() >= 2, "{}", r.body_str());
    for data in r.message_data() {
        let v: serde_json::Value = serde_json::from_str(&data).expect("JSON payload");
        assert!(
            v["text"].as_str().is_some_and(|t| t.starts_with("tick ")),
            "{v}"
        );
        assert!(
            v["sent"].as_u64().is_some_and(|ms| ms > 1_600_000_000_000),
            "{v}"
        );
    }
    assert!(wait_until(Duration::from_secs(3), || {
        server.poll("demo", Some(0)).message_ids().len() >= 3
    }));
}

#[test]
fn no_demo_switches_it_off() {
    let server = TestServer::start(&["--no-demo"]);
    std::thread::sleep(Duration::from_millis(1500));
    let r = server.poll("demo", None);
    assert_eq!(r.json()["last_id"], 0, "{}", r.body_str());
}
