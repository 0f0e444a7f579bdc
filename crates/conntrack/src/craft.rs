//! Test-only encoder of ctnetlink conntrack messages, byte for byte as the
//! kernel lays them out (nlmsghdr, nfgenmsg, nested attributes padded to 4
//! bytes, NLA_F_NESTED on nests, payloads in network byte order), so the
//! unit tests decode the same shapes the kernel sends.

use std::net::IpAddr;

use crate::message::{NFNL_SUBSYS_CTNETLINK, NLMSG_HDRLEN};

const NLA_F_NESTED: u16 = 0x8000;

/// One attribute: a leaf payload or a nest.
pub enum Attr {
    Leaf(u16, Vec<u8>),
    Nest(u16, Vec<Attr>),
}

impl Attr {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        let kind = match self {
            Attr::Leaf(kind, value) => {
                out.extend_from_slice(value);
                *kind
            }
            Attr::Nest(kind, children) => {
                for child in children {
                    child.encode(out);
                }
                *kind | NLA_F_NESTED
            }
        };
        let len = (out.len() - start) as u16;
        out[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        out[start + 2..start + 4].copy_from_slice(&kind.to_ne_bytes());
        while out.len() % 4 != 0 {
            out.push(0);
        }
    }
}

/// A tuple's attributes: addresses, protocol, ports or ICMP id/type/code.
pub struct Tuple {
    pub protocol: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// (src, dst) ports, or (id, type, code) for ICMP.
    pub ports: Option<(u16, u16)>,
    pub icmp: Option<(u16, u8, u8)>,
}

fn ip_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

impl Tuple {
    pub fn attr(&self, kind: u16) -> Attr {
        let (src_kind, dst_kind) = if self.src.is_ipv4() { (1, 2) } else { (3, 4) };
        let mut proto = vec![Attr::Leaf(1, vec![self.protocol])];
        if let Some((src, dst)) = self.ports {
            proto.push(Attr::Leaf(2, src.to_be_bytes().to_vec()));
            proto.push(Attr::Leaf(3, dst.to_be_bytes().to_vec()));
        }
        if let Some((id, icmp_type, code)) = self.icmp {
            let base = if self.protocol == 58 { 7 } else { 4 };
            proto.push(Attr::Leaf(base, id.to_be_bytes().to_vec()));
            proto.push(Attr::Leaf(base + 1, vec![icmp_type]));
            proto.push(Attr::Leaf(base + 2, vec![code]));
        }
        Attr::Nest(
            kind,
            vec![
                Attr::Nest(
                    1,
                    vec![
                        Attr::Leaf(src_kind, ip_bytes(self.src)),
                        Attr::Leaf(dst_kind, ip_bytes(self.dst)),
                    ],
                ),
                Attr::Nest(2, proto),
            ],
        )
    }
}

/// A whole netlink message of subsystem ctnetlink: `ct_message`, `flags`,
/// family 2 (or 10 for IPv6 tuples), and `attrs`.
pub fn message(ct_message: u8, flags: u16, seq: u32, family: u8, attrs: &[Attr]) -> Vec<u8> {
    let mut out = vec![0u8; NLMSG_HDRLEN];
    out.extend_from_slice(&[family, 0, 0, 0]);
    for attr in attrs {
        attr.encode(&mut out);
    }
    let len = out.len() as u32;
    let msg_type = u16::from_be_bytes([NFNL_SUBSYS_CTNETLINK, ct_message]);
    out[0..4].copy_from_slice(&len.to_ne_bytes());
    out[4..6].copy_from_slice(&msg_type.to_ne_bytes());
    out[6..8].copy_from_slice(&flags.to_ne_bytes());
    out[8..12].copy_from_slice(&seq.to_ne_bytes());
    out
}

/// A conntrack message with the original and reply tuples, a status and an
/// id, in the kernel's attribute order.
pub fn conntrack(ct_message: u8, flags: u16, orig: &Tuple, reply: &Tuple, status: u32, id: u32) -> Vec<u8> {
    let family = if orig.src.is_ipv4() { 2 } else { 10 };
    message(
        ct_message,
        flags,
        0,
        family,
        &[
            orig.attr(1),
            reply.attr(2),
            Attr::Leaf(3, status.to_be_bytes().to_vec()),
            Attr::Leaf(7, 120u32.to_be_bytes().to_vec()),
            Attr::Leaf(12, id.to_be_bytes().to_vec()),
        ],
    )
}

/// A control message (NLMSG_DONE, NLMSG_ERROR) with a 4-byte payload.
pub fn control(msg_type: u16, seq: u32, payload: i32) -> Vec<u8> {
    let mut out = vec![0u8; NLMSG_HDRLEN];
    out.extend_from_slice(&payload.to_ne_bytes());
    let len = out.len() as u32;
    out[0..4].copy_from_slice(&len.to_ne_bytes());
    out[4..6].copy_from_slice(&msg_type.to_ne_bytes());
    out[8..12].copy_from_slice(&seq.to_ne_bytes());
    out
}
