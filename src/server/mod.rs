//! The only code that knows `mio`, sockets and the clock: the listeners, the connection tables,
//! readiness, timers and shutdown (the driver), and the application (`crate::app`) that the
//! driver hands each connection to. The driver moves bytes and time between sockets and the
//! sans-IO cores and nothing else; what the bytes mean is decided by the cores and the routes.
//!
//! `--threads N` event loops (`event_loop.rs`), one per thread, each with its own listener on the
//! same port (`SO_REUSEPORT`: the kernel spreads new connections over the loops, so no loop hands
//! sockets to another and an accept costs no wake-up), its own connection table, ledger and
//! tracer readers. They share the hub (one lock per publish, subscription or history read, never
//! per stream delivery) and reach each other through inboxes and `mio::Waker`s: a publish is
//! handed to each loop that has subscribers of its channel (`app::shared`), and `/stats`, `/drop`
//! and `/trace` ask or tell every loop (`peers.rs`).
//!
//! Readiness is edge-triggered, so each connection remembers whether it is still readable /
//! writable and is driven until `WouldBlock`; its mio interest is derived after every step from
//! what its session wants (write interest only while output waits), as in rustls's
//! `tlsserver-mio` example.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod accept;
mod connection;
mod event_loop;
mod fanout;
mod fdlimit;
mod peers;
mod timers;
mod trace;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Interest, Poll, Token, Waker};

use crate::app::{App, MAX_LOOPS, Shared};
use crate::config::Config;
use event_loop::EventLoop;
use peers::Peers;

/// The listening socket's token.
const LISTENER: Token = Token(usize::MAX - 1);
/// The token of the waker that interrupts a loop's `poll`: another loop has work for it, or
/// shutdown was asked.
const WAKER: Token = Token(usize::MAX - 2);
/// The token of the socket pair that signal handlers write to (`Server::stop_on_signals`).
const SIGNALS: Token = Token(usize::MAX - 3);

/// Connections past `max_connections` that are still tracked while they get their 503 and a
/// lingering close; past this many more, the 503 is written and the socket dropped at once.
const REFUSAL_ALLOWANCE: usize = 64;

/// How long to wait before accepting again after running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connections the kernel may queue before the loop accepts them. mio and std listen with 128; a
/// burst of clients larger than that (thousands of long-polls reconnecting at once) would see SYNs
/// dropped and retried a second later. The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// Binds a non-blocking listener with [`LISTEN_BACKLOG`] (socket2 exposes the backlog that mio's
/// `bind` fixes), sharing its port with the other loops' listeners when `shared_port`.
fn bind_listener(addr: SocketAddr, shared_port: bool) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if shared_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// The address the loops' listeners will share: `addr` with port 0 replaced by a free port, or
/// an error when something else listens there already. `SO_REUSEPORT` lets any socket of the same
/// user that sets it join a port; a second server started on the same port would silently share
/// the connections instead of failing. So a plain socket binds first (no `SO_REUSEPORT`, which
/// conflicts with every socket on the port), and is let go just before the loops bind.
fn claim_port(addr: SocketAddr) -> io::Result<SocketAddr> {
    use socket2::{Domain, Socket, Type};
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into())?;
    probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("the listening address is not an IP address"))
}

/// The loops `--threads 0` asks for: one per core this process may run on.
fn threads_wanted(configured: usize) -> usize {
    let n = if configured == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        configured
    };
    n.clamp(1, MAX_LOOPS)
}

/// Asks a running server to shut down gracefully, from any thread.
#[derive(Clone)]
pub struct ShutdownHandle {
    requested: Arc<AtomicBool>,
    wakers: Arc<[Arc<Waker>]>,
}

impl ShutdownHandle {
    /// Stops accepting, gives in-flight responses up to `shutdown_grace` to drain, then closes
    /// every connection and makes [`Server::run`] return.
    pub fn shutdown(&self) {
        self.requested.store(true, Ordering::SeqCst);
        for waker in self.wakers.iter() {
            // If the wake fails that loop is already gone.
            let _ = waker.wake();
        }
    }
}

/// The server: its event loops, each with a listener on the same address, run by
/// [`Server::run`] (the first on the calling thread, the others on threads of their own).
pub struct Server {
    loops: Vec<EventLoop>,
    local_addr: SocketAddr,
    shutdown: ShutdownHandle,
}

impl Server {
    /// Binds the listeners; the server runs when [`Server::run`] is called.
    pub fn bind(mut config: Config) -> io::Result<Server> {
        if let Some(nofile) = fdlimit::raise_nofile() {
            let most = crate::config::max_connections_within(nofile, REFUSAL_ALLOWANCE);
            if config.max_connections > most {
                log::warn!(
                    "--max-connections {} is more than the open-file limit ({nofile}, the hard \
                     RLIMIT_NOFILE) can hold; serving at most {most} connections",
                    config.max_connections
                );
                config.max_connections = most;
            }
        }
        let threads = threads_wanted(config.threads);
        let shared_port = threads > 1;
        if threads > 1 {
            fdlimit::share_one_malloc_arena();
        }
        let addr = if shared_port {
            claim_port(config.addr)?
        } else {
            config.addr
        };
        let first = bind_listener(addr, shared_port)?;
        let local_addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..threads {
            listeners.push(bind_listener(local_addr, shared_port)?);
        }
        let mut polls = Vec::with_capacity(threads);
        let mut wakers = Vec::with_capacity(threads);
        for listener in &mut listeners {
            let poll = Poll::new()?;
            poll.registry()
                .register(listener, LISTENER, Interest::READABLE)?;
            wakers.push(Arc::new(Waker::new(poll.registry(), WAKER)?));
            polls.push(poll);
        }
        let (peers, commands) = Peers::new(wakers.clone());
        let (shared, inboxes) = Shared::new(threads, config.history, config.max_fanout_backlog);
        let requested = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut loops = Vec::with_capacity(threads);
        let parts = polls.into_iter().zip(listeners).zip(commands).zip(inboxes);
        for (index, (((poll, listener), commands), inbox)) in parts.enumerate() {
            let tracer = crate::app::Tracer::new(&config.trace)?;
            let mut app = App::new(config.clone(), tracer, started, Arc::clone(&shared), index);
            app.date.refresh(std::time::SystemTime::now());
            loops.push(EventLoop::new(
                index,
                poll,
                listener,
                app,
                Arc::clone(&peers),
                inbox,
                commands,
                Arc::clone(&requested),
            ));
        }
        Ok(Server {
            loops,
            local_addr,
            shutdown: ShutdownHandle {
                requested,
                wakers: wakers.into(),
            },
        })
    }

    /// The address actually bound (the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many event loops serve.
    pub fn threads(&self) -> usize {
        self.loops.len()
    }

    /// Shuts the server down gracefully, as [`ShutdownHandle::shutdown`] does, on any of
    /// `signals` (SIGINT and SIGTERM for the command line).
    ///
    /// The handlers write a byte to a socket pair that the first loop polls, so no thread sits
    /// waiting for signals. With one loop the process then has one thread, and the kernel looks
    /// a socket up for each `send` without taking a reference to it; with a second thread every
    /// call pays an atomic increment and decrement (`fdget`/`fput` in a profile: about 1 % of a
    /// WebSocket delivery).
    pub fn stop_on_signals(&mut self, signals: &[i32]) -> io::Result<()> {
        let (read_end, write_end) = std::os::unix::net::UnixStream::pair()?;
        read_end.set_nonblocking(true)?;
        let first = self
            .loops
            .first_mut()
            .ok_or_else(|| io::Error::other("the server has no event loop"))?;
        // The read end is watched before any handler can write to it: a failure here leaves the
        // signals' default action (ending the process) in place rather than swallowing them.
        first.watch_signals(
            mio::net::UnixStream::from_std(read_end),
            self.shutdown.clone(),
        )?;
        for &signal in signals {
            signal_hook::low_level::pipe::register(signal, write_end.try_clone()?)?;
        }
        Ok(())
    }

    /// A handle that can stop this server from another thread (a signal handler, a test).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Serves until shutdown is requested and every connection has finished (or the grace period
    /// has passed): the first loop on this thread, the others on threads of their own.
    pub fn run(self) -> io::Result<()> {
        let mut loops = self.loops.into_iter();
        let Some(first) = loops.next() else {
            return Ok(());
        };
        let mut others = Vec::new();
        for event_loop in loops {
            let name = format!("pushwire-loop-{}", event_loop.index);
            let shutdown = self.shutdown.clone();
            others.push(std::thread::Builder::new().name(name).spawn(move || {
                // A loop that fails or panics takes the server down with it: the others must not
                // serve on with its connections still counted and its subscriptions in the hub.
                let run = std::panic::AssertUnwindSafe(|| event_loop.run());
                let result = std::panic::catch_unwind(run)
                    .unwrap_or_else(|_| Err(io::Error::other("an event loop panicked")));
                if result.is_err() {
                    shutdown.shutdown();
                }
                result
            })?);
        }
        let mut result = first.run();
        if result.is_err() {
            // The others must not serve on without the first: stop them too.
            self.shutdown.shutdown();
        }
        for other in others {
            let outcome = other
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("an event loop panicked")));
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }
}
/// Whether a peer connected from this machine: 127.0.0.0/8, `::1`, or either as an IPv4-mapped
/// IPv6 address (a dual-stack listener sees `::ffff:127.0.0.1`).
fn is_loopback_peer(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(ip) => ip.is_loopback(),
        std::net::IpAddr::V6(ip) => ip
            .to_ipv4_mapped()
            .map_or(ip.is_loopback(), |v4| v4.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_peer;

    #[test]
    fn loopback_peers_are_127_8_and_1_in_either_family() {
        for (addr, loopback) in [
            ("127.0.0.1", true),
            ("127.0.0.9", true),
            ("::1", true),
            ("::ffff:127.0.0.2", true),
            ("192.168.1.7", false),
            ("10.0.0.1", false),
            ("::ffff:10.0.0.1", false),
            ("2001:db8::1", false),
            ("0.0.0.0", false),
        ] {
            assert_eq!(is_loopback_peer(addr.parse().unwrap()), loopback, "{addr}");
        }
    }
}
