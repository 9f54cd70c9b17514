//! The `pushwire` command: parses flags into a [`Config`] and runs the server.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod cli_load;
mod cli_stats;
use pushwire::Config;
use pushwire::server::Server;
use pushwire::trace::{Detail, Filter, TraceOptions};

/// The command line. Help texts are wrapped by hand (`verbatim_doc_comment`) to fit 100 columns:
/// clap wraps only with its `wrap_help` feature, which would make the output depend on the
/// terminal. README.md shows `--help` as printed, and tests/cli.rs checks that it still matches.
#[derive(Parser)]
#[command(
    version,
    about = "One server, four real-time web transports (interval polling, long polling,\n\
             Server-Sent Events and WebSocket) over one pub/sub hub, and what each costs on the wire",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default when no command is given)
    Serve(Box<ServeArgs>),
    /// Print a running server's wire ledger (`GET /stats`) as a table of costs per message
    Stats {
        /// The server's base URL or its /stats URL
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Also show this channel's figures: last id, messages and bytes
        /// held, subscribers per transport
        #[arg(verbatim_doc_comment, long)]
        channel: Option<String>,
        /// Print the JSON instead of the table
        #[arg(long)]
        json: bool,
    },
    /// Measure the four transports on one workload, with a drop mid-run
    ///
    /// One workload over poll, long-poll, SSE and WebSocket, with a forced drop mid-run, checked
    /// against the server's ledger.
    Compare(Box<CompareArgs>),
    /// Drive a push server (pushwire or another) with many subscribers
    Load(Box<cli_load::LoadArgs>),
}

#[derive(Args, Clone)]
struct CompareArgs {
    /// A running pushwire to measure; without it one is started in this process on a free port.
    #[arg(long)]
    url: Option<String>,
    /// Subscribers per transport.
    #[arg(long, default_value_t = 4)]
    subscribers: usize,
    /// Messages published (the drop comes after half of them).
    #[arg(long, default_value_t = 200)]
    messages: u64,
    /// Messages per second; a list (`1,10,100`) sweeps.
    #[arg(long, default_value = "20", value_delimiter = ',')]
    rate: Vec<f64>,
    /// Payload bytes per message; a list (`16,256,4096`) sweeps.
    #[arg(long, default_value = "64", value_delimiter = ',')]
    payload: Vec<usize>,
    /// Seconds between polls.
    #[arg(long, default_value_t = 0.5, value_parser = seconds)]
    poll_interval: f64,
    /// Output: `table`, `markdown`, `json` or `csv`.
    #[arg(long, default_value = "table", value_parser = ["table", "markdown", "json", "csv"])]
    format: String,
    /// Also write an SVG chart to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<std::path::PathBuf>,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on, host:port (host names are resolved);
    /// port 0 picks a free port
    #[arg(verbatim_doc_comment, long, default_value = "127.0.0.1:8080", value_parser = listen_addr)]
    addr: SocketAddr,
    /// Event loops, each on a thread of its own with its own
    /// connections (the kernel spreads new connections over them);
    /// 0 = one per core
    #[arg(verbatim_doc_comment, long, default_value_t = 0, value_name = "N")]
    threads: usize,
    /// Most open client connections (lowered to what the open-file
    /// limit holds); the excess is answered 503
    #[arg(verbatim_doc_comment, long, default_value_t = 10_000, value_name = "N")]
    max_connections: usize,
    /// Largest message in bytes: a publish body over it gets 413,
    /// a WebSocket message 1009
    #[arg(verbatim_doc_comment, long, default_value_t = 64 * 1024, value_name = "BYTES")]
    max_message_size: usize,
    /// Messages kept per channel for resuming
    #[arg(verbatim_doc_comment, long, default_value_t = 1024, value_name = "N")]
    history_messages: usize,
    /// Payload bytes kept per channel for resuming
    #[arg(verbatim_doc_comment, long, default_value_t = 8 * 1024 * 1024, value_name = "BYTES")]
    history_bytes: usize,
    /// Bytes of memory all channels and held messages may take
    /// (payload and bookkeeping); past it the hub's oldest messages
    /// go first, each channel keeps its newest, and a publish that
    /// does not fit beside them gets 503
    #[arg(verbatim_doc_comment, long, default_value_t = 256 * 1024 * 1024, value_name = "BYTES")]
    history_total_bytes: usize,
    /// Most channels; a publish that would create one more
    /// gets 503
    #[arg(
        verbatim_doc_comment,
        long,
        default_value_t = 100_000,
        value_name = "N"
    )]
    max_channels: usize,
    /// Seconds a message is held for resuming; then it goes (the
    /// newest too) and a channel with nothing held and no
    /// subscriber is forgotten
    #[arg(verbatim_doc_comment, long, default_value_t = 3600.0, value_parser = seconds,
          value_name = "SECS")]
    message_ttl: f64,
    /// Seconds a client has to send a complete request head
    /// (slowloris defence; 408 after)
    #[arg(verbatim_doc_comment, long, default_value_t = 10.0, value_parser = seconds,
          value_name = "SECS")]
    head_timeout: f64,
    /// Seconds an idle keep-alive connection stays open
    #[arg(verbatim_doc_comment, long, default_value_t = 60.0, value_parser = seconds,
          value_name = "SECS")]
    idle_timeout: f64,
    /// Seconds a long-poll without timeout= waits before its 204;
    /// at most --longpoll-max-timeout
    #[arg(verbatim_doc_comment, long, default_value_t = 30.0, value_parser = seconds,
          value_name = "SECS")]
    longpoll_timeout: f64,
    /// Largest timeout= a long-poll may ask for, in seconds
    /// (a larger one is clamped to it)
    #[arg(verbatim_doc_comment, long, default_value_t = 120.0, value_parser = seconds,
          value_name = "SECS")]
    longpoll_max_timeout: f64,
    /// Memory queued for one connection, bytes and bookkeeping of
    /// each unit, before its pipelined requests wait (HTTP) or it
    /// counts as a slow consumer (streams)
    #[arg(verbatim_doc_comment, long, default_value_t = 1024 * 1024, value_name = "BYTES")]
    max_pending_output: usize,
    /// Bytes of messages queued for one event loop to fan out
    /// (subscriber lists, payloads) past which a publish
    /// reaching its subscribers is refused (503)
    #[arg(verbatim_doc_comment, long, default_value_t = 64 * 1024 * 1024, value_name = "BYTES")]
    max_fanout_backlog: usize,
    /// Seconds a subscriber just written to waits before its next
    /// write, and a long-poll just answered before its next answer,
    /// so messages published meanwhile share one write (one answer);
    /// 0 writes each message at once
    #[arg(verbatim_doc_comment, long, default_value_t = 0.002, value_parser = seconds_or_zero,
          value_name = "SECS")]
    write_coalesce: f64,
    /// Seconds in-flight responses may drain on shutdown
    #[arg(verbatim_doc_comment, long, default_value_t = 2.0, value_parser = seconds,
          value_name = "SECS")]
    shutdown_grace: f64,
    /// Seconds an SSE client waits before reconnecting
    /// (sent as `retry:`)
    #[arg(verbatim_doc_comment, long, default_value_t = 3.0, value_parser = seconds,
          value_name = "SECS")]
    sse_retry: f64,
    /// Seconds between heartbeat comments on an SSE stream
    /// (sent whether or not messages flow)
    #[arg(verbatim_doc_comment, long, default_value_t = 15.0, value_parser = seconds,
          value_name = "SECS")]
    sse_heartbeat: f64,
    /// Seconds between server pings on a WebSocket
    #[arg(verbatim_doc_comment, long, default_value_t = 30.0, value_parser = seconds,
          value_name = "SECS")]
    ws_ping_interval: f64,
    /// Seconds a WebSocket peer has to answer a ping
    /// (closed with 1011 after)
    #[arg(verbatim_doc_comment, long, default_value_t = 30.0, value_parser = seconds,
          value_name = "SECS")]
    ws_pong_timeout: f64,
    /// Seconds to wait for the peer's Close after ours
    #[arg(verbatim_doc_comment, long, default_value_t = 5.0, value_parser = seconds,
          value_name = "SECS")]
    ws_close_timeout: f64,
    /// Accept permessage-deflate when a WebSocket client offers it
    /// (`on` or `off`)
    #[arg(verbatim_doc_comment, long, value_name = "ON|OFF", default_value = "on",
          value_parser = ["on", "off"], hide_possible_values = true)]
    ws_deflate: String,
    /// Do not run the built-in ticker that publishes to the `demo`
    /// channel once a second
    #[arg(verbatim_doc_comment, long)]
    no_demo: bool,
    /// Print every wire unit on stderr: `line` (one line each, the
    /// default), `tree` (field by field) or `hex` (tree and hex dump)
    #[arg(verbatim_doc_comment, long, value_name = "MODE", num_args = 0..=1,
          default_missing_value = "line", value_parser = ["line", "tree", "hex"],
          hide_possible_values = true)]
    trace: Option<String>,
    /// Append every wire unit to FILE as JSON Lines
    #[arg(verbatim_doc_comment, long, value_name = "FILE")]
    trace_file: Option<std::path::PathBuf>,
    /// Trace only some units: `transport=sse,ws`, `channel=news`,
    /// or both
    #[arg(verbatim_doc_comment, long, value_name = "SPEC", value_parser = trace_filter)]
    trace_filter: Option<Filter>,
    /// Payload bytes shown per traced unit
    #[arg(verbatim_doc_comment, long, value_name = "BYTES", default_value_t = 64)]
    trace_preview: usize,
    /// Another origin that may publish, drop and open WebSockets
    /// (repeatable); an upgrade from an Origin neither this
    /// server's nor listed gets 403 (one without Origin is accepted)
    #[arg(verbatim_doc_comment, long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// Answer /trace and /drop to any client, not only to
    /// loopback ones
    #[arg(verbatim_doc_comment, long)]
    admin: bool,
}

/// `--addr`: an IP address and port, or a host name and port, resolved here (its first IPv4
/// address, else its first).
fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {s:?} ({e}); give host:port, e.g. 127.0.0.1:8080"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

fn trace_filter(s: &str) -> Result<Filter, String> {
    Filter::parse(s)
}

fn seconds_or_zero(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds from 0 to 1")),
    }
}

fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

impl ServeArgs {
    /// The configuration, or why these flags can not run a server.
    fn config(&self) -> Result<Config, String> {
        let mut c = Config {
            addr: self.addr,
            threads: self.threads,
            max_connections: self.max_connections,
            max_message_size: self.max_message_size,
            max_pending_output: self.max_pending_output,
            max_fanout_backlog: self.max_fanout_backlog,
            head_timeout: Duration::from_secs_f64(self.head_timeout),
            idle_timeout: Duration::from_secs_f64(self.idle_timeout),
            longpoll_timeout: Duration::from_secs_f64(self.longpoll_timeout),
            longpoll_max_timeout: Duration::from_secs_f64(self.longpoll_max_timeout),
            shutdown_grace: Duration::from_secs_f64(self.shutdown_grace),
            write_coalesce: Duration::from_secs_f64(self.write_coalesce),
            sse_retry: Duration::from_secs_f64(self.sse_retry),
            sse_heartbeat: Duration::from_secs_f64(self.sse_heartbeat),
            ws_ping_interval: Duration::from_secs_f64(self.ws_ping_interval),
            ws_pong_timeout: Duration::from_secs_f64(self.ws_pong_timeout),
            ws_close_timeout: Duration::from_secs_f64(self.ws_close_timeout),
            ws_deflate: self.ws_deflate == "on",
            allowed_origins: self.allowed_origins.clone(),
            admin: self.admin,
            demo_channel: (!self.no_demo).then(|| "demo".to_string()),
            trace: TraceOptions {
                print: self.trace.as_deref().map(|mode| match mode {
                    "tree" => Detail::Tree,
                    "hex" => Detail::Hex,
                    _ => Detail::Line,
                }),
                file: self.trace_file.clone(),
                filter: self.trace_filter.clone().unwrap_or_default(),
                preview: self.trace_preview,
            },
            ..Config::default()
        };
        c.history.max_messages = self.history_messages.max(1);
        c.history.max_bytes = self.history_bytes;
        c.history.max_total_bytes = self.history_total_bytes;
        c.history.max_channels = self.max_channels;
        c.history.message_ttl = Duration::from_secs_f64(self.message_ttl);
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The tools print reports on stdout; an embedded server only speaks up when something is wrong.
    let level = match cli.command {
        Some(Command::Compare(_) | Command::Load(_)) => "warn",
        _ => "info",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp_millis()
        .init();
    let result = match cli.command {
        Some(Command::Serve(args)) => args.config().and_then(serve),
        Some(Command::Stats { url, channel, json }) => {
            cli_stats::print_stats(&url, channel.as_deref(), json)
        }
        Some(Command::Compare(args)) => compare(&args).map_err(|e| e.to_string()),
        Some(Command::Load(args)) => cli_load::run(&args).map_err(|e| e.to_string()),
        None => cli.serve.config().and_then(serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Nothing more to do when stderr is gone too.
            let _ = writeln!(std::io::stderr(), "pushwire: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes a command's report on stdout. A reader that went away (`pushwire stats | head -c 10`)
/// ends the command quietly with status 0: it read what it wanted. Rust ignores SIGPIPE, so the
/// write fails with `EPIPE` instead, which `print!` would turn into a panic.
fn write_out(text: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(format!("cannot write to stdout: {e}")),
    }
}

fn compare(args: &CompareArgs) -> std::io::Result<()> {
    use pushwire::client::{compare, report, svg};
    use std::io::Error;
    if args.rate.len() > 1 && args.payload.len() > 1 {
        return Err(Error::other("sweep --rate or --payload, not both"));
    }
    let (axis, values): (&str, Vec<f64>) = if args.rate.len() > 1 {
        ("rate, messages/s", args.rate.clone())
    } else {
        (
            "payload, bytes",
            args.payload.iter().map(|&p| p as f64).collect(),
        )
    };
    let mut reports = Vec::new();
    for &v in &values {
        let workload = compare::Workload {
            url: args.url.clone(),
            subscribers: args.subscribers.max(1),
            messages: args.messages.max(2),
            rate: if args.rate.len() > 1 { v } else { args.rate[0] },
            payload: if args.rate.len() > 1 {
                args.payload[0]
            } else {
                v as usize
            },
            poll_interval: Duration::from_secs_f64(args.poll_interval),
        };
        let bar = indicatif::ProgressBar::new(workload.messages);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let report = compare::run(&workload, &|n, stage| {
            bar.set_position(n);
            bar.set_message(stage.to_string());
        })
        .map_err(Error::other)?;
        bar.finish_and_clear();
        let text = match args.format.as_str() {
            "markdown" => report::markdown(&report),
            "csv" if !reports.is_empty() => report::csv(&report)
                .lines()
                .skip(1)
                .map(|l| format!("{l}\n"))
                .collect(),
            "csv" => report::csv(&report),
            "json" => String::new(),
            _ => report::table(&report),
        };
        write_out(&text).map_err(Error::other)?;
        if matches!(args.format.as_str(), "table" | "markdown") && values.len() > 1 {
            write_out("\n").map_err(Error::other)?;
        }
        reports.push((v, report));
    }
    if args.format == "json" {
        let json = if reports.len() == 1 {
            serde_json::to_string_pretty(&reports[0].1)
        } else {
            serde_json::to_string_pretty(&reports.iter().map(|(_, r)| r).collect::<Vec<_>>())
        };
        write_out(&format!("{}\n", json.map_err(Error::other)?)).map_err(Error::other)?;
    }
    if let Some(path) = &args.svg {
        let chart = if reports.len() == 1 {
            svg::single(&reports[0].1)
        } else {
            svg::sweep(axis, &reports)
        };
        std::fs::write(path, chart)?;
    }
    Ok(())
}

/// The error of a failed start, with what the user can do about it.
fn start_error(addr: SocketAddr, e: std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::AddrInUse => format!(
            "cannot listen on {addr}: the address is already in use (another pushwire?); \
             pick another port with --addr, or --addr 127.0.0.1:0 for any free one"
        ),
        ErrorKind::AddrNotAvailable => {
            format!("cannot listen on {addr}: no interface of this machine has that address ({e})")
        }
        ErrorKind::PermissionDenied => format!(
            "cannot listen on {addr}: permission denied (ports below 1024 need privileges; \
             try --addr 127.0.0.1:8080)"
        ),
        _ => format!("cannot listen on {addr}: {e}"),
    }
}

fn serve(config: Config) -> Result<(), String> {
    // Opened here first so that a bad path is reported as such (the server opens it again).
    if let Some(path) = &config.trace.file {
        std::fs::File::options()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open --trace-file {}: {e}", path.display()))?;
    }
    let addr = config.addr;
    let mut server = Server::bind(config).map_err(|e| start_error(addr, e))?;
    server
        .stop_on_signals(&[signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .map_err(|e| format!("cannot install the signal handlers: {e}"))?;
    // Tests and tools read this line to learn the port.
    let mut out = std::io::stdout().lock();
    writeln!(out, "pushwire listening on http://{}", server.local_addr())
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    drop(out);
    let local = server.local_addr();
    server
        .run()
        .map_err(|e| format!("the server on {local} failed: {e}"))?;
    log::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_may_name_a_host() {
        assert_eq!(
            listen_addr("127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert!(listen_addr("localhost:8080").unwrap().ip().is_loopback());
        assert!(listen_addr("localhost").unwrap_err().contains("host:port"));
    }
}
