//! Test-only builders of capture files as bytes, in either byte order, so the
//! reader's tests state their fixtures record by record. Each builder also
//! notes where every record ends and whether it holds a packet, which the
//! truncation tests use to know what a cut file must still deliver. These are
//! written from the format specifications, independently of the reader.

/// Where a record ends and whether it holds a packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Boundary {
    pub end: usize,
    pub packet: bool,
}

/// A classic pcap file.
pub(crate) struct PcapBuilder {
    big_endian: bool,
    nanosecond: bool,
    pub bytes: Vec<u8>,
    pub boundaries: Vec<Boundary>,
}

impl PcapBuilder {
    pub fn new(big_endian: bool, nanosecond: bool, link_type: u32, snaplen: u32) -> Self {
        let mut builder = Self {
            big_endian,
            nanosecond,
            bytes: Vec::new(),
            boundaries: Vec::new(),
        };
        let magic = if nanosecond { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        builder.u32(magic);
        builder.u16(2);
        builder.u16(4);
        builder.u32(0);
        builder.u32(0);
        builder.u32(snaplen);
        builder.u32(link_type);
        builder.mark(false);
        builder
    }

    /// A record at `seconds` plus `fraction` micro- or nanoseconds.
    pub fn record(&mut self, seconds: u32, fraction: u32, data: &[u8], original_len: u32) -> &mut Self {
        assert!(fraction < if self.nanosecond { 1_000_000_000 } else { 1_000_000 });
        self.u32(seconds);
        self.u32(fraction);
        self.u32(data.len() as u32);
        self.u32(original_len);
        self.bytes.extend_from_slice(data);
        self.mark(true);
        self
    }

    pub fn u16(&mut self, value: u16) {
        let bytes = if self.big_endian {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        };
        self.bytes.extend_from_slice(&bytes);
    }

    pub fn u32(&mut self, value: u32) {
        let bytes = if self.big_endian {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        };
        self.bytes.extend_from_slice(&bytes);
    }

    fn mark(&mut self, packet: bool) {
        self.boundaries.push(Boundary {
            end: self.bytes.len(),
            packet,
        });
    }
}

/// A pcapng option: code and value.
pub(crate) type Opt = (u16, Vec<u8>);

/// A pcapng file; sections may change byte order.
pub(crate) struct PcapngBuilder {
    big_endian: bool,
    pub bytes: Vec<u8>,
    pub boundaries: Vec<Boundary>,
}

impl PcapngBuilder {
    /// A file whose first section has the given byte order.
    pub fn new(big_endian: bool) -> Self {
        let mut builder = Self {
            big_endian,
            bytes: Vec::new(),
            boundaries: Vec::new(),
        };
        builder.section(big_endian);
        builder
    }

    /// A Section Header Block, version 1.0, starting a section.
    pub fn section(&mut self, big_endian: bool) -> &mut Self {
        self.big_endian = big_endian;
        let mut body = Vec::new();
        body.extend(self.u32(0x1a2b_3c4d));
        body.extend(self.u16(1));
        body.extend(self.u16(0));
        body.extend((-1i64).to_le_bytes());
        let options = self.options(&[(4, b"fixture".to_vec())]);
        body.extend(options);
        self.block(0x0a0d_0d0a, &body, false)
    }

    /// An Interface Description Block.
    pub fn interface(&mut self, link_type: u16, snaplen: u32, options: &[Opt]) -> &mut Self {
        let mut body = Vec::new();
        body.extend(self.u16(link_type));
        body.extend(self.u16(0));
        body.extend(self.u32(snaplen));
        body.extend(self.options(options));
        self.block(1, &body, false)
    }

    /// `if_name`.
    pub fn name(name: &str) -> Opt {
        (2, name.as_bytes().to_vec())
    }

    /// `if_tsresol`.
    pub fn tsresol(raw: u8) -> Opt {
        (9, vec![raw])
    }

    /// `if_tsoffset`, in this section's byte order.
    pub fn tsoffset(&self, seconds: i64) -> Opt {
        let bytes = if self.big_endian {
            seconds.to_be_bytes()
        } else {
            seconds.to_le_bytes()
        };
        (14, bytes.to_vec())
    }

    /// An Enhanced Packet Block.
    pub fn epb(&mut self, interface: u32, units: u64, data: &[u8], original_len: u32, flags: Option<u32>) -> &mut Self {
        let mut body = Vec::new();
        body.extend(self.u32(interface));
        body.extend(self.u32((units >> 32) as u32));
        body.extend(self.u32(units as u32));
        body.extend(self.u32(data.len() as u32));
        body.extend(self.u32(original_len));
        body.extend(padded(data));
        if let Some(flags) = flags {
            let value = self.u32(flags).to_vec();
            body.extend(self.options(&[(1, b"comment".to_vec()), (2, value)]));
        }
        self.block(6, &body, true)
    }

    /// An obsolete Packet Block.
    pub fn packet_block(&mut self, interface: u16, units: u64, data: &[u8], flags: Option<u32>) -> &mut Self {
        let mut body = Vec::new();
        body.extend(self.u16(interface));
        body.extend(self.u16(0));
        body.extend(self.u32((units >> 32) as u32));
        body.extend(self.u32(units as u32));
        body.extend(self.u32(data.len() as u32));
        body.extend(self.u32(data.len() as u32));
        body.extend(padded(data));
        if let Some(flags) = flags {
            let value = self.u32(flags).to_vec();
            body.extend(self.options(&[(2, value)]));
        }
        self.block(2, &body, true)
    }

    /// A Simple Packet Block.
    pub fn spb(&mut self, data: &[u8], original_len: u32) -> &mut Self {
        let mut body = Vec::new();
        body.extend(self.u32(original_len));
        body.extend(padded(data));
        self.block(3, &body, true)
    }

    /// Any other block, with an opaque body.
    pub fn other(&mut self, block_type: u32, body: &[u8]) -> &mut Self {
        self.block(block_type, &padded(body), false)
    }

    fn block(&mut self, block_type: u32, body: &[u8], packet: bool) -> &mut Self {
        assert_eq!(body.len() % 4, 0);
        let length = (body.len() + 12) as u32;
        let head = [self.u32(block_type), self.u32(length)].concat();
        self.bytes.extend(head);
        self.bytes.extend_from_slice(body);
        self.bytes.extend(self.u32(length));
        self.boundaries.push(Boundary {
            end: self.bytes.len(),
            packet,
        });
        self
    }

    fn options(&self, options: &[Opt]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (code, value) in options {
            bytes.extend(self.u16(*code));
            bytes.extend(self.u16(value.len() as u16));
            bytes.extend(padded(value));
        }
        bytes.extend([0; 4]);
        bytes
    }

    fn u16(&self, value: u16) -> [u8; 2] {
        if self.big_endian {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        }
    }

    fn u32(&self, value: u32) -> [u8; 4] {
        if self.big_endian {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        }
    }
}

/// `data` zero-padded to a multiple of 4 bytes.
fn padded(data: &[u8]) -> Vec<u8> {
    let mut bytes = data.to_vec();
    bytes.resize(data.len().next_multiple_of(4), 0);
    bytes
}

/// A `LINUX_SLL` header for an Ethernet interface, then `payload`.
pub(crate) fn sll(packet_type: u16, mac: [u8; 6], protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend(packet_type.to_be_bytes());
    bytes.extend(1u16.to_be_bytes());
    bytes.extend(6u16.to_be_bytes());
    bytes.extend(mac);
    bytes.extend([0, 0]);
    bytes.extend(protocol.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// A `LINUX_SLL2` header for an Ethernet interface, then `payload`.
pub(crate) fn sll2(packet_type: u8, ifindex: u32, mac: [u8; 6], protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend(protocol.to_be_bytes());
    bytes.extend([0, 0]);
    bytes.extend(ifindex.to_be_bytes());
    bytes.extend(1u16.to_be_bytes());
    bytes.push(packet_type);
    bytes.push(6);
    bytes.extend(mac);
    bytes.extend([0, 0]);
    bytes.extend_from_slice(payload);
    bytes
}
