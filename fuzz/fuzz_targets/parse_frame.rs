//! Fuzz target: arbitrary bytes as an Ethernet frame and as network-layer
//! bytes, parsed by `flow` and checked against the invariants in
//! [`flow::fuzzing::parse_everything`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flow::fuzzing::parse_everything(data));
