//! How the event loops of one server reach each other beyond fan-outs (those go through the
//! hub's inboxes, see `app::shared`): a command queue per loop and the waker that interrupts its
//! `poll`. `/stats` and `/drop` ask every loop and wait for the answers; trace records go to the
//! loops that have `/trace` readers.
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use mio::Waker;

use crate::ledger::{Ledger, Transport};
use crate::trace::Record;

/// What one loop asks of another.
pub(super) enum Command {
    /// A copy of the loop's ledger, for `/stats` to sum.
    Ledger(Sender<Ledger>),
    /// Close the loop's connections of this transport (the demo's drop buttons); answer how many.
    Drop(Transport, Sender<usize>),
    /// A trace record cut on another loop, for this loop's `/trace` readers.
    Trace(Record),
    /// The set of trace sinks changed somewhere: attach or remove dissectors as the tracer says.
    TracingChanged,
}

/// Every loop's command queue and waker, by loop index.
pub(super) struct Peers {
    commands: Vec<Sender<Command>>,
    wakers: Vec<Arc<Waker>>,
}

impl Peers {
    /// The peers of `wakers.len()` loops, and each loop's end of its command queue.
    pub(super) fn new(wakers: Vec<Arc<Waker>>) -> (Arc<Peers>, Vec<Receiver<Command>>) {
        let (commands, receivers) = wakers.iter().map(|_| channel()).unzip();
        (Arc::new(Peers { commands, wakers }), receivers)
    }

    /// How many loops there are.
    pub(super) fn len(&self) -> usize {
        self.wakers.len()
    }

    /// Queues `command` for loop `to` and wakes it. False when that loop has stopped.
    pub(super) fn send(&self, to: usize, command: Command) -> bool {
        if self.commands[to].send(command).is_err() {
            return false;
        }
        self.wake(to);
        true
    }

    /// Interrupts loop `to`'s `poll`.
    pub(super) fn wake(&self, to: usize) {
        // A failed wake is a loop that has stopped: nothing left to tell it.
        let _ = self.wakers[to].wake();
    }

    /// Wakes every loop whose bit is set in `mask`.
    pub(super) fn wake_all_in(&self, mask: u64) {
        for to in 0..self.wakers.len() {
            if mask & (1 << to) != 0 {
                self.wake(to);
            }
        }
    }
}
