//! The one error type of the crate, [`ReadError`]: every variant names the
//! file and, where it applies, the byte offset of the record or block that
//! could not be read, so `ringsieve read` can say exactly where a file went
//! wrong. It is not used for packets whose contents are odd (a cooked header
//! cut short by the snap length, an unknown link type): those are delivered.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why a capture file could not be opened or read further.
///
/// After an error, [`CaptureFile::next_packet`](crate::CaptureFile::next_packet)
/// returns `Ok(None)`: every packet before the offset was already delivered.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// The file does not start with a pcap magic number or a pcapng Section
    /// Header Block, or a later Section Header Block has no valid byte-order
    /// mark.
    NotACaptureFile {
        /// The file.
        file: PathBuf,
        /// Where the unrecognised header starts.
        offset: u64,
    },
    /// A pcap header or pcapng section of a version this reader does not know
    /// (pcap major version other than 2, pcapng major version other than 1).
    UnsupportedVersion {
        /// The file.
        file: PathBuf,
        /// Where the file or section header starts.
        offset: u64,
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
    },
    /// The file ends inside a header, record or block: it was cut while being
    /// written or copied. Every packet before `offset` was delivered.
    Truncated {
        /// The file.
        file: PathBuf,
        /// Where the incomplete record or block starts.
        offset: u64,
    },
    /// A pcapng block whose length is too small, not a multiple of 4, larger
    /// than the reader accepts ([`MAX_BLOCK_LEN`](crate::MAX_BLOCK_LEN)),
    /// different in its trailer, or too small for the packet it claims to
    /// hold; or a pcap record larger than the reader accepts.
    BadBlockLength {
        /// The file.
        file: PathBuf,
        /// Where the block or record starts.
        offset: u64,
        /// The length the block or record claims.
        length: u32,
    },
    /// A packet block refers to an interface that its section has not
    /// described.
    UnknownInterface {
        /// The file.
        file: PathBuf,
        /// Where the packet block starts.
        offset: u64,
        /// The interface id the block names, local to its section.
        interface: u32,
    },
    /// Opening or reading the file failed.
    Io {
        /// The file.
        file: PathBuf,
        /// How far the file had been read.
        offset: u64,
        /// The operating system's error.
        source: io::Error,
    },
}

impl ReadError {
    /// The file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            Self::NotACaptureFile { file, .. }
            | Self::UnsupportedVersion { file, .. }
            | Self::Truncated { file, .. }
            | Self::BadBlockLength { file, .. }
            | Self::UnknownInterface { file, .. }
            | Self::Io { file, .. } => file,
        }
    }

    /// The byte offset in the file where the error is.
    pub fn offset(&self) -> u64 {
        match self {
            Self::NotACaptureFile { offset, .. }
            | Self::UnsupportedVersion { offset, .. }
            | Self::Truncated { offset, .. }
            | Self::BadBlockLength { offset, .. }
            | Self::UnknownInterface { offset, .. }
            | Self::Io { offset, .. } => *offset,
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file().display();
        let offset = self.offset();
        match self {
            Self::NotACaptureFile { .. } => {
                write!(f, "{file}: not a pcap or pcapng file (no valid header at byte {offset})")
            }
            Self::UnsupportedVersion { major, minor, .. } => {
                write!(f, "{file}: unsupported format version {major}.{minor} at byte {offset}")
            }
            Self::Truncated { .. } => write!(
                f,
                "{file}: truncated: the file ends inside the record or block at byte {offset} \
                 (every packet before it was read)"
            ),
            Self::BadBlockLength { length, .. } => {
                write!(f, "{file}: corrupt: bad block or record length {length} at byte {offset}")
            }
            Self::UnknownInterface { interface, .. } => write!(
                f,
                "{file}: corrupt: packet at byte {offset} names interface {interface}, which its section does not describe"
            ),
            Self::Io { source, .. } => write!(f, "{file}: read failed at byte {offset}: {source}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
