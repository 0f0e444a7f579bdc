//! The hold queue of one [`crate::Sieve`]: the copies it holds, by the time
//! their hold ends (timestamp + window) and then by arrival, earliest first.
//!
//! A capture thread reads each of its rings in increasing timestamps, so
//! release times arrive nearly in order: a FIFO ([`VecDeque`]) takes them in
//! O(1) and hands them back in O(1), where a binary heap of 140 k copies
//! cost a cache miss per level (12 % of the engine's time in `pop`, 1 M
//! flows). A key that arrives out of order (a thread that reads several
//! rings, block by block) is put in its place when that place is among the
//! last [`BACK_SEARCH`] keys, and otherwise goes to a binary heap beside the
//! FIFO; [`HoldQueue::pop`] takes the smaller of the two heads. Keys are
//! unique (the arrival number), so the order handed back is exactly the
//! order of one binary heap of every key: releases do not depend on which
//! side a key went to.
//!
//! [`OrderedQueue`] is the same queue for any key type with a total order of
//! unique keys, for other nearly sorted streams (`ringsieve read`'s output
//! order).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Keys searched from the back of the FIFO for the place of a key that
/// arrived out of order, before it goes to the heap instead.
pub const BACK_SEARCH: usize = 32;

/// One held copy's place in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HoldKey {
    /// When its hold ends: its timestamp plus the window, nanoseconds.
    pub after: u64,
    /// Its arrival number (unique): among equal `after`, the first held
    /// ends first.
    pub order: u64,
    /// Where the copy is kept.
    pub index: usize,
}

/// The hold queue: [`HoldKey`]s in release order.
pub type HoldQueue = OrderedQueue<HoldKey>;

/// Unique keys handed back smallest first, in O(1) for keys pushed nearly in
/// order; see the module docs.
#[derive(Debug)]
pub struct OrderedQueue<K> {
    in_order: VecDeque<K>,
    late: BinaryHeap<Reverse<K>>,
}

impl<K: Ord> Default for OrderedQueue<K> {
    fn default() -> Self {
        Self {
            in_order: VecDeque::new(),
            late: BinaryHeap::new(),
        }
    }
}

impl<K: Ord + Copy> OrderedQueue<K> {
    /// Keys queued.
    pub fn len(&self) -> usize {
        self.in_order.len() + self.late.len()
    }

    /// Whether no key is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `key`.
    pub fn push(&mut self, key: K) {
        let len = self.in_order.len();
        if self.in_order.back().is_none_or(|last| *last < key) {
            self.in_order.push_back(key);
            return;
        }
        // Out of order: its place among the last keys, if it is there.
        let floor = len.saturating_sub(BACK_SEARCH);
        let mut place = len - 1;
        while place > floor && self.in_order[place - 1] > key {
            place -= 1;
        }
        if place > 0 && self.in_order[place - 1] > key {
            // Earlier than every key searched (and not at the front).
            self.late.push(Reverse(key));
        } else {
            self.in_order.insert(place, key);
        }
    }

    /// The earliest key.
    pub fn peek(&self) -> Option<K> {
        match (self.in_order.front(), self.late.peek()) {
            (Some(a), Some(Reverse(b))) => Some(*a.min(b)),
            (Some(a), None) => Some(*a),
            (None, Some(Reverse(b))) => Some(*b),
            (None, None) => None,
        }
    }

    /// Takes the earliest key.
    pub fn pop(&mut self) -> Option<K> {
        let from_heap = match (self.in_order.front(), self.late.peek()) {
            (Some(a), Some(Reverse(b))) => b < a,
            (None, Some(_)) => true,
            _ => false,
        };
        if from_heap {
            self.late.pop().map(|Reverse(key)| key)
        } else {
            self.in_order.pop_front()
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any pushes and pops: the same keys in the same order as one
        /// binary heap of them.
        #[test]
        fn pops_in_the_order_of_one_binary_heap(
            steps in proptest::collection::vec((0u64..200, 0u8..4), 1..400),
        ) {
            let mut queue: HoldQueue = OrderedQueue::default();
            let mut heap = BinaryHeap::new();
            let mut clock = 0;
            for (order, &(jump, pops)) in steps.iter().enumerate() {
                // Mostly forward, sometimes far back.
                clock = if jump < 150 { clock + jump } else { clock.saturating_sub(jump * 3) };
                let key = HoldKey { after: clock, order: order as u64, index: order };
                queue.push(key);
                heap.push(Reverse(key));
                prop_assert_eq!(queue.peek(), heap.peek().map(|r| r.0));
                for _ in 0..pops {
                    prop_assert_eq!(queue.pop(), heap.pop().map(|r| r.0));
                }
                prop_assert_eq!(queue.len(), heap.len());
            }
            while let Some(Reverse(key)) = heap.pop() {
                prop_assert_eq!(queue.pop(), Some(key));
            }
            prop_assert!(queue.is_empty());
        }
    }
}
