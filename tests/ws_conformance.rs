//! The WebSocket echo endpoint against the areas of the Autobahn|Testsuite server cases 1–10,
//! one test per section: framing, pings and pongs, reserved bits, opcodes, fragmentation, UTF-8
//! (fail fast), close handling, limits, auto-fragmentation. Each case sends literal client frames
//! (sometimes one byte per write, as Autobahn's "chopped" variants do) and expects exactly the
//! listed frames back, then either the listed close code and the end of TCP, or — when the case
//! expects no close — our own close 1000 echoed, which proves nothing else was sent.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use support::ws::opcode::{BINARY, CLOSE, CONT, PING, PONG, TEXT};

use support::TestServer;
use support::ws::{RawWs, masked};

/// What the server must send back.
#[derive(Debug, Clone)]
enum Expect {
    Frame(u8, Vec<u8>),
    /// A close frame with this code, then the end of the connection.
    Closed(u16),
}

use Expect::{Closed, Frame};

struct Case {
    name: String,
    /// Client writes, in order.
    writes: Vec<Vec<u8>>,
    expect: Vec<Expect>,
}

fn case(name: impl Into<String>, frames: Vec<Vec<u8>>, expect: Vec<Expect>) -> Case {
    Case {
        name: name.into(),
        writes: frames,
        expect,
    }
}

/// The same case with every byte in a write of its own.
fn chopped(mut c: Case) -> Case {
    c.name.push_str(" (one byte per write)");
    c.writes = c.writes.concat().into_iter().map(|b| vec![b]).collect();
    c
}

fn f(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    masked(fin, opcode, payload)
}

fn with_rsv(rsv: u8, mut frame: Vec<u8>) -> Vec<u8> {
    frame[0] |= rsv << 4;
    frame
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    [&code.to_be_bytes()[..], reason].concat()
}

fn run(server: &TestServer, cases: Vec<Case>) {
    for c in cases {
        // Named on stderr so a case that hangs is known by name.
        eprintln!("case {}", c.name);
        let mut ws = RawWs::open(server, "/echo");
        for w in &c.writes {
            if ws.client.try_send(w).is_err() {
                break;
            }
        }
        let mut closed = false;
        for e in &c.expect {
            let got = ws.read_frame();
            match e {
                Frame(opcode, payload) => {
                    assert_eq!(
                        (got.opcode, got.fin),
                        (*opcode, true),
                        "{}: {got:?}",
                        c.name
                    );
                    assert!(
                        got.payload == *payload,
                        "{}: payload differs ({} vs {} bytes)",
                        c.name,
                        got.payload.len(),
                        payload.len()
                    );
                }
                Closed(code) => {
                    assert_eq!(
                        got.opcode, CLOSE,
                        "{}: expected close {code}, got {got:?}",
                        c.name
                    );
                    assert_eq!(&got.payload[..2], &code.to_be_bytes(), "{}", c.name);
                    ws.answer_close();
                    ws.client.assert_closed();
                    closed = true;
                }
            }
        }
        if !closed {
            ws.send(&f(true, CLOSE, &close_payload(1000, b"")));
            let got = ws.read_frame();
            assert_eq!(
                (got.opcode, got.payload.as_slice()),
                (CLOSE, &[0x03, 0xe8][..]),
                "{}: unexpected frame",
                c.name
            );
            ws.client.assert_closed();
        }
    }
}

fn server() -> TestServer {
    TestServer::start(&["--max-message-size", "16777216", "--no-demo"])
}

#[test]
fn section_1_framing() {
    let mut cases = vec![];
    for len in [0usize, 125, 126, 127, 128, 65_535, 65_536] {
        let text = vec![b'*'; len];
        let bin: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        cases.push(case(
            format!("1.1 text {len}"),
            vec![f(true, TEXT, &text)],
            vec![Frame(TEXT, text.clone())],
        ));
        cases.push(case(
            format!("1.2 binary {len}"),
            vec![f(true, BINARY, &bin)],
            vec![Frame(BINARY, bin.clone())],
        ));
    }
    let text = vec![b'*'; 65_536];
    let frame = f(true, TEXT, &text);
    cases.push(case(
        "1.1.8 text 65536 in 997-byte writes",
        frame.chunks(997).map(<[u8]>::to_vec).collect(),
        vec![Frame(TEXT, text)],
    ));
    run(&server(), cases);
}

#[test]
fn section_2_pings_and_pongs() {
    let binary: Vec<u8> = (0..8).map(|i| 0xf8 + i).collect();
    let mut cases = vec![
        case(
            "2.1 empty ping",
            vec![f(true, PING, b"")],
            vec![Frame(PONG, vec![])],
        ),
        case(
            "2.2 ping with text",
            vec![f(true, PING, b"Hello, world!")],
            vec![Frame(PONG, b"Hello, world!".to_vec())],
        ),
        case(
            "2.3 ping with binary",
            vec![f(true, PING, &binary)],
            vec![Frame(PONG, binary.clone())],
        ),
        case(
            "2.4 ping of 125",
            vec![f(true, PING, &[0xfe; 125])],
            vec![Frame(PONG, vec![0xfe; 125])],
        ),
        case(
            "2.5 ping of 126",
            vec![f(true, PING, &[0xfe; 126])],
            vec![Closed(1002)],
        ),
        chopped(case(
            "2.6 ping of 125",
            vec![f(true, PING, &[0xfe; 125])],
            vec![Frame(PONG, vec![0xfe; 125])],
        )),
        case(
            "2.7 unsolicited empty pong",
            vec![f(true, PONG, b"")],
            vec![],
        ),
        case(
            "2.8 unsolicited pong",
            vec![f(true, PONG, b"unsolicited")],
            vec![],
        ),
        case(
            "2.9 pong then ping",
            vec![f(true, PONG, b"unsolicited"), f(true, PING, b"ping")],
            vec![Frame(PONG, b"ping".to_vec())],
        ),
    ];
    let ten: Vec<Vec<u8>> = (0..10)
        .map(|i| f(true, PING, format!("ping {i}").as_bytes()))
        .collect();
    let pongs: Vec<Expect> = (0..10)
        .map(|i| Frame(PONG, format!("ping {i}").into_bytes()))
        .collect();
    cases.push(case("2.10 ten pings", ten.clone(), pongs.clone()));
    cases.push(chopped(case("2.11 ten pings", ten, pongs)));
    run(&server(), cases);
}

#[test]
fn section_3_reserved_bits() {
    let hello = || f(true, TEXT, b"Hello");
    let cases = vec![
        case(
            "3.1 text rsv1",
            vec![with_rsv(4, f(true, TEXT, b"x"))],
            vec![Closed(1002)],
        ),
        case(
            "3.2 text ok, text rsv2, ping",
            vec![hello(), with_rsv(2, hello()), f(true, PING, b"")],
            vec![Frame(TEXT, b"Hello".to_vec()), Closed(1002)],
        ),
        chopped(case(
            "3.3 text ok, text rsv3, ping",
            vec![hello(), with_rsv(3, hello()), f(true, PING, b"")],
            vec![Frame(TEXT, b"Hello".to_vec()), Closed(1002)],
        )),
        case(
            "3.5 binary rsv4",
            vec![with_rsv(4, f(true, BINARY, &[0xff; 8]))],
            vec![Closed(1002)],
        ),
        case(
            "3.6 ping rsv5",
            vec![with_rsv(5, f(true, PING, b"x"))],
            vec![Closed(1002)],
        ),
        case(
            "3.7 close rsv6",
            vec![with_rsv(6, f(true, CLOSE, b""))],
            vec![Closed(1002)],
        ),
    ];
    run(&server(), cases);
}

#[test]
fn section_4_opcodes() {
    let mut cases = vec![];
    for op in (3..=7).chain(11..=15) {
        cases.push(case(
            format!("4 reserved opcode {op}"),
            vec![f(true, op, b"")],
            vec![Closed(1002)],
        ));
        cases.push(case(
            format!("4 text, reserved opcode {op} with payload, ping"),
            vec![
                f(true, TEXT, b"Hello"),
                f(true, op, b"reserved"),
                f(true, PING, b""),
            ],
            vec![Frame(TEXT, b"Hello".to_vec()), Closed(1002)],
        ));
    }
    run(&server(), cases);
}

#[test]
fn section_5_fragmentation() {
    let frag = || vec![f(false, TEXT, b"fragment1"), f(true, CONT, b"fragment2")];
    let joined = || Frame(TEXT, b"fragment1fragment2".to_vec());
    let mut cases = vec![
        case(
            "5.1 fragmented ping",
            vec![f(false, PING, b"a"), f(true, CONT, b"b")],
            vec![Closed(1002)],
        ),
        case(
            "5.2 fragmented pong",
            vec![f(false, PONG, b"a"), f(true, CONT, b"b")],
            vec![Closed(1002)],
        ),
        case("5.3 text in two fragments", frag(), vec![joined()]),
        chopped(case("5.5 text in two fragments", frag(), vec![joined()])),
        case(
            "5.6 ping between fragments",
            vec![
                f(false, TEXT, b"fragment1"),
                f(true, PING, b"ping"),
                f(true, CONT, b"fragment2"),
            ],
            vec![Frame(PONG, b"ping".to_vec()), joined()],
        ),
        chopped(case(
            "5.8 ping between fragments",
            vec![
                f(false, TEXT, b"fragment1"),
                f(true, PING, b"ping"),
                f(true, CONT, b"fragment2"),
            ],
            vec![Frame(PONG, b"ping".to_vec()), joined()],
        )),
        case(
            "5.9 continuation without start",
            vec![f(true, CONT, b"x"), f(true, TEXT, b"y")],
            vec![Closed(1002)],
        ),
        chopped(case(
            "5.10 continuation without start",
            vec![f(true, CONT, b"x"), f(true, TEXT, b"y")],
            vec![Closed(1002)],
        )),
        case(
            "5.12 unfinished continuation without start",
            vec![f(false, CONT, b"x"), f(true, CONT, b"y")],
            vec![Closed(1002)],
        ),
        case(
            "5.15 text after a finished message, then text mid-message",
            vec![
                f(false, TEXT, b"a"),
                f(true, CONT, b"b"),
                f(false, CONT, b"c"),
                f(true, TEXT, b"d"),
            ],
            vec![Frame(TEXT, b"ab".to_vec()), Closed(1002)],
        ),
        case(
            "5.17 new text frame inside a fragmented message",
            vec![f(false, TEXT, b"a"), f(false, TEXT, b"b")],
            vec![Closed(1002)],
        ),
        case(
            "5.19 pings inside a five-fragment message",
            vec![
                f(false, TEXT, b"1"),
                f(false, CONT, b"2"),
                f(true, PING, b"p1"),
                f(false, CONT, b"3"),
                f(false, CONT, b"4"),
                f(true, PING, b"p2"),
                f(true, CONT, b"5"),
            ],
            vec![
                Frame(PONG, b"p1".to_vec()),
                Frame(PONG, b"p2".to_vec()),
                Frame(TEXT, b"12345".to_vec()),
            ],
        ),
        case(
            "5 empty fragments",
            vec![f(false, TEXT, b""), f(false, CONT, b""), f(true, CONT, b"")],
            vec![Frame(TEXT, vec![])],
        ),
    ];
    cases.push(chopped(case(
        "5.20 pings inside a five-fragment message",
        vec![
            f(false, TEXT, b"1"),
            f(false, CONT, b"2"),
            f(true, PING, b"p1"),
            f(false, CONT, b"3"),
            f(true, CONT, b"4"),
        ],
        vec![Frame(PONG, b"p1".to_vec()), Frame(TEXT, b"1234".to_vec())],
    )));
    run(&server(), cases);
}

#[test]
fn section_6_utf8() {
    let valid: &[&[u8]] = &[
        "Hello-µ@ßöäüàá-UTF-8!!".as_bytes(),
        "κόσμε".as_bytes(),
        &[0x00],
        &[0xc2, 0x80],
        &[0xe0, 0xa0, 0x80],
        &[0xf0, 0x90, 0x80, 0x80],
        &[0x7f],
        &[0xdf, 0xbf],
        &[0xef, 0xbf, 0xbf],
        &[0xf4, 0x8f, 0xbf, 0xbf],
        &[0xed, 0x9f, 0xbf],
        &[0xee, 0x80, 0x80],
        &[0xef, 0xbf, 0xbd],
    ];
    let invalid: &[&[u8]] = &[
        &[
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            0x65, 0x64, 0x69, 0x74, 0x65, 0x64,
        ],
        &[0xf8, 0x88, 0x80, 0x80, 0x80],
        &[0xfc, 0x84, 0x80, 0x80, 0x80, 0x80],
        &[0xf4, 0x90, 0x80, 0x80],
        &[0x80],
        &[0xbf],
        &[0x80, 0xbf, 0x80],
        &[0xc0, 0x20],
        &[0xe0, 0x80, 0x20],
        &[0xf0, 0x80, 0x80, 0x20],
        &[0xc0, 0xaf],
        &[0xe0, 0x80, 0xaf],
        &[0xf0, 0x80, 0x80, 0xaf],
        &[0xc1, 0xbf],
        &[0xe0, 0x9f, 0xbf],
        &[0xed, 0xa0, 0x80],
        &[0xed, 0xbf, 0xbf],
        &[0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80],
        &[0xfe],
        &[0xff],
        &[0xfe, 0xfe, 0xff, 0xff],
        &[0xce, 0xba, 0xe1, 0xbd],
    ];
    let mut cases = vec![];
    for (i, text) in valid.iter().enumerate() {
        cases.push(case(
            format!("6 valid #{i}"),
            vec![f(true, TEXT, text)],
            vec![Frame(TEXT, text.to_vec())],
        ));
        // Every split into two fragments, as 6.2 does.
        for cut in 1..text.len() {
            cases.push(case(
                format!("6 valid #{i} cut at {cut}"),
                vec![f(false, TEXT, &text[..cut]), f(true, CONT, &text[cut..])],
                vec![Frame(TEXT, text.to_vec())],
            ));
        }
    }
    for (i, text) in invalid.iter().enumerate() {
        cases.push(case(
            format!("6 invalid #{i}"),
            vec![f(true, TEXT, text)],
            vec![Closed(1007)],
        ));
        cases.push(chopped(case(
            format!("6 invalid #{i}"),
            vec![f(true, TEXT, text)],
            vec![Closed(1007)],
        )));
        if text.len() > 1 {
            cases.push(case(
                format!("6 invalid #{i} in fragments"),
                vec![f(false, TEXT, &text[..1]), f(true, CONT, &text[1..])],
                vec![Closed(1007)],
            ));
        }
    }
    run(&server(), cases);
}

/// A fail-fast case: its name, the writes before the close must arrive, the writes after it.
type FailFastCase = (&'static str, Vec<Vec<u8>>, Vec<Vec<u8>>);

/// Autobahn 6.4: fail fast. The invalid bytes arrive in a fragment (or a part of a frame) that is
/// not the last, and the close 1007 must arrive while the rest of the message is still unsent: the
/// client reads the close before it sends the final part, which the server then never answers.
#[test]
fn section_6_4_fail_fast_before_the_message_ends() {
    let server = server();
    let kosme = "κόσμε".as_bytes();
    let invalid = [0xf4, 0x90, 0x80, 0x80];
    let whole_frame = |payload: &[u8]| f(true, TEXT, payload);
    let with = |parts: &[&[u8]]| parts.concat();
    let cases: Vec<FailFastCase> = vec![
        (
            "6.4.1 invalid middle fragment",
            vec![f(false, TEXT, kosme), f(false, CONT, &invalid)],
            vec![f(true, CONT, b"edited")],
        ),
        (
            "6.4.1 invalid third of four fragments",
            vec![
                f(false, TEXT, kosme),
                f(false, CONT, b"-"),
                f(false, CONT, &invalid),
            ],
            vec![f(true, CONT, b"edited")],
        ),
        (
            "6.4.2 invalid sequence split across fragments",
            vec![
                f(false, TEXT, &with(&[kosme, &invalid[..1]])),
                f(false, CONT, &invalid[1..2]),
            ],
            vec![f(true, CONT, &with(&[&invalid[2..], b"edited"]))],
        ),
        {
            // One frame announcing the whole message; its payload sent up to the invalid bytes.
            let frame = whole_frame(&with(&[kosme, &invalid, b"edited"]));
            let cut = 6 + kosme.len() + invalid.len();
            (
                "6.4.3 invalid bytes mid-frame",
                vec![frame[..cut].to_vec()],
                vec![frame[cut..].to_vec()],
            )
        },
        {
            let frame = whole_frame(&with(&[kosme, &invalid, b"edited"]));
            let at = 6 + kosme.len();
            (
                "6.4.4 invalid sequence mid-frame, one byte per write",
                vec![frame[..at + 1].to_vec(), frame[at + 1..at + 2].to_vec()],
                vec![frame[at + 2..].to_vec()],
            )
        },
    ];
    for (name, before, after) in cases {
        eprintln!("case {name}");
        let mut ws = RawWs::open(&server, "/echo");
        for w in &before {
            ws.send(w);
        }
        // The close comes while the message is unfinished (a read timeout fails the case).
        let got = ws.read_frame();
        assert_eq!(got.opcode, CLOSE, "{name}: {got:?}");
        assert_eq!(&got.payload[..2], &1007u16.to_be_bytes(), "{name}: {got:?}");
        for w in &after {
            if ws.client.try_send(w).is_err() {
                break;
            }
        }
        ws.answer_close();
        ws.client.assert_closed();
    }
}

#[test]
fn section_7_close_handling() {
    let close = |code: u16, reason: &[u8]| f(true, CLOSE, &close_payload(code, reason));
    let mut cases = vec![
        case(
            "7.1.1 echo then close",
            vec![f(true, TEXT, b"Hello"), close(1000, b"")],
            vec![Frame(TEXT, b"Hello".to_vec()), Closed(1000)],
        ),
        case(
            "7.1.2 two closes",
            vec![close(1000, b""), close(1000, b"")],
            vec![Closed(1000)],
        ),
        case(
            "7.1.3 ping after close",
            vec![close(1000, b""), f(true, PING, b"x")],
            vec![Closed(1000)],
        ),
        case(
            "7.1.4 text after close",
            vec![close(1000, b""), f(true, TEXT, b"x")],
            vec![Closed(1000)],
        ),
        case(
            "7.1.5 close inside a fragmented message",
            vec![
                f(false, TEXT, b"frag"),
                close(1000, b""),
                f(true, CONT, b"x"),
            ],
            vec![Closed(1000)],
        ),
        case(
            "7.3.2 close of one byte",
            vec![f(true, CLOSE, &[0x03])],
            vec![Closed(1002)],
        ),
        case(
            "7.3.4 close with reason",
            vec![close(1000, b"Hello World!")],
            vec![Closed(1000)],
        ),
        case(
            "7.3.5 close with 123-byte reason",
            vec![close(1000, &[b'*'; 123])],
            vec![Closed(1000)],
        ),
        case(
            "7.3.6 close with 124-byte reason",
            vec![close(1000, &[b'*'; 124])],
            vec![Closed(1002)],
        ),
        case(
            "7.5.1 close reason not UTF-8",
            vec![close(
                1000,
                &[
                    0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0,
                    0x80,
                ],
            )],
            vec![Closed(1007)],
        ),
    ];
    for code in [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        cases.push(case(
            format!("7.7 valid code {code}"),
            vec![close(code, b"")],
            vec![Closed(code)],
        ));
    }
    for code in [
        0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        cases.push(case(
            format!("7.9 invalid code {code}"),
            vec![close(code, b"")],
            vec![Closed(1002)],
        ));
    }
    run(&server(), cases);
    // 7.3.1: an empty close is answered with an empty close.
    let server = server();
    let mut ws = RawWs::open(&server, "/echo");
    ws.send(&f(true, CLOSE, b""));
    let got = ws.read_frame();
    assert_eq!((got.opcode, got.payload.len()), (CLOSE, 0));
    ws.client.assert_closed();
}

#[test]
fn section_9_limits() {
    let mut cases = vec![];
    for mib in [1usize, 4, 16] {
        let text = vec![b'*'; mib << 20];
        cases.push(case(
            format!("9.1 text {mib} MiB"),
            vec![f(true, TEXT, &text)],
            vec![Frame(TEXT, text.clone())],
        ));
    }
    let binary: Vec<u8> = (0..16usize << 20).map(|i| (i % 253) as u8).collect();
    let mut frames = vec![];
    for (i, piece) in binary.chunks(65_536).enumerate() {
        let last = (i + 1) * 65_536 >= binary.len();
        frames.push(f(last, if i == 0 { BINARY } else { CONT }, piece));
    }
    cases.push(case(
        "9.3 binary 16 MiB in 64 KiB fragments",
        frames,
        vec![Frame(BINARY, binary.clone())],
    ));
    cases.push(case(
        "9.x one byte over the limit",
        vec![f(true, BINARY, &vec![0; (16 << 20) + 1])],
        vec![Closed(1009)],
    ));
    run(&server(), cases);
}

#[test]
fn section_10_auto_fragmentation() {
    let text = vec![b'*'; 65_536];
    let frames: Vec<Vec<u8>> = text
        .chunks(1300)
        .enumerate()
        .map(|(i, piece)| {
            f(
                (i + 1) * 1300 >= text.len(),
                if i == 0 { TEXT } else { CONT },
                piece,
            )
        })
        .collect();
    run(
        &server(),
        vec![case(
            "10.1.1 text 65536 in 1300-byte fragments",
            frames,
            vec![Frame(TEXT, text)],
        )],
    );
}
