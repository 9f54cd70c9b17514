//! `pushwire load`: flags and output (the generator is `pushwire::client::load`).
use std::io::Error;
use std::time::Duration;

use clap::Args;
use pushwire::client::Kind;
use pushwire::client::load::{self, LoadConfig};

#[derive(Args, Clone)]
pub struct LoadArgs {
    /// Publish URL template.
    #[arg(long, default_value = "http://127.0.0.1:8080/pub/{channel}")]
    pub_url: String,
    /// Subscriber URL templates, `KIND=URL` with KIND one of ws, sse, longpoll, poll (repeatable),
    /// e.g. `ws=ws://127.0.0.1:8080/ws/{channel}?since=0`.
    #[arg(long = "sub-url", value_name = "KIND=URL", required = true)]
    sub_urls: Vec<String>,
    /// Subscribers per transport.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Channels the subscribers spread over.
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Channel names are PREFIX0, PREFIX1, … (default: `load-PID-TIME-`, new channels each run).
    #[arg(long)]
    channel_prefix: Option<String>,
    /// Messages per second on each channel (0: connections only, for idle cost).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Payload bytes per message (at least the sequence number and send time).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds to wait for stragglers after the last publish.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
    /// Seconds between polls (poll subscribers).
    #[arg(long, default_value_t = 0.5)]
    poll_interval: f64,
    /// Source addresses to spread connections over: `127.0.0.1-127.0.0.8` or a list.
    #[arg(long)]
    source_ips: Option<String>,
    /// Subscriber threads, one mio loop each.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The server's process id: its CPU and RSS over the run are reported.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &LoadArgs) -> std::io::Result<()> {
    let mut sub_urls = Vec::new();
    for spec in &args.sub_urls {
        let (kind, url) = spec
            .split_once('=')
            .ok_or_else(|| Error::other(format!("{spec}: expected KIND=URL")))?;
        let kind = Kind::from_name(kind)
            .ok_or_else(|| Error::other(format!("{kind}: kinds are ws, sse, longpoll, poll")))?;
        sub_urls.push((kind, url.to_string()));
    }
    let cfg = LoadConfig {
        pub_url: args.pub_url.clone(),
        sub_urls,
        subscribers: args.subscribers,
        channels: args.channels.max(1),
        channel_prefix: args.channel_prefix.clone().unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            format!("load-{}-{t}-", std::process::id())
        }),
        rate: args.rate.max(0.0),
        payload: args.payload,
        duration: Duration::from_secs_f64(args.duration.max(0.0)),
        source_ips: match &args.source_ips {
            Some(spec) => load::parse_source_ips(spec).map_err(Error::other)?,
            None => Vec::new(),
        },
        threads: args.threads.max(1),
        server_pid: args.server_pid,
        poll_interval: Duration::from_secs_f64(args.poll_interval.max(0.001)),
        drain: Duration::from_secs_f64(args.drain.max(0.0)),
    };
    let bar = indicatif::ProgressBar::new_spinner();
    let report = load::run(&cfg, &|msg| bar.set_message(msg.to_string())).map_err(Error::other)?;
    bar.finish_and_clear();
    let text = if args.json {
        serde_json::to_string_pretty(&report).map_err(Error::other)? + "\n"
    } else {
        load::table(&report)
    };
    crate::write_out(&text).map_err(Error::other)
}
