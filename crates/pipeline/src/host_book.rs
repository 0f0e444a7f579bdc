//! What the capture stages know of each live interface beyond its name: its
//! role on the host (which decides the dedup's preference between copies)
//! and the container behind it, kept by host discovery and read by the
//! capture threads when they first meet an interface and when discovery
//! says it changed (a veth gets its bridge, a container is named).
//!
//! Keyed by interface index. Written rarely (interfaces come and go with
//! containers), read once per interface and thread, so a lock is fine.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use flow::TapRole;

/// The container behind a container veth.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ContainerLabel {
    /// Its id (Docker's 64 hex digits), when found.
    pub id: Option<String>,
    /// Its name, from the Docker API.
    pub name: Option<String>,
    /// Its image, from the Docker API.
    pub image: Option<String>,
    /// The name of its network namespace's file (under /var/run/netns or
    /// /var/run/docker/netns), when it has one.
    pub netns: Option<String>,
}

impl ContainerLabel {
    /// The container's name, falling back to its namespace's name (all a
    /// namespace made with `ip netns` has).
    pub fn name_or_netns(&self) -> Option<&str> {
        self.name.as_deref().or(self.netns.as_deref())
    }

    /// The shortest useful text: the name (or the namespace's), else the
    /// first 12 digits of the id, as `docker ps` shows it.
    pub fn display(&self) -> Option<String> {
        self.name_or_netns()
            .map(str::to_owned)
            .or_else(|| self.id.as_ref().map(|id| id.chars().take(12).collect()))
    }
}

/// One interface as the stages see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInterface {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: TapRole,
    /// The container behind it, for a container veth.
    pub container: Option<ContainerLabel>,
}

/// Interfaces by index; interfaces not in it are looked up by name in the
/// fixed roles given at start (or are Other).
#[derive(Debug, Default)]
pub struct HostBook {
    by_ifindex: RwLock<HashMap<i32, HostInterface>>,
    by_name: HashMap<String, TapRole>,
}

impl HostBook {
    /// A book whose interfaces, until told otherwise, have the roles of
    /// `by_name` (the roles given on the command line or by the names).
    pub fn with_roles(by_name: HashMap<String, TapRole>) -> Self {
        Self {
            by_ifindex: RwLock::new(HashMap::new()),
            by_name,
        }
    }

    /// Records (or replaces) what is known of interface `ifindex`.
    pub fn set(&self, ifindex: i32, interface: HostInterface) {
        self.by_ifindex
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ifindex, interface);
    }

    /// Forgets interface `ifindex`.
    pub fn remove(&self, ifindex: i32) {
        self.by_ifindex
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&ifindex);
    }

    /// What is known of the interface `ifindex` named `name`.
    pub fn get(&self, ifindex: i32, name: &str) -> HostInterface {
        if let Some(known) = self
            .by_ifindex
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&ifindex)
        {
            if known.name == name {
                return known.clone();
            }
        }
        HostInterface {
            name: name.to_owned(),
            role: self.by_name.get(name).copied().unwrap_or(TapRole::Other),
            container: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_wins_over_start_roles_and_names_must_agree() {
        let book = HostBook::with_roles(HashMap::from([("eth0".to_owned(), TapRole::Uplink)]));
        assert_eq!(book.get(2, "eth0").role, TapRole::Uplink);
        assert_eq!(book.get(9, "veth1").role, TapRole::Other);
        book.set(
            9,
            HostInterface {
                name: "veth1".to_owned(),
                role: TapRole::ContainerVeth,
                container: Some(ContainerLabel {
                    id: Some("0123456789abcdef".repeat(4)),
                    ..ContainerLabel::default()
                }),
            },
        );
        let veth = book.get(9, "veth1");
        assert_eq!(veth.role, TapRole::ContainerVeth);
        assert_eq!(veth.container.unwrap().display().as_deref(), Some("0123456789ab"));
        // Index 9 reused by another interface: the old entry does not apply.
        assert_eq!(book.get(9, "veth2").role, TapRole::Other);
        book.remove(9);
        assert_eq!(book.get(9, "veth1").role, TapRole::Other);
    }
}
