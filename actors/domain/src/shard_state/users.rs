//! A shard's users, compact: the states in one vector in the order users
//! arrived, their ids end to end in one string (each found by where it
//! ends), and a hash table of 4-byte positions into both. A map of
//! (id, state) pairs keeps about twice the slots it holds (its table grows
//! by doubling), each 80 bytes, and allocates every id on its own (32 bytes
//! or more from the allocator for an id of up to 24); here a user costs
//! its state, its id's bytes, 4 bytes for where the id ends and 5 for each
//! slot of the table, and the vectors grow by a quarter at a time. Users
//! are never removed.

use ahash::RandomState;
use hashbrown::HashTable;

use crate::user::UserState;

#[derive(Debug, Clone, Default)]
pub struct Users {
    /// Positions in `states`, hashed by user id.
    index: HashTable<u32>,
    /// Every id, end to end, in the order users came.
    ids: String,
    /// Where user `i`'s id ends in `ids` (it starts where `i - 1`'s ends).
    ends: Vec<u32>,
    states: Vec<UserState>,
    hasher: RandomState,
}

/// User `i`'s id.
fn id_at<'a>(ids: &'a str, ends: &[u32], i: usize) -> &'a str {
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    &ids[start..ends[i] as usize]
}

/// Grows `v` by a quarter when full, so at most a fifth of it is spare.
fn grow_by_a_quarter<T>(v: &mut Vec<T>, len: usize, more: usize) {
    if v.capacity() - len < more {
        v.reserve_exact((len / 4).max(16).max(more));
    }
}

impl PartialEq for Users {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(id, s)| other.get(id) == Some(s))
    }
}

impl Eq for Users {}

impl Users {
    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Room for `more` users without growing (their ids' bytes aside).
    pub fn reserve(&mut self, more: usize) {
        let Users { index, ids, ends, hasher, .. } = self;
        index.reserve(more, |&i| hasher.hash_one(id_at(ids, ends, i as usize)));
        ends.reserve_exact(more);
        self.states.reserve_exact(more);
    }

    fn position(&self, id: &str) -> Option<usize> {
        let hash = self.hasher.hash_one(id);
        self.index.find(hash, |&i| id_at(&self.ids, &self.ends, i as usize) == id).map(|&i| i as usize)
    }

    pub fn get(&self, id: &str) -> Option<&UserState> {
        self.position(id).map(|i| &self.states[i])
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut UserState> {
        self.position(id).map(|i| &mut self.states[i])
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.position(id).is_some()
    }

    /// The user `id`, added with `new()` if absent.
    pub fn get_or_insert_with(&mut self, id: &str, new: impl FnOnce() -> UserState) -> &mut UserState {
        let i = match self.position(id) {
            Some(i) => i,
            None => self.push(id, new()),
        };
        &mut self.states[i]
    }

    /// Sets the user `id`'s state (replacing any).
    pub fn insert(&mut self, id: &str, state: UserState) {
        match self.position(id) {
            Some(i) => self.states[i] = state,
            None => {
                self.push(id, state);
            }
        }
    }

    fn push(&mut self, id: &str, state: UserState) -> usize {
        let i = self.states.len();
        let end = u32::try_from(self.ids.len() + id.len()).expect("a shard's user ids fit in 4 GiB");
        let Users { index, ids, ends, states, hasher } = self;
        grow_by_a_quarter(states, i, 1);
        grow_by_a_quarter(ends, i, 1);
        if ids.capacity() - ids.len() < id.len() {
            ids.reserve_exact((ids.len() / 4).max(256).max(id.len()));
        }
        let hash = hasher.hash_one(id);
        index.insert_unique(hash, i as u32, |&j| hasher.hash_one(id_at(ids, ends, j as usize)));
        ids.push_str(id);
        ends.push(end);
        states.push(state);
        i
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &UserState)> {
        self.states.iter().enumerate().map(|(i, s)| (id_at(&self.ids, &self.ends, i), s))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut UserState)> {
        let (ids, ends) = (&self.ids, &self.ends);
        self.states.iter_mut().enumerate().map(move |(i, s)| (id_at(ids, ends, i), s))
    }
}

/// `users[id]`: the user `id`, who must be there.
impl std::ops::Index<&str> for Users {
    type Output = UserState;

    fn index(&self, id: &str) -> &UserState {
        self.get(id).unwrap_or_else(|| panic!("no user {id:?}"))
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
        assert!(users.contains_key("u999") && !users.contains_key("u1000") && !users.contains_key("u"));
        users.insert("u1000", UserState::default());
        users.insert("u5", UserState::default());
        users.insert("", UserState::default());
        assert_eq!(users.len(), 1002);
        assert!(users.contains_key("") && users.contains_key("u1000"));
        let ids: Vec<&str> = users.iter().map(|(k, _)| k).collect();
        assert_eq!(ids[..3], ["u0", "u1", "u2"], "in the order users came");
        assert_eq!(ids[1000..], ["u1000", ""]);
        assert!(users.states.capacity() <= users.len() * 5 / 4 + 16, "{}", users.states.capacity());
        assert!(users.ids.capacity() <= users.ids.len() * 5 / 4 + 256, "{}", users.ids.capacity());
        let mut other = Users::default();
        other.reserve(1002);
        for (id, s) in users.iter().rev() {
            other.insert(id, s.clone());
        }
        assert_eq!(other, users, "equal whatever the order");
    }
}
