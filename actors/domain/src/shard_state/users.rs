//! A shard's users, compact: the states in one vector in the order users
//! arrived, and a hash table of 4-byte positions into it. A map of
//! (id, state) pairs keeps about twice the slots it holds (its table grows
//! by doubling), each 80 bytes; here the spare slots cost 5 bytes each and
//! the vector grows by a quarter at a time. Users are never removed.

use ahash::RandomState;
use hashbrown::HashTable;

use crate::user::UserState;

#[derive(Debug, Clone, Default)]
pub struct Users {
    /// Positions in `entries`, hashed by user id.
    index: HashTable<u32>,
    entries: Vec<(Box<str>, UserState)>,
    hasher: RandomState,
}

impl PartialEq for Users {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(id, s)| other.get(id) == Some(s))
    }
}

impl Eq for Users {}

impl Users {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Room for `more` users without growing.
    pub fn reserve(&mut self, more: usize) {
        let Users { index, entries, hasher } = self;
        index.reserve(more, |&i| hasher.hash_one(&*entries[i as usize].0));
        entries.reserve_exact(more);
    }

    fn position(&self, id: &str) -> Option<usize> {
        let hash = self.hasher.hash_one(id);
        self.index.find(hash, |&i| &*self.entries[i as usize].0 == id).map(|&i| i as usize)
    }

    pub fn get(&self, id: &str) -> Option<&UserState> {
        self.position(id).map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut UserState> {
        self.position(id).map(|i| &mut self.entries[i].1)
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.position(id).is_some()
    }

    /// The user `id`, added with `new()` if absent.
    pub fn get_or_insert_with(&mut self, id: &str, new: impl FnOnce() -> UserState) -> &mut UserState {
        let i = match self.position(id) {
            Some(i) => i,
            None => self.push(id.into(), new()),
        };
        &mut self.entries[i].1
    }

    /// Sets the user `id`'s state (replacing any).
    pub fn insert(&mut self, id: Box<str>, state: UserState) {
        match self.position(&id) {
            Some(i) => self.entries[i].1 = state,
            None => {
                self.push(id, state);
            }
        }
    }

    fn push(&mut self, id: Box<str>, state: UserState) -> usize {
        let i = self.entries.len();
        assert!(i < u32::MAX as usize, "a shard holds fewer than 2^32 users");
        if self.entries.len() == self.entries.capacity() {
            // A quarter more at a time: at most a fifth of the slots spare.
            self.entries.reserve_exact((i / 4).max(16));
        }
        let Users { index, entries, hasher } = self;
        let hash = hasher.hash_one(&*id);
        index.insert_unique(hash, i as u32, |&j| hasher.hash_one(&*entries[j as usize].0));
        entries.push((id, state));
        i
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Box<str>, &UserState)> {
        self.entries.iter().map(|(id, s)| (id, s))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&Box<str>, &mut UserState)> {
        self.entries.iter_mut().map(|(id, s)| (&*id, s))
    }
}

/// `users[id]`: the user `id`, who must be there.
impl std::ops::Index<&str> for Users {
    type Output = UserState;

    fn index(&self, id: &str) -> &UserState {
        self.get(id).unwrap_or_else(|| panic!("no user {id:?}"))
    }
}

impl<'a> IntoIterator for &'a Users {
    type Item = (&'a Box<str>, &'a UserState);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (Box<str>, UserState)>, fn(&'a (Box<str>, UserState)) -> Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(id, s)| (id, s))
    }
}

impl<'a> IntoIterator for &'a mut Users {
    type Item = (&'a Box<str>, &'a mut UserState);
    type IntoIter =
        std::iter::Map<std::slice::IterMut<'a, (Box<str>, UserState)>, fn(&'a mut (Box<str>, UserState)) -> Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter_mut().map(|(id, s)| (&*id, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_found_added_once_and_replaced() {
        let mut users = Users::default();
        for i in 0..1000 {
            users.get_or_insert_with(&format!("u{i}"), UserState::default);
        }
        users.get_or_insert_with("u7", || panic!("u7 is there"));
        assert_eq!(users.len(), 1000);
        assert!(users.contains_key("u999") && !users.contains_key("u1000"));
        users.insert("u1000".into(), UserState::default());
        users.insert("u5".into(), UserState::default());
        assert_eq!(users.len(), 1001);
        let ids: Vec<&str> = users.iter().map(|(k, _)| &**k).collect();
        assert_eq!(ids[..3], ["u0", "u1", "u2"], "in the order users came");
        assert!(users.entries.capacity() <= users.len() * 5 / 4 + 16, "{}", users.entries.capacity());
        let mut other = Users::default();
        other.reserve(1001);
        for (id, s) in users.iter().rev() {
            other.insert(id.clone(), s.clone());
        }
        assert_eq!(other, users, "equal whatever the order");
    }
}
