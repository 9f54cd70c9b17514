//! Bad input over real sockets: each request below gets exactly the status the API promises, a
//! protocol error closes its connection, and the server keeps serving fresh clients afterwards.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use support::{Response, TestServer, assert_still_serving, poll_request, publish_request};

/// Sends `raw` on a fresh connection of a fresh server with `flags`; asserts the answer has
/// `status`, says `Connection: close`, and is followed by the server closing; then that the server
/// still serves a new client.
fn assert_refused_and_closed_with(flags: &[&str], raw: &[u8], status: u16) -> Response {
    let server = TestServer::start(flags);
    let mut client = server.connect();
    // The server may refuse before all of a long request is written.
    let _ = client.try_send(raw);
    let r = client.read_response();
    assert_eq!(
        r.status,
        status,
        "request {:?} got {r:?}",
        String::from_utf8_lossy(&raw[..raw.len().min(200)])
    );
    assert!(
        r.closes(),
        "a refused protocol error says Connection: close: {r:?}"
    );
    assert!(r.header("date").is_some(), "{r:?}");
    assert!(r.header("content-length").is_some(), "{r:?}");
    client.assert_closed();
    assert_still_serving(&server);
    r
}

fn assert_refused_and_closed(raw: &[u8], status: u16) -> Response {
    assert_refused_and_closed_with(&[], raw, status)
}

/// Like [`assert_refused_and_closed`] for a well-framed request the router refuses: the
/// connection stays usable for the next request.
fn assert_refused_keeping_the_connection(raw: &[u8], status: u16) -> Response {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(raw);
    let r = client.read_response();
    assert_eq!(
        r.status,
        status,
        "request {:?} got {r:?}",
        String::from_utf8_lossy(raw)
    );
    assert!(
        !r.closes(),
        "a well-framed refusal keeps the connection: {r:?}"
    );
    client.send(&publish_request("c", "after"));
    let next = client.read_response();
    assert_eq!(next.status, 200, "{next:?}");
    assert_still_serving(&server);
    r
}

// Malformed heads.

#[test]
fn whitespace_before_a_header_colon_is_400() {
    assert_refused_and_closed(b"GET /poll/c HTTP/1.1\r\nHost : t\r\n\r\n", 400);
}

#[test]
fn obs_fold_header_continuation_is_400() {
    assert_refused_and_closed(
        b"GET /poll/c HTTP/1.1\r\nHost: t\r\nX-Long: a\r\n folded\r\n\r\n",
        400,
    );
}

#[test]
fn bare_cr_in_a_header_value_is_400() {
    assert_refused_and_closed(b"GET /poll/c HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n", 400);
}

#[test]
fn nul_in_a_header_value_is_400() {
    assert_refused_and_closed(b"GET /poll/c HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n", 400);
}

#[test]
fn request_line_without_a_version_is_400() {
    assert_refused_and_closed(b"GET /poll/c\r\nHost: t\r\n\r\n", 400);
}

#[test]
fn request_line_with_extra_parts_is_400() {
    assert_refused_and_closed(b"GET /poll/c HTTP/1.1 extra\r\nHost: t\r\n\r\n", 400);
}

#[test]
fn garbage_instead_of_a_request_is_400() {
    assert_refused_and_closed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400);
}

#[test]
fn method_with_invalid_characters_is_400() {
    assert_refused_and_closed(b"G(T /poll/c HTTP/1.1\r\nHost: t\r\n\r\n", 400);
}

#[test]
fn http11_without_host_is_400() {
    assert_refused_and_closed(b"GET /poll/c HTTP/1.1\r\n\r\n", 400);
}

#[test]
fn http11_with_two_hosts_is_400() {
    assert_refused_and_closed(b"GET /poll/c HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
}

#[test]
fn http10_without_host_is_served() {
    let server = TestServer::start(&[]);
    let r = server.request(b"GET /poll/c HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200, "{r:?}");
}

// Size limits.

#[test]
fn request_line_over_8192_bytes_is_414() {
    let raw = format!(
        "GET /poll/c?pad={} HTTP/1.1\r\nHost: t\r\n\r\n",
        "a".repeat(8192)
    );
    assert_refused_and_closed(raw.as_bytes(), 414);
}

#[test]
fn request_line_still_arriving_past_8192_bytes_is_414() {
    // No CRLF yet: the server must not wait for the end of an already too long line.
    let raw = format!("GET /poll/c?pad={}", "a".repeat(9000));
    assert_refused_and_closed(raw.as_bytes(), 414);
}

#[test]
fn request_line_just_under_the_limit_is_served() {
    let server = TestServer::start(&[]);
    let prefix = "GET /poll/c?pad=";
    let suffix = " HTTP/1.1";
    let pad = "a".repeat(8192 - prefix.len() - suffix.len());
    let raw = format!("{prefix}{pad}{suffix}\r\nHost: t\r\n\r\n");
    assert_eq!(server.request(raw.as_bytes()).status, 200);
}

#[test]
fn head_over_16384_bytes_is_431() {
    let mut raw = String::from("GET /poll/c HTTP/1.1\r\nHost: t\r\n");
    raw.push_str(&format!("X-Big: {}\r\n", "b".repeat(8000)));
    raw.push_str(&format!("X-Big2: {}\r\n", "b".repeat(8000)));
    raw.push_str(&format!("X-Big3: {}\r\n", "b".repeat(1000)));
    raw.push_str("\r\n");
    assert_refused_and_closed(raw.as_bytes(), 431);
}

#[test]
fn head_of_many_small_headers_over_16384_bytes_is_431() {
    let mut raw = String::from("GET /poll/c HTTP/1.1\r\nHost: t\r\n");
    let mut i = 0;
    while raw.len() <= 16384 {
        raw.push_str(&format!("X-H{i}: {}\r\n", "v".repeat(100)));
        i += 1;
    }
    raw.push_str("\r\n");
    assert_refused_and_closed(raw.as_bytes(), 431);
}

#[test]
fn body_over_the_maximum_message_size_is_413() {
    let raw = format!(
        "POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 17\r\n\r\n{}",
        "x".repeat(17)
    );
    assert_refused_and_closed_with(&["--max-message-size", "16"], raw.as_bytes(), 413);
}

#[test]
fn body_over_the_default_maximum_message_size_is_413_and_not_published() {
    let server = TestServer::start(&[]);
    let body = "x".repeat(65537);
    let mut client = server.connect();
    let _ = client.try_send(&publish_request("c", &body));
    let r = client.read_response();
    assert_eq!(r.status, 413, "{r:?}");
    // The answer says what was sent and what the limit is.
    let text = String::from_utf8_lossy(&r.body);
    assert!(
        text.contains("body of 65537 bytes exceeds the maximum message size of 65536 bytes"),
        "{text}"
    );
    assert!(r.closes());
    client.assert_closed();
    assert_eq!(server.poll("c", Some(0)).status, 204);
    assert_still_serving(&server);
}

#[test]
fn chunked_body_growing_past_the_maximum_message_size_is_413() {
    let raw = b"POST /pub/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
                a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n";
    assert_refused_and_closed_with(&["--max-message-size", "16"], raw, 413);
}

#[test]
fn a_chunked_body_refusal_names_the_limit_it_passed() {
    let server = TestServer::start(&["--max-message-size", "16"]);
    let mut client = server.connect();
    let raw = b"POST /pub/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
                a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n";
    let _ = client.try_send(raw);
    let r = client.read_response();
    assert_eq!(r.status, 413, "{r:?}");
    let text = String::from_utf8_lossy(&r.body);
    assert!(
        text.contains("passed the maximum message size of 16 bytes"),
        "{text}"
    );
}

#[test]
fn single_chunk_larger_than_the_maximum_message_size_is_413() {
    let mut raw =
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n".to_vec();
    raw.extend(std::iter::repeat_n(b'x', 70_000));
    assert_refused_and_closed(&raw, 413);
}

// Body framing.

#[test]
fn content_length_with_transfer_encoding_is_400() {
    assert_refused_and_closed(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn conflicting_content_lengths_are_400() {
    assert_refused_and_closed(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    );
}

#[test]
fn conflicting_content_length_list_is_400() {
    assert_refused_and_closed(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 4\r\n\r\nabcd",
        400,
    );
}

#[test]
fn repeated_identical_content_lengths_are_accepted() {
    let server = TestServer::start(&[]);
    let r = server.request(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(server.poll("c", Some(0)).message_data(), ["abc"]);
}

#[test]
fn non_numeric_content_length_is_400() {
    assert_refused_and_closed(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
        400,
    );
}

#[test]
fn signed_content_length_is_400() {
    assert_refused_and_closed(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc",
        400,
    );
}

#[test]
fn negative_content_length_is_400() {
    assert_refused_and_closed(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
        400,
    );
}

#[test]
fn empty_content_length_is_400() {
    assert_refused_and_closed(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length:\r\n\r\n",
        400,
    );
}

#[test]
fn overflowing_content_length_is_400() {
    assert_refused_and_closed(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 184467440737095516160\r\n\r\n",
        400,
    );
}

#[test]
fn huge_but_valid_content_length_is_413() {
    assert_refused_and_closed(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 9999999999\r\n\r\n",
        413,
    );
}

#[test]
fn invalid_chunk_size_is_400() {
    assert_refused_and_closed(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn overflowing_chunk_size_is_400() {
    assert_refused_and_closed(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn chunk_data_not_followed_by_crlf_is_400() {
    assert_refused_and_closed(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n",
        400,
    );
}

#[test]
fn transfer_coding_other_than_chunked_is_501() {
    assert_refused_and_closed(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        501,
    );
}

#[test]
fn transfer_encoding_in_http10_is_400() {
    assert_refused_and_closed(
        b"POST /pub/c HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn non_utf8_publish_body_is_400() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab\xff\xfe");
    let r = client.read_response();
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        server.poll("c", Some(0)).status,
        204,
        "nothing was published"
    );
    assert_still_serving(&server);
}

// Versions, methods, paths, queries, expectations.

#[test]
fn http2_request_line_is_505() {
    assert_refused_and_closed(b"GET /poll/c HTTP/2.0\r\nHost: t\r\n\r\n", 505);
}

#[test]
fn http3_request_line_is_505() {
    assert_refused_and_closed(b"GET /poll/c HTTP/3.0\r\nHost: t\r\n\r\n", 505);
}

#[test]
fn get_on_pub_is_405_allowing_post() {
    let r = assert_refused_keeping_the_connection(b"GET /pub/c HTTP/1.1\r\nHost: t\r\n\r\n", 405);
    assert_eq!(r.header("allow"), Some("POST"));
}

#[test]
fn post_on_poll_is_405_allowing_get() {
    let r = assert_refused_keeping_the_connection(
        b"POST /poll/c HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
        405,
    );
    assert_eq!(r.header("allow"), Some("GET"));
}

#[test]
fn delete_on_longpoll_is_405_allowing_get() {
    let r = assert_refused_keeping_the_connection(
        b"DELETE /longpoll/c HTTP/1.1\r\nHost: t\r\n\r\n",
        405,
    );
    assert_eq!(r.header("allow"), Some("GET"));
}

#[test]
fn refused_post_with_a_body_closes_the_connection() {
    // The body was never read, so nothing after it can be framed.
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(b"POST /poll/c HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    let r = client.read_response();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    assert!(r.closes(), "{r:?}");
    client.assert_closed();
    assert_still_serving(&server);
}

#[test]
fn unknown_path_is_404() {
    assert_refused_keeping_the_connection(b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n", 404);
}

#[test]
fn root_path_serves_the_demo_page() {
    let server = TestServer::start(&[]);
    let r = server.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.body_str().contains("<html"), "{}", r.body_str());
}

#[test]
fn endpoint_without_a_channel_is_404() {
    assert_refused_keeping_the_connection(b"GET /poll HTTP/1.1\r\nHost: t\r\n\r\n", 404);
}

#[test]
fn channel_name_of_65_characters_is_400() {
    let raw = format!(
        "POST /pub/{} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
        "c".repeat(65)
    );
    assert_refused_keeping_the_connection(raw.as_bytes(), 400);
}

#[test]
fn empty_channel_name_is_400() {
    assert_refused_keeping_the_connection(b"GET /poll/ HTTP/1.1\r\nHost: t\r\n\r\n", 400);
}

#[test]
fn channel_name_with_a_forbidden_character_is_400() {
    for name in ["bad!", "a%20b", "a/b", "caf%C3%A9", "a:b"] {
        let raw = format!("GET /poll/{name} HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_refused_keeping_the_connection(raw.as_bytes(), 400);
    }
}

#[test]
fn since_that_is_not_a_non_negative_integer_is_400() {
    for since in [
        "-1",
        "abc",
        "1.5",
        "",
        "1e3",
        "99999999999999999999999",
        "%201",
    ] {
        let raw = format!("GET /poll/c?since={since} HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_refused_keeping_the_connection(raw.as_bytes(), 400);
        let raw = format!("GET /longpoll/c?since={since}&timeout=1 HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_refused_keeping_the_connection(raw.as_bytes(), 400);
    }
}

#[test]
fn longpoll_timeout_that_is_not_a_positive_number_is_400() {
    for timeout in ["0", "-1", "abc", "NaN", "inf"] {
        let raw = format!("GET /longpoll/c?since=0&timeout={timeout} HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_refused_keeping_the_connection(raw.as_bytes(), 400);
    }
}

#[test]
fn unsupported_expectation_is_417() {
    assert_refused_and_closed(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nExpect: something-else\r\nContent-Length: 1\r\n\r\nx",
        417,
    );
}

#[test]
fn unsupported_expectation_publishes_nothing() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nExpect: something-else\r\nContent-Length: 1\r\n\r\nx",
    );
    assert_eq!(client.read_response().status, 417);
    assert_eq!(server.poll("c", Some(0)).status, 204);
}

#[test]
fn refusal_of_a_pipelined_request_still_answers_the_ones_before_it() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    let mut batch = publish_request("c", "ok");
    batch.extend(b"GET /poll/c HTTP/1.1\r\nHost : t\r\n\r\n");
    batch.extend(poll_request("c", Some(0)));
    client.send(&batch);
    assert_eq!(client.read_response().status, 200);
    let r = client.read_response();
    assert_eq!(r.status, 400);
    assert!(r.closes());
    client.assert_closed();
    assert_eq!(server.poll("c", Some(0)).message_data(), ["ok"]);
}

#[test]
fn refused_client_that_keeps_sending_is_still_closed_once_it_stops() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    client.send(b"GET /poll/c HTTP/2.0\r\nHost: t\r\n\r\n");
    let r = client.read_response();
    assert_eq!(r.status, 505);
    // Bytes after the refusal are read and thrown away; our EOF ends the connection.
    let _ = client.try_send(b"more junk that nobody parses\r\n\r\n");
    client.shutdown_write();
    client.assert_closed();
    assert_still_serving(&server);
}
