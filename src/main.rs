//! The `pushwire` command: parses flags into a [`Config`] and runs the server.
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod cli_load;
use pushwire::Config;
use pushwire::server::Server;
use pushwire::trace::{Detail, Filter, TraceOptions};

/// One server, four real-time web transports: interval polling, long polling, Server-Sent Events
/// and WebSocket, over one pub/sub hub — and what each costs on the wire.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve(Box<ServeArgs>),
    /// Print a running server's wire ledger (`GET /stats`) as a table of costs per message.
    Stats {
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Narrow to one channel's hub figures.
        #[arg(long)]
        channel: Option<String>,
        /// Print the JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Measure the comparison table: one workload over poll, long-poll, SSE and WebSocket, with a
    /// forced drop mid-run, checked against the server's ledger.
    Compare(Box<CompareArgs>),
    /// Drive a push server (pushwire or another, through URL templates) with many subscribers.
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
    /// Address to listen on; port 0 picks a free port (the printed line shows it).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Most open client connections; the excess is answered 503.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    max_connections: usize,
    /// Largest message in bytes (publish bodies over it get 413).
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES")]
    max_message_size: usize,
    /// Messages each channel keeps for resuming.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    history_messages: usize,
    /// Payload bytes each channel keeps for resuming.
    #[arg(long, default_value_t = 8 * 1024 * 1024, value_name = "BYTES")]
    history_bytes: usize,
    /// Payload bytes all channels keep together; past it the hub's oldest messages go first
    /// (each channel keeps at least its newest).
    #[arg(long, default_value_t = 256 * 1024 * 1024, value_name = "BYTES")]
    history_total_bytes: usize,
    /// Seconds a client has to send a complete request head (slowloris defence; 408 after).
    #[arg(long, default_value_t = 10.0, value_parser = seconds, value_name = "SECS")]
    head_timeout: f64,
    /// Seconds an idle keep-alive connection stays open.
    #[arg(long, default_value_t = 60.0, value_parser = seconds, value_name = "SECS")]
    idle_timeout: f64,
    /// Seconds a long-poll waits when it gives no timeout= (answered 204 after).
    #[arg(long, default_value_t = 30.0, value_parser = seconds, value_name = "SECS")]
    longpoll_timeout: f64,
    /// Largest timeout= a long-poll may ask for, in seconds.
    #[arg(long, default_value_t = 120.0, value_parser = seconds, value_name = "SECS")]
    longpoll_max_timeout: f64,
    /// Bytes queued for one connection before pipelined requests wait (HTTP) or a stream counts
    /// as a slow consumer.
    #[arg(long, default_value_t = 1024 * 1024, value_name = "BYTES")]
    max_pending_output: usize,
    /// Seconds in-flight responses get to drain on shutdown.
    #[arg(long, default_value_t = 2.0, value_parser = seconds, value_name = "SECS")]
    shutdown_grace: f64,
    /// Seconds an SSE client waits before reconnecting (sent as `retry:`).
    #[arg(long, default_value_t = 3.0, value_parser = seconds, value_name = "SECS")]
    sse_retry: f64,
    /// Seconds between heartbeat comments on an SSE stream (sent whether or not messages flow).
    #[arg(long, default_value_t = 15.0, value_parser = seconds, value_name = "SECS")]
    sse_heartbeat: f64,
    /// Seconds between server pings on a WebSocket.
    #[arg(long, default_value_t = 30.0, value_parser = seconds, value_name = "SECS")]
    ws_ping_interval: f64,
    /// Seconds a WebSocket peer has to answer a ping before it is closed.
    #[arg(long, default_value_t = 30.0, value_parser = seconds, value_name = "SECS")]
    ws_pong_timeout: f64,
    /// Seconds to wait for the peer's Close after sending ours.
    #[arg(long, default_value_t = 5.0, value_parser = seconds, value_name = "SECS")]
    ws_close_timeout: f64,
    /// Do not run the built-in ticker that publishes to the `demo` channel once a second.
    #[arg(long)]
    no_demo: bool,
    /// Print every wire unit on stderr: `line` (one line each, the default), `tree` (field by
    /// field) or `hex` (tree and hex dump).
    #[arg(long, value_name = "MODE", num_args = 0..=1, default_missing_value = "line",
          value_parser = ["line", "tree", "hex"])]
    trace: Option<String>,
    /// Append every wire unit to FILE as JSON Lines.
    #[arg(long, value_name = "FILE")]
    trace_file: Option<std::path::PathBuf>,
    /// Trace only some units: `transport=sse,ws`, `channel=news`, or both.
    #[arg(long, value_name = "SPEC", value_parser = trace_filter)]
    trace_filter: Option<Filter>,
    /// Payload bytes shown per traced unit.
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    trace_preview: usize,
    /// Only accept WebSocket upgrades from this Origin (repeatable; none = any origin).
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
}

fn trace_filter(s: &str) -> Result<Filter, String> {
    Filter::parse(s)
}

fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

impl ServeArgs {
    fn config(&self) -> Config {
        let mut c = Config {
            addr: self.addr,
            max_connections: self.max_connections,
            max_message_size: self.max_message_size,
            max_pending_output: self.max_pending_output,
            head_timeout: Duration::from_secs_f64(self.head_timeout),
            idle_timeout: Duration::from_secs_f64(self.idle_timeout),
            longpoll_timeout: Duration::from_secs_f64(self.longpoll_timeout),
            longpoll_max_timeout: Duration::from_secs_f64(self.longpoll_max_timeout),
            shutdown_grace: Duration::from_secs_f64(self.shutdown_grace),
            sse_retry: Duration::from_secs_f64(self.sse_retry),
            sse_heartbeat: Duration::from_secs_f64(self.sse_heartbeat),
            ws_ping_interval: Duration::from_secs_f64(self.ws_ping_interval),
            ws_pong_timeout: Duration::from_secs_f64(self.ws_pong_timeout),
            ws_close_timeout: Duration::from_secs_f64(self.ws_close_timeout),
            allowed_origins: self.allowed_origins.clone(),
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
        c
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
        Some(Command::Serve(args)) => serve(args.config()),
        Some(Command::Stats { url, channel, json }) => print_stats(&url, channel.as_deref(), json),
        Some(Command::Compare(args)) => compare(&args),
        Some(Command::Load(args)) => cli_load::run(&args),
        None => serve(cli.serve.config()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushwire: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Fetches `/stats` with one plain HTTP/1.1 request and prints it.
fn print_stats(url: &str, channel: Option<&str>, json: bool) -> std::io::Result<()> {
    use std::io::{Error, Read};
    let authority = url
        .strip_prefix("http://")
        .ok_or_else(|| Error::other("only http:// URLs are supported"))?
        .trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let query = channel.map_or(String::new(), |c| format!("?channel={c}"));
    write!(
        stream,
        "GET /stats{query} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let body_start = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Error::other("no HTTP response"))?
        + 4;
    if !response.starts_with(b"HTTP/1.1 200") {
        let status = String::from_utf8_lossy(&response[..body_start.min(response.len())]);
        return Err(Error::other(format!(
            "unexpected answer: {}",
            status.lines().next().unwrap_or("")
        )));
    }
    let stats: serde_json::Value = serde_json::from_slice(&response[body_start..])
        .map_err(|e| Error::other(format!("/stats is not JSON: {e}")))?;
    if json {
        println!("{stats:#}");
    } else {
        print!("{}", pushwire::ledger::report::render_table(&stats));
    }
    Ok(())
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
        print!("{text}");
        if matches!(args.format.as_str(), "table" | "markdown") && values.len() > 1 {
            println!();
        }
        reports.push((v, report));
    }
    if args.format == "json" {
        let json = if reports.len() == 1 {
            serde_json::to_string_pretty(&reports[0].1)
        } else {
            serde_json::to_string_pretty(&reports.iter().map(|(_, r)| r).collect::<Vec<_>>())
        };
        println!("{}", json.map_err(Error::other)?);
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

fn serve(config: Config) -> std::io::Result<()> {
    let server = Server::bind(config)?;
    let handle = server.shutdown_handle();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            handle.shutdown();
        }
    });
    // Tests and tools read this line to learn the port.
    let mut out = std::io::stdout().lock();
    writeln!(out, "pushwire listening on http://{}", server.local_addr())?;
    out.flush()?;
    drop(out);
    server.run()?;
    log::info!("stopped");
    Ok(())
}
