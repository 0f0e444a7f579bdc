//! Capture outputs of ringsieve: where captured packets go once the pipeline
//! has decided to keep them. Today that is one format, pcapng, written by
//! [`PcapngWriter`] from [`PacketRecord`]s; it does not capture, parse or
//! decide anything.
//!
//! # Why pcap-file writes only the headers
//!
//! The workspace prefers a well-kept crate to hand-written code, so
//! [pcap-file](https://docs.rs/pcap-file/2) 2.0 writes the Section Header
//! Block and the Interface Description Blocks: they are written once per file
//! and once per interface, where its allocations and double encoding do not
//! matter. We write the Enhanced Packet Blocks, the hot path, by hand, because
//! pcap-file 2.0 costs too much there: its `EnhancedPacketBlock` carries its
//! options in a `Vec`, so the `epb_flags` every packet needs is one heap
//! allocation per packet; it encodes every block twice (once into
//! `io::sink()` to learn the length); and it issues one small `write` per
//! field. It also takes a `Duration` and always writes nanoseconds whatever
//! `if_tsresol` says, which is right only because we always declare
//! `if_tsresol = 9`. A VLAN tag that the kernel moved out of the frame would
//! further need the frame copied into a buffer to be put back, where our
//! writer sends the pieces around the tag straight to the output. The
//! benchmark `benches/pcapng_write.rs` measures both writers against a plain
//! copy of the same bytes: under callgrind, a 64-byte packet costs 571
//! instructions with pcap-file, 183 with ours and 36 to copy; a 1514-byte one
//! 755, 344 and 197 (wall time agrees: pcap-file is about 4x slower than ours
//! at 64 bytes, 1.6x at 1514). The unit tests read every file back with
//! pcap-file's reader, and `tests/tshark.rs` with Wireshark's own tools.

#![deny(missing_docs)]

pub mod pcapng;

pub use pcapng::{InterfaceId, PacketEncoder, PacketRecord, PcapngWriter, LINKTYPE_ETHERNET, VLAN_TAG_LEN};
