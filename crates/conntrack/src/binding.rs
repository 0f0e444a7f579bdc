//! NAT bindings in ringsieve's terms, from conntrack entries: which
//! container-side tuple is which public (uplink-side) tuple, both in the
//! connection's original direction ([`NatBinding`]), and the events the
//! watcher hands on ([`NatEvent`]).
//!
//! # From conntrack's two tuples
//!
//! Conntrack keys a connection by its original tuple (the first packet as
//! it arrived, before any NAT) and its reply tuple (a reply as it will
//! arrive, before de-NAT). The first packet after NAT is therefore the
//! reply tuple reversed. An entry is NATed when the two differ, as ringsieve
//! sees tuples ([`crate::CtTuple::flow_tuple`]).
//!
//! Which of the two is the container's depends on who opened the
//! connection. When NAT changed the destination (DNAT of a published port,
//! possibly with SNAT as well), the connection came from the public side:
//! the original tuple is the public one and the translated one the
//! container's (outside 198.18.0.1:5555 → 198.18.0.2:8080 is container
//! 198.18.0.1:5555 → 172.17.0.2:80). When only the source changed
//! (MASQUERADE), a container opened it: the original tuple is the
//! container's, the translated one the public (172.17.0.2:40000 →
//! 198.18.0.1:5005 is public 198.18.0.2:40000 → 198.18.0.1:5005).

use flow::{FlowTuple, NatTranslation};

use crate::message::{Conntrack, CtKind};

/// What NAT changed in the original direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// The source only (MASQUERADE, SNAT).
    Source,
    /// The destination only (DNAT, published ports).
    Destination,
    /// Both ends (DNAT plus SNAT, hairpin).
    Both,
}

/// A connection's two sides across NAT, in its original direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NatBinding {
    /// The tuple as the container's veth and the bridge show the original
    /// direction.
    pub container: FlowTuple,
    /// The tuple as the uplink shows the original direction.
    pub public: FlowTuple,
    /// What NAT changed.
    pub kind: NatKind,
    /// Conntrack's id of the entry, when reported.
    pub id: Option<u32>,
    /// Conntrack zone, when reported.
    pub zone: Option<u16>,
}

impl NatBinding {
    /// The binding of a conntrack entry, `None` when the entry is not
    /// NATed (its reply tuple is its original tuple reversed).
    pub fn of(entry: &Conntrack) -> Option<Self> {
        let original = entry.orig.flow_tuple();
        let translated = entry.reply.flow_tuple().reversed();
        if original == translated {
            return None;
        }
        // Which end changed, by conntrack's own fields: the ICMP identifier
        // belongs to the source (NAT rewrites it as a source port), although
        // ringsieve puts it in both ports.
        let (orig, reply) = (&entry.orig, &entry.reply);
        let src_changed = orig.src != reply.dst || orig.src_port != reply.dst_port || orig.icmp_id != reply.icmp_id;
        let dst_changed = orig.dst != reply.src || orig.dst_port != reply.src_port;
        let (container, public, kind) = match (src_changed, dst_changed) {
            (true, false) => (original, translated, NatKind::Source),
            (false, true) => (translated, original, NatKind::Destination),
            // Both changed, or neither by these fields (the protocol, which
            // NAT never changes: a malformed entry, kept as the public side
            // opening it).
            _ => (translated, original, NatKind::Both),
        };
        Some(Self {
            container,
            public,
            kind,
            id: entry.id,
            zone: entry.zone,
        })
    }

    /// The binding as the dedup's NAT table keeps it: both tuples in the
    /// original direction, for [`flow::NatBindings::learn`].
    pub fn to_translation(&self) -> NatTranslation {
        NatTranslation {
            public: self.public,
            container: self.container,
        }
    }
}

/// A NAT binding that appeared or went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatEvent {
    /// A NATed connection is known: from a NEW (or UPDATE, when asked for)
    /// event, or from a dump of the table (the initial one or a resync).
    Bound(NatBinding),
    /// A NATed connection's conntrack entry was destroyed.
    Released(NatBinding),
}

impl NatEvent {
    /// The event of a conntrack entry; `None` when it is not NATed.
    pub fn of(entry: &Conntrack) -> Option<Self> {
        let binding = NatBinding::of(entry)?;
        Some(match entry.kind {
            CtKind::Destroy => Self::Released(binding),
            CtKind::New | CtKind::Update | CtKind::Dump => Self::Bound(binding),
        })
    }

    /// The binding, bound or released.
    pub fn binding(&self) -> &NatBinding {
        match self {
            Self::Bound(binding) | Self::Released(binding) => binding,
        }
    }
}
