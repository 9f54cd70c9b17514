//! The `pushwire` command as a new user meets it: `--help` as README.md shows it, start-up
//! refusals and errors that name what went wrong, and `pushwire stats` against a live server.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::{Client, TestServer, unique_channel};

/// How long a command that should answer at once (help, a refusal, `stats`) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `pushwire args…` to completion; a process still running after [`COMMAND_TIMEOUT`] (a
/// server that started when it should have refused) is killed and fails the test.
fn run(args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushwire"))
        .args(args)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pushwire");
    // Drained on threads so that a full pipe can not stall the child.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pushwire {args:?} still running after {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs a command that must fail; returns its stderr.
fn refused(args: &[&str]) -> String {
    let r = run(args);
    assert!(
        !r.status.success(),
        "pushwire {args:?} succeeded: {}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("listening"),
        "pushwire {args:?} started: {}",
        r.stdout
    );
    r.stderr
}

/// The lines of the README code block that follows the line `$ {command}`.
fn readme_block(command: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let prompt = format!("$ {command}");
    let mut lines = readme.lines().skip_while(|l| *l != prompt);
    assert!(
        lines.next().is_some(),
        "README.md has no line {prompt:?} opening the output of {command}"
    );
    lines
        .take_while(|l| !l.starts_with("```"))
        .map(|l| l.trim_end().to_string())
        .collect()
}

fn help_lines(args: &[&str]) -> Vec<String> {
    let r = run(args);
    assert!(r.status.success(), "pushwire {args:?}: {}", r.stderr);
    r.stdout.lines().map(|l| l.trim_end().to_string()).collect()
}

/// The `Options:` section of a help text (but `--version`, which only the top level has).
fn options(help: &[String]) -> Vec<String> {
    help.iter()
        .skip_while(|l| *l != "Options:")
        .filter(|l| !l.contains("-V, --version"))
        .cloned()
        .collect()
}

#[test]
fn readme_shows_exactly_what_help_prints() {
    for args in [&["--help"][..], &["stats", "--help"]] {
        let command = format!("cargo run --release -- {}", args.join(" "));
        let printed = help_lines(args);
        let shown = readme_block(&command);
        if printed != shown {
            let first = printed
                .iter()
                .zip(&shown)
                .position(|(a, b)| a != b)
                .unwrap_or(printed.len().min(shown.len()));
            panic!(
                "README.md's block after `$ {command}` differs from what it prints, first at \
                 line {}:\n  printed: {:?}\n  README:  {:?}\nPaste the output of `{command}` into \
                 README.md.",
                first + 1,
                printed.get(first),
                shown.get(first)
            );
        }
    }
}

#[test]
fn serve_help_lists_the_same_options_as_the_top_level() {
    // README.md shows `--help` only and says `serve --help` lists the same options.
    let top = help_lines(&["--help"]);
    let serve = help_lines(&["serve", "--help"]);
    assert!(options(&top).len() > 20, "{top:?}");
    assert_eq!(options(&serve), options(&top));
}

#[test]
fn help_fits_in_100_columns() {
    for args in [&["--help"][..], &["serve", "--help"], &["stats", "--help"]] {
        for line in help_lines(args) {
            assert!(line.chars().count() <= 100, "{args:?}: {line:?}");
        }
    }
}

#[test]
fn a_port_in_use_names_the_address_and_suggests_port_0() {
    let server = TestServer::start(&["--no-demo"]);
    let addr = server.addr.to_string();
    let err = refused(&["--addr", &addr, "--no-demo"]);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(err.contains("already in use"), "{err}");
    assert!(err.contains("--addr 127.0.0.1:0"), "{err}");
}

#[test]
fn a_trace_file_that_can_not_be_opened_is_named() {
    let err = refused(&[
        "--addr",
        "127.0.0.1:0",
        "--no-demo",
        "--trace-file",
        "/nonexistent/dir/x.jsonl",
    ]);
    assert!(
        err.contains("cannot open --trace-file /nonexistent/dir/x.jsonl"),
        "{err}"
    );
}

#[test]
fn a_host_name_is_accepted_as_the_listening_address() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushwire"))
        .args(["--addr", "localhost:0", "--no-demo"])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pushwire");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while stdout.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
            line.push(b[0]);
        }
        let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
    });
    let line = rx.recv_timeout(Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("no listening line within 10 s");
    let addr: SocketAddr = line
        .strip_prefix("pushwire listening on http://")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_ne!(addr.port(), 0);
}

#[test]
fn an_unresolvable_host_is_refused_with_its_name() {
    let err = refused(&["--addr", "no-such-host.invalid:80"]);
    assert!(err.contains("no-such-host.invalid:80"), "{err}");
}

#[test]
fn contradictory_or_empty_limits_are_refused_at_start() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--longpoll-timeout", "200"],
            "--longpoll-timeout 200 s is above --longpoll-max-timeout 120 s",
        ),
        (
            &["--longpoll-timeout", "10", "--longpoll-max-timeout", "5"],
            "--longpoll-timeout 10 s is above --longpoll-max-timeout 5 s",
        ),
        (&["--max-message-size", "0"], "--max-message-size 0"),
        (&["--max-connections", "0"], "--max-connections 0"),
    ];
    for (flags, message) in cases {
        let mut args = vec!["--addr", "127.0.0.1:0", "--no-demo"];
        args.extend_from_slice(flags);
        let err = refused(&args);
        assert!(err.contains(message), "{flags:?}: {err}");
        // The same through the explicit subcommand.
        let mut args = vec!["serve", "--addr", "127.0.0.1:0", "--no-demo"];
        args.extend_from_slice(flags);
        let err = refused(&args);
        assert!(err.contains(message), "serve {flags:?}: {err}");
    }
}

#[test]
fn a_timeout_equal_to_the_maximum_is_accepted() {
    let server = TestServer::start(&["--longpoll-timeout", "5", "--longpoll-max-timeout", "5"]);
    support::assert_still_serving(&server);
}

#[test]
fn stats_without_a_server_names_the_url() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let err = refused(&["stats", "--url", &url]);
    assert!(err.contains(&format!("cannot reach {url}/stats")), "{err}");
}

#[test]
fn stats_takes_a_base_url_or_the_stats_url_itself() {
    let server = TestServer::start(&["--no-demo"]);
    for url in [
        format!("http://{}", server.addr),
        format!("http://{}/", server.addr),
        format!("http://{}/stats", server.addr),
        format!("http://localhost:{}/stats", server.addr.port()),
    ] {
        let r = run(&["stats", "--url", &url]);
        assert!(r.status.success(), "{url}: {}", r.stderr);
        assert!(r.stdout.contains("latency p50"), "{url}: {}", r.stdout);
    }
}

#[test]
fn stats_shows_the_servers_reason_for_a_bad_channel() {
    let server = TestServer::start(&["--no-demo"]);
    let url = format!("http://{}", server.addr);
    let err = refused(&["stats", "--url", &url, "--channel", "bad!"]);
    assert!(err.contains("answered 400 Bad Request"), "{err}");
    assert!(err.contains("invalid channel name"), "{err}");
    assert!(
        err.contains(&format!("{url}/stats?channel=bad%21")),
        "{err}"
    );
}

#[test]
fn stats_for_a_channel_shows_its_last_id_history_and_subscribers() {
    let server = TestServer::start(&["--no-demo"]);
    let channel = unique_channel("news");
    server.publish(&channel, "hello");
    server.publish(&channel, "world!");
    // One SSE subscriber and one WebSocket subscriber: the answer to each upgrade or stream
    // head comes after the subscription.
    let mut sse = Client::connect(server.addr);
    sse.send(format!("GET /sse/{channel} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    let head = sse.read_exact_bytes(12);
    assert_eq!(head, b"HTTP/1.1 200");
    let mut ws = Client::connect(server.addr);
    ws.send(
        format!(
            "GET /ws/{channel} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(ws.read_exact_bytes(12), b"HTTP/1.1 101");

    let url = format!("http://{}", server.addr);
    let r = run(&["stats", "--url", &url, "--channel", &channel]);
    assert!(r.status.success(), "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], format!("channel {channel}:"), "{}", r.stdout);
    let line = |label: &str| -> String {
        let found = lines.iter().find(|l| l.trim_start().starts_with(label));
        found
            .unwrap_or_else(|| panic!("no {label:?} in\n{}", r.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("last id"), "last id 2");
    assert_eq!(
        line("held"),
        "held 2 messages for resuming, 11 bytes of payload"
    );
    assert_eq!(
        line("subscribers"),
        "subscribers 2 (longpoll 0, sse 1, ws 1)"
    );
    // The JSON says the same.
    let r = run(&["stats", "--url", &url, "--channel", &channel, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    let c = &json["channel"];
    assert_eq!(
        (c["last_id"].as_u64(), c["held_messages"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(c["held_bytes"], 11);
    assert_eq!(
        c["subscribers_by_transport"],
        serde_json::json!({"longpoll": 0, "sse": 1, "ws": 1})
    );
}
