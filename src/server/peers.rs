//! How the event loops of one server reach each other beyond fan-outs (those go through the
//! hub's inboxes, see `app::shared`): a command queue per loop and the waker that interrupts its
//! `poll`. `/stats` and `/drop` ask every loop and wait for the answers; trace records go to the
//! loops that have `/trace` readers.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
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
    /// Whether each loop may be about to sleep in `poll` (set from before it last looked at its
    /// inbox until `poll` returned): only such a loop needs a wake for a fan-out. A busy loop
    /// finds the fan-out when it next looks, and waking it would cost the publisher an `eventfd`
    /// write and the loop one more pass per publish.
    asleep: Vec<AtomicBool>,
}

impl Peers {
    /// The peers of `wakers.len()` loops, and each loop's end of its command queue.
    pub(super) fn new(wakers: Vec<Arc<Waker>>) -> (Arc<Peers>, Vec<Receiver<Command>>) {
        let (commands, receivers) = wakers.iter().map(|_| channel()).unzip();
        let asleep = wakers.iter().map(|_| AtomicBool::new(false)).collect();
        let peers = Peers {
            commands,
            wakers,
            asleep,
        };
        (Arc::new(peers), receivers)
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

    /// Loop `index` is about to look at its inbox one last time and sleep: from now on fan-outs
    /// for it wake it. (The fence pairs with the one in `wake_sleepers_in`: either the loop sees
    /// the fan-out in its inbox, or the publisher sees it asleep and wakes it.)
    pub(super) fn going_to_sleep(&self, index: usize) {
        self.asleep[index].store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Loop `index` is awake again and will look at its inbox before it next sleeps.
    pub(super) fn awake(&self, index: usize) {
        self.asleep[index].store(false, Ordering::SeqCst);
    }

    /// Wakes every loop whose bit is set in `mask` that may be asleep; the caller has already put
    /// their work in their inboxes.
    pub(super) fn wake_sleepers_in(&self, mask: u64) {
        fence(Ordering::SeqCst);
        for to in 0..self.wakers.len() {
            if mask & (1 << to) != 0 && self.asleep[to].load(Ordering::SeqCst) {
                self.wake(to);
            }
        }
    }
}
