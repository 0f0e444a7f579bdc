//! Fuzz target: arbitrary bytes as a pcap or pcapng file, read by
//! `capture_file` to the end or the first error, and checked against the
//! invariants in [`ringsieve_fuzz::capture::read_capture`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringsieve_fuzz::capture::read_capture(data));
