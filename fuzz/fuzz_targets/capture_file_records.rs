//! Fuzz target: arbitrary bytes as the records of a capture file whose valid
//! pcap or pcapng header (format, byte order, interfaces, link types) the
//! first byte chooses, so mutations go to records and blocks rather than
//! magic numbers; checked as in
//! [`ringsieve_fuzz::capture::read_framed_capture`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringsieve_fuzz::capture::read_framed_capture(data));
