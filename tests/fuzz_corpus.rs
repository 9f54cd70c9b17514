//! Replays every checked-in seed and crash file under `fuzz/corpus/<target>/` through the
//! `pushwire::fuzzing` entry point of the same name, on the stable toolchain: the fuzz invariants
//! are checked by `cargo test` without nightly or libFuzzer.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
use std::fs;
use std::path::Path;

use pushwire::fuzzing;

/// One test per fuzz target, named after it; each needs at least one corpus file.
macro_rules! replay {
    ($($target:ident),* $(,)?) => {$(
        #[test]
        fn $target() {
            replay(stringify!($target), fuzzing::$target);
        }
    )*};
}

replay!(
    http_request,
    chunked_body,
    ws_handshake,
    ws_frame,
    ws_session,
    ws_utf8,
    sse_parser,
    roundtrip_ws,
    roundtrip_chunked,
    roundtrip_sse,
    render,
    dissector,
    ws_deflate,
);

fn replay(target: &str, entry: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus file for {target}");
    for path in files {
        let data = fs::read(&path).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| entry(&data));
        assert!(outcome.is_ok(), "{} failed", path.display());
    }
}
