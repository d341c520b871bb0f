//! The table behind a Spin interface's resource handles, per invocation:
//! open key-value stores, SQLite, PostgreSQL and Redis connections, and
//! PostgreSQL connection builders. A handle is the slot's index, reused
//! once closed, as in Spin's own tables.
//!
//! WASI 0.3 components call `open` concurrently, and an open awaits a
//! connection outside the store. So an open first *reserves* its slot: the
//! limit counts opens in flight, not only finished ones, and two
//! concurrent opens cannot both take the last place.

/// One slot: free, taken by an open still connecting, or holding a value.
enum Slot<T> {
    Free,
    Reserved,
    Held(T),
}

/// Up to `limit` values by handle.
pub(super) struct HandleTable<T> {
    slots: Vec<Slot<T>>,
    limit: usize,
}

impl<T> HandleTable<T> {
    pub fn new(limit: usize) -> Self {
        Self {
            slots: Vec::new(),
            limit,
        }
    }

    /// Takes a slot for an open that is still connecting; `None` when the
    /// table is full. The slot must then be [`fill`](Self::fill)ed or
    /// [`release`](Self::release)d. An open that is cancelled in between
    /// keeps its slot until the invocation ends, which only lowers that
    /// invocation's limit.
    pub fn reserve(&mut self) -> Option<u32> {
        let index = match self.slots.iter().position(|s| matches!(s, Slot::Free)) {
            Some(free) => free,
            None if self.slots.len() < self.limit => {
                self.slots.push(Slot::Free);
                self.slots.len() - 1
            }
            None => return None,
        };
        self.slots[index] = Slot::Reserved;
        u32::try_from(index).ok()
    }

    /// Puts the value an open reserved `handle` for.
    pub fn fill(&mut self, handle: u32, value: T) {
        if let Some(slot) = self.slots.get_mut(handle as usize) {
            *slot = Slot::Held(value);
        }
    }

    /// Ends an open that reserved `handle`: keeps what it opened, or frees
    /// the slot when it failed.
    pub fn settle<E>(&mut self, handle: u32, opened: Result<T, E>) -> Result<u32, E> {
        match opened {
            Ok(value) => {
                self.fill(handle, value);
                Ok(handle)
            }
            Err(err) => {
                self.release(handle);
                Err(err)
            }
        }
    }

    /// Takes a slot and puts `value` in it at once; `None` when full.
    pub fn insert(&mut self, value: T) -> Option<u32> {
        let handle = self.reserve()?;
        self.fill(handle, value);
        Some(handle)
    }

    /// Frees a slot: a closed handle or an open that failed.
    pub fn release(&mut self, handle: u32) {
        if let Some(slot) = self.slots.get_mut(handle as usize) {
            *slot = Slot::Free;
        }
    }

    pub fn get(&self, handle: u32) -> Option<&T> {
        match self.slots.get(handle as usize) {
            Some(Slot::Held(value)) => Some(value),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HandleTable;

    #[test]
    fn opens_in_flight_count_against_the_limit_and_handles_are_reused() {
        let mut table = HandleTable::new(2);
        let a = table.reserve().unwrap();
        let b = table.reserve().unwrap();
        assert_eq!(table.reserve(), None, "two opens in flight fill it");
        assert!(table.get(a).is_none(), "a reserved slot holds nothing yet");
        table.fill(a, "a");
        assert_eq!(table.settle(b, Err::<&str, ()>(())), Err(()));
        assert_eq!(table.insert("c"), Some(b), "a released slot is reused");
        assert_eq!(table.insert("d"), None);
        assert_eq!(table.get(a), Some(&"a"));
        table.release(a);
        assert!(table.get(a).is_none());
        assert!(table.get(99).is_none());
    }
}
