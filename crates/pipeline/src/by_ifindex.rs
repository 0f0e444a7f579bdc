//! A map from interface index to what a capture thread keeps per interface,
//! looked up once per packet: a direct index for the small ifindexes the
//! kernel gives (it counts up from 1), a short scan for anything else.

/// Interface indexes up to this one get a direct slot.
const DIRECT: usize = 1 << 16;

/// Values by ifindex.
#[derive(Clone, Debug)]
pub struct ByIfindex<T> {
    direct: Vec<Option<T>>,
    others: Vec<(i32, T)>,
}

impl<T> Default for ByIfindex<T> {
    fn default() -> Self {
        Self {
            direct: Vec::new(),
            others: Vec::new(),
        }
    }
}

impl<T: Copy> ByIfindex<T> {
    /// The value of `ifindex`, if set.
    #[inline]
    pub fn get(&self, ifindex: i32) -> Option<T> {
        match usize::try_from(ifindex) {
            Ok(index) if index < DIRECT => self.direct.get(index).copied().flatten(),
            _ => self.others.iter().find(|(i, _)| *i == ifindex).map(|(_, v)| *v),
        }
    }

    /// Sets the value of `ifindex`.
    pub fn set(&mut self, ifindex: i32, value: T) {
        match usize::try_from(ifindex) {
            Ok(index) if index < DIRECT => {
                if self.direct.len() <= index {
                    self.direct.resize(index + 1, None);
                }
                self.direct[index] = Some(value);
            }
            _ => match self.others.iter_mut().find(|(i, _)| *i == ifindex) {
                Some(entry) => entry.1 = value,
                None => self.others.push((ifindex, value)),
            },
        }
    }
}

impl<T> ByIfindex<T> {
    /// Forgets `ifindex` (its interface went away; the kernel may give the
    /// index to another one).
    pub fn remove(&mut self, ifindex: i32) {
        match usize::try_from(ifindex) {
            Ok(index) if index < DIRECT => {
                if let Some(slot) = self.direct.get_mut(index) {
                    *slot = None;
                }
            }
            _ => self.others.retain(|(i, _)| *i != ifindex),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ByIfindex;

    #[test]
    fn small_and_odd_indexes_both_map() {
        let mut map = ByIfindex::default();
        map.set(3, 'a');
        map.set(-1, 'b');
        map.set(1 << 20, 'c');
        map.set(3, 'd');
        assert_eq!(map.get(3), Some('d'));
        assert_eq!(map.get(-1), Some('b'));
        assert_eq!(map.get(1 << 20), Some('c'));
        assert_eq!(map.get(4), None);
        assert_eq!(map.get(0), None);
        map.remove(3);
        map.remove(-1);
        assert_eq!(map.get(3), None);
        assert_eq!(map.get(-1), None);
        assert_eq!(map.get(1 << 20), Some('c'));
    }
}
