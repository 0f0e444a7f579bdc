//! The interfaces packets were captured on, as workers see them: an
//! append-only table that capture threads add to when they meet an
//! interface and that workers read without a lock, by the small id every
//! packet carries.
//!
//! Entries are never removed: an interface that goes away keeps its entry,
//! so a packet still queued for a worker can name it. A capture that meets
//! more than [`MAX_INTERFACES`] distinct interfaces (a host that has started
//! and stopped that many containers) names the rest [`InterfaceId::OVERFLOW`].

use std::sync::{Mutex, OnceLock, PoisonError};

use flow::TapRole;

use crate::host_book::ContainerLabel;

/// Distinct interfaces one table holds.
pub const MAX_INTERFACES: usize = 16_384;

/// An interface's index in an [`InterfaceTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterfaceId(pub u16);

impl InterfaceId {
    /// Where interfaces go once the table is full.
    pub const OVERFLOW: InterfaceId = InterfaceId(u16::MAX);

    /// The index, for per-interface arrays.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// What a worker knows of an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Its name (`eth0`, `docker0`, `veth1a2b3c`).
    pub name: String,
    /// Its role on the host.
    pub role: TapRole,
    /// The kernel's index live; for an interface of capture files, the
    /// number `ringsieve read` gave it.
    pub ifindex: i32,
    /// The link type of its frames (1 for Ethernet, as pcap numbers them).
    pub link_type: u32,
    /// The container behind it, for a container veth.
    pub container: Option<ContainerLabel>,
}

/// The interface table shared by capture threads and workers.
pub struct InterfaceTable {
    slots: Box<[OnceLock<InterfaceInfo>]>,
    overflow: InterfaceInfo,
    /// Serializes additions (rare: once per interface and thread).
    added: Mutex<usize>,
}

impl Default for InterfaceTable {
    fn default() -> Self {
        Self::new()
    }
}

impl InterfaceTable {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            slots: (0..MAX_INTERFACES).map(|_| OnceLock::new()).collect(),
            overflow: InterfaceInfo {
                name: "(too many interfaces)".to_owned(),
                role: TapRole::Other,
                ifindex: 0,
                link_type: 1,
                container: None,
            },
            added: Mutex::new(0),
        }
    }

    /// The id of `info`, added if the table does not have an equal entry.
    pub fn intern(&self, info: InterfaceInfo) -> InterfaceId {
        let mut added = self.added.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(index) = self.slots[..*added].iter().position(|slot| slot.get() == Some(&info)) {
            return InterfaceId(index as u16);
        }
        if *added >= MAX_INTERFACES {
            return InterfaceId::OVERFLOW;
        }
        let index = *added;
        // Only this function sets slots, under the lock, each once.
        let _ = self.slots[index].set(info);
        *added += 1;
        InterfaceId(index as u16)
    }

    /// The interface of `id`.
    pub fn get(&self, id: InterfaceId) -> &InterfaceInfo {
        self.slots
            .get(id.index())
            .and_then(OnceLock::get)
            .unwrap_or(&self.overflow)
    }

    /// How many interfaces it holds.
    pub fn len(&self) -> usize {
        *self.added.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, ifindex: i32) -> InterfaceInfo {
        InterfaceInfo {
            name: name.to_owned(),
            role: TapRole::ContainerVeth,
            ifindex,
            link_type: 1,
            container: None,
        }
    }

    #[test]
    fn equal_interfaces_share_an_id_and_others_do_not() {
        let table = InterfaceTable::new();
        let a = table.intern(info("veth0", 4));
        let b = table.intern(info("veth1", 5));
        assert_ne!(a, b);
        assert_eq!(table.intern(info("veth0", 4)), a);
        // The same name with another ifindex is another interface (a
        // container restarted with a reused veth name).
        assert_ne!(table.intern(info("veth0", 9)), a);
        assert_eq!(table.get(b).name, "veth1");
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn a_full_table_names_the_rest_overflow() {
        let table = InterfaceTable::new();
        for i in 0..MAX_INTERFACES {
            table.intern(info("veth", i as i32));
        }
        let id = table.intern(info("one-more", -1));
        assert_eq!(id, InterfaceId::OVERFLOW);
        assert_eq!(table.get(id).name, "(too many interfaces)");
    }
}
