//! One map of the embedded store. When the store keeps a file, the map also remembers which of
//! its entries the current call touched (and what each held before), so the store writes exactly
//! those to the file, or puts them back when the file refuses the write. Without a file it is a
//! plain `BTreeMap`: the journal is `None` and costs one branch per change.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::collections::btree_map::{Range, Values};
use std::ops::RangeBounds;

pub(super) struct Table<K, V> {
    entries: BTreeMap<K, V>,
    /// Each key touched since the last commit, with its value before the touch (`None`: absent).
    journal: Option<BTreeMap<K, Option<V>>>,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table { entries: BTreeMap::new(), journal: None }
    }
}

impl<K: Ord + Clone, V: Clone> Table<K, V> {
    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.entries.get(key)
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.entries.contains_key(key)
    }

    pub fn values(&self) -> Values<'_, K, V> {
        self.entries.values()
    }

    pub fn range<R: RangeBounds<K>>(&self, range: R) -> Range<'_, K, V> {
        self.entries.range(range)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.touch(&key);
        self.entries.insert(key, value)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        if !self.entries.contains_key(key) {
            return None;
        }
        self.touch(key);
        self.entries.remove(key)
    }

    /// The entry to change in place; counted as changed whether or not the caller changes it.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if !self.entries.contains_key(key) {
            return None;
        }
        self.touch(key);
        self.entries.get_mut(key)
    }

    /// The entry to change in place, added with its default first if absent.
    pub fn get_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        self.touch(&key);
        self.entries.entry(key).or_default()
    }

    fn touch(&mut self, key: &K) {
        if let Some(journal) = &mut self.journal
            && !journal.contains_key(key)
        {
            journal.insert(key.clone(), self.entries.get(key).cloned());
        }
    }
}

#[cfg(feature = "file-store")]
pub(super) use journaled::Journaled;

#[cfg(feature = "file-store")]
mod journaled {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::Table;

    /// A changed entry as the file keeps it: its key, and its value (`None`: removed), in JSON.
    pub type SerializedChange = (Vec<u8>, Option<Vec<u8>>);

    /// What the file-backed store does to every table alike, whatever its key and value types.
    pub trait Journaled {
        /// Adds an entry read from the file (not journaled: the file has it already).
        fn load(&mut self, key: &[u8], value: &[u8]) -> Result<(), serde_json::Error>;
        /// Starts remembering changes: from now on every change is to be written to the file.
        fn start_journal(&mut self);
        fn has_changes(&self) -> bool;
        /// The entries touched since the last commit, as they are now.
        fn changes(&self) -> Result<Vec<SerializedChange>, serde_json::Error>;
        /// The changes are in the file: forget them.
        fn committed(&mut self);
        /// The file refused the changes: put the touched entries back as they were.
        fn roll_back(&mut self);
    }

    impl<K, V> Journaled for Table<K, V>
    where
        K: Ord + Clone + Serialize + DeserializeOwned,
        V: Clone + Serialize + DeserializeOwned,
    {
        fn load(&mut self, key: &[u8], value: &[u8]) -> Result<(), serde_json::Error> {
            self.entries.insert(serde_json::from_slice(key)?, serde_json::from_slice(value)?);
            Ok(())
        }

        fn start_journal(&mut self) {
            self.journal = Some(Default::default());
        }

        fn has_changes(&self) -> bool {
            self.journal.as_ref().is_some_and(|journal| !journal.is_empty())
        }

        fn changes(&self) -> Result<Vec<SerializedChange>, serde_json::Error> {
            let Some(journal) = &self.journal else { return Ok(Vec::new()) };
            journal
                .keys()
                .map(|key| {
                    let value = self.entries.get(key).map(serde_json::to_vec).transpose()?;
                    Ok((serde_json::to_vec(key)?, value))
                })
                .collect()
        }

        fn committed(&mut self) {
            if let Some(journal) = &mut self.journal {
                journal.clear();
            }
        }

        fn roll_back(&mut self) {
            let Some(journal) = &mut self.journal else { return };
            for (key, before) in std::mem::take(journal) {
                match before {
                    Some(value) => self.entries.insert(key, value),
                    None => self.entries.remove(&key),
                };
            }
        }
    }
}
