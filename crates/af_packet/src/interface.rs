//! Network interfaces by name and index, resolved in the calling thread's
//! network namespace.

use std::ffi::CString;
use std::fmt;

use crate::sys::{syscall, Syscall};

/// A network interface: its name and its index at the time it was resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Interface {
    name: String,
    ifindex: i32,
}

impl Interface {
    /// Resolves `name` to its index.
    pub fn by_name(name: &str) -> Result<Self, UnknownInterface> {
        let unknown = || UnknownInterface { name: name.to_owned() };
        if name.is_empty() || name.len() >= libc::IF_NAMESIZE {
            return Err(unknown());
        }
        let c_name = CString::new(name).map_err(|_| unknown())?;
        let index = syscall(Syscall::IfNameToIndex { name: &c_name }).map_err(|_| unknown())?;
        let ifindex = i32::try_from(index).map_err(|_| unknown())?;
        Ok(Self {
            name: name.to_owned(),
            ifindex,
        })
    }

    /// An interface known by both name and index (from a netlink dump, say).
    pub fn new(name: impl Into<String>, ifindex: i32) -> Self {
        Self {
            name: name.into(),
            ifindex,
        }
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface's index.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// Whether an interface with this index still exists under this name.
    /// False once it was deleted or moved to another namespace (or renamed).
    pub fn still_exists(&self) -> bool {
        name_of(self.ifindex).as_deref() == Some(self.name.as_str())
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The name of the interface with index `ifindex`, if there is one.
pub fn name_of(ifindex: i32) -> Option<String> {
    let index = u32::try_from(ifindex).ok()?;
    let mut buf = [0u8; libc::IF_NAMESIZE];
    let len = syscall(Syscall::IfIndexToName {
        ifindex: index,
        name: &mut buf,
    })
    .ok()?;
    Some(String::from_utf8_lossy(&buf[..len as usize]).into_owned())
}

/// No interface has this name in the current network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownInterface {
    /// The name that was looked up.
    pub name: String,
}

impl fmt::Display for UnknownInterface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no interface named {:?} in this network namespace", self.name)
    }
}

impl std::error::Error for UnknownInterface {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolves_and_round_trips() {
        let lo = Interface::by_name("lo").expect("every namespace has lo");
        assert!(lo.ifindex() > 0);
        assert_eq!(name_of(lo.ifindex()).as_deref(), Some("lo"));
        assert!(lo.still_exists());
    }

    #[test]
    fn unknown_and_invalid_names_are_errors() {
        for name in ["", "no-such-if0", "name-longer-than-ifnamsiz", "a\0b"] {
            assert_eq!(Interface::by_name(name), Err(UnknownInterface { name: name.into() }));
        }
        assert!(!Interface::new("lo", i32::MAX).still_exists());
    }
}
