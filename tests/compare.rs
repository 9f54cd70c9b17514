//! `pushwire compare --format json` against a running server: its byte counts must equal the
//! server's ledger (`GET /stats`) to the byte, and no message may be lost or duplicated across the
//! drop.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::process::Command;

use serde_json::Value;
use support::TestServer;

fn compare(extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_pushwire"))
        .args([
            "compare",
            "--subscribers",
            "2",
            "--messages",
            "20",
            "--rate",
            "100",
            "--poll-interval",
            "0.1",
            "--format",
            "json",
        ])
        .args(extra)
        .output()
        .expect("run pushwire compare");
    assert!(
        out.status.success(),
        "compare failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("compare prints JSON")
}

#[test]
fn compare_json_agrees_with_the_server_ledger() {
    let server = TestServer::start(&["--no-demo", "--sse-retry", "0.2"]);
    let report = compare(&["--url", &format!("http://{}", server.addr)]);
    let stats = server
        .request(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
        .json();
    let columns = report["columns"].as_array().expect("columns");
    assert_eq!(columns.len(), 5);
    let counter = |name: &str, key: &str| {
        columns
            .iter()
            .filter(|c| c["transport"].as_str().unwrap().starts_with(name))
            .map(|c| c["counters"][key].as_u64().unwrap())
            .sum::<u64>()
    };
    for col in columns {
        let name = col["transport"].as_str().unwrap();
        // Both WebSocket columns (plain and ws_deflate) are the server's one `ws` transport.
        let transport = if name.starts_with("ws") { "ws" } else { name };
        let ledger = &stats["transports"][transport];
        let c = &col["counters"];
        assert_eq!(
            counter(transport, "bytes_in"),
            ledger["total_out"],
            "{name}: bytes down"
        );
        assert_eq!(
            counter(transport, "bytes_out"),
            ledger["total_in"],
            "{name}: bytes up"
        );
        if name != "ws_deflate" && name != "ws" {
            assert_eq!(
                c["payload_in"], ledger["bytes_out"]["payload"],
                "{name}: payload"
            );
        }
        assert_eq!(
            counter(transport, "messages"),
            ledger["messages"],
            "{name}: deliveries"
        );
        assert_eq!(col["lost"], 0, "{name}: {col}");
        assert_eq!(col["duplicated"], 0, "{name}: {col}");
        assert_eq!(col["delivered"], 40, "{name}: 2 subscribers × 20 messages");
        // Every subscriber reconnected once after the drop.
        assert_eq!(c["connections"], 4, "{name}");
        assert_eq!(col["ledger"]["agrees"], true, "{name}");
    }
    let publish = &stats["transports"]["publish"];
    assert_eq!(report["publish"]["bytes_out"], publish["total_in"]);
    assert_eq!(report["publish"]["bytes_in"], publish["total_out"]);
    assert_eq!(report["ledger_agrees"], true);
    // The compressed column offered permessage-deflate and inflated what came: the server
    // ledger saw compressed messages, and the plain column's payload is the ledger's payload.
    let ws_ledger = &stats["transports"]["ws"];
    assert_eq!(columns[4]["transport"], "ws_deflate");
    let deflated = ws_ledger["deflate"]["out"]["messages"].as_u64().unwrap();
    let compressed_payload = ws_ledger["deflate"]["out"]["uncompressed_bytes"]
        .as_u64()
        .unwrap();
    assert!(deflated > 0, "{ws_ledger}");
    assert!(
        columns[4]["counters"]["bytes_in"].as_u64() < columns[3]["counters"]["bytes_in"].as_u64(),
        "compression saves bytes: {} vs {}",
        columns[4]["counters"],
        columns[3]["counters"]
    );
    assert!(compressed_payload > columns[4]["counters"]["payload_in"].as_u64().unwrap());
    // WebSocket's opening is an HTTP/1.1 exchange: the claim's verdict quotes its bytes.
    let ws = &columns[3];
    assert!(ws["handshake_up"].as_f64().unwrap() > 100.0, "{ws}");
    let claims = report["claims"].as_array().unwrap();
    assert!(claims.iter().any(|c| {
        c["verdict"]
            .as_str()
            .unwrap()
            .contains("HTTP/1.1 GET with Upgrade")
    }));
}

#[test]
fn compare_with_its_own_server_prints_every_format() {
    let report = compare(&[]);
    assert_eq!(report["ledger_agrees"], true, "{report}");
    let server = TestServer::start(&["--no-demo", "--sse-retry", "0.05"]);
    let url = format!("http://{}", server.addr);
    for format in ["table", "markdown", "csv"] {
        let out = Command::new(env!("CARGO_BIN_EXE_pushwire"))
            .args([
                "compare",
                "--url",
                &url,
                "--subscribers",
                "1",
                "--messages",
                "4",
                "--rate",
                "200",
            ])
            .args(["--poll-interval", "0.05", "--format", format])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("longpoll") && text.contains("requests"),
            "{format}: {text}"
        );
    }
}
