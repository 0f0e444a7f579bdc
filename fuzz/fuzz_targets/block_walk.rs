//! Fuzz target: arbitrary bytes as one TPACKET_V3 block, walked by the ring
//! and checked against the invariants in [`ringsieve_fuzz::walk_block`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringsieve_fuzz::walk_block(data));
