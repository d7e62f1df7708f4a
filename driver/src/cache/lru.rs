//! A bounded map that drops its least recently used entry first: a slab of
//! nodes linked in recency order, found through a hash map. O(1) for
//! every call; no allocation per hit.

use std::collections::HashMap;
use std::hash::Hash;

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Node<K, V> {
    key: K,
    value: V,
    prev: usize,
    next: usize,
}

/// At most `capacity` entries; inserting into a full map evicts the least
/// recently used one.
#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    map: HashMap<K, usize>,
    nodes: Vec<Option<Node<K, V>>>,
    /// Slots of removed nodes, reused before the slab grows.
    free: Vec<usize>,
    /// Most recently used.
    head: usize,
    /// Least recently used.
    tail: usize,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// An empty map holding at most `capacity` (≥ 1) entries.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The value at `key`, now the most recently used.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let index = *self.map.get(key)?;
        self.touch(index);
        self.node_mut(index).map(|n| &mut n.value)
    }

    /// The value at `key` without changing its recency.
    pub(crate) fn peek_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let index = *self.map.get(key)?;
        self.node_mut(index).map(|n| &mut n.value)
    }

    /// Sets `key` to `value` (most recently used); returns the entry evicted
    /// to make room, if any.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        if let Some(&index) = self.map.get(&key) {
            if let Some(node) = self.node_mut(index) {
                node.value = value;
            }
            self.touch(index);
            return None;
        }
        let evicted = if self.map.len() >= self.capacity {
            self.pop_lru()
        } else {
            None
        };
        let node = Node {
            key: key.clone(),
            value,
            prev: NIL,
            next: NIL,
        };
        let index = match self.free.pop() {
            Some(index) => {
                if let Some(slot) = self.nodes.get_mut(index) {
                    *slot = Some(node);
                }
                index
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        };
        self.map.insert(key, index);
        self.push_front(index);
        evicted
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let index = self.map.remove(key)?;
        self.take(index).map(|(_, v)| v)
    }

    /// Removes everything.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.nodes.clear();
        self.free.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    fn pop_lru(&mut self) -> Option<(K, V)> {
        let index = self.tail;
        let key = self.node(index)?.key.clone();
        self.map.remove(&key);
        self.take(index)
    }

    /// Unlinks node `index` and frees its slot.
    fn take(&mut self, index: usize) -> Option<(K, V)> {
        self.unlink(index);
        let node = self.nodes.get_mut(index)?.take()?;
        self.free.push(index);
        Some((node.key, node.value))
    }

    fn unlink(&mut self, index: usize) {
        let (prev, next) = match self.node(index) {
            Some(n) => (n.prev, n.next),
            None => return,
        };
        match self.node_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.node_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_front(&mut self, index: usize) {
        let old = self.head;
        if let Some(node) = self.node_mut(index) {
            node.prev = NIL;
            node.next = old;
        }
        match self.node_mut(old) {
            Some(h) => h.prev = index,
            None => self.tail = index,
        }
        self.head = index;
    }

    fn node(&self, index: usize) -> Option<&Node<K, V>> {
        self.nodes.get(index).and_then(Option::as_ref)
    }

    fn node_mut(&mut self, index: usize) -> Option<&mut Node<K, V>> {
        self.nodes.get_mut(index).and_then(Option::as_mut)
    }

    fn touch(&mut self, index: usize) {
        if self.head != index {
            self.unlink(index);
            self.push_front(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn least_recently_used_goes_first() {
        let mut lru = Lru::new(3);
        for k in ["a", "b", "c"] {
            assert!(lru.insert(k.to_owned(), k.len()).is_none());
        }
        // "a" is used: "b" is now the least recently used.
        assert!(lru.get_mut("a").is_some());
        assert_eq!(
            lru.insert("d".to_owned(), 1).map(|e| e.0),
            Some("b".to_owned())
        );
        assert_eq!(
            lru.insert("e".to_owned(), 1).map(|e| e.0),
            Some("c".to_owned())
        );
        assert_eq!(lru.remove("a"), Some(1));
        assert_eq!(lru.len(), 2);
        // A freed slot is reused; order holds across reuse.
        assert!(lru.insert("f".to_owned(), 1).is_none());
        assert_eq!(
            lru.insert("g".to_owned(), 1).map(|e| e.0),
            Some("d".to_owned())
        );
        assert!(lru.peek_mut("e").is_some());
        assert_eq!(
            lru.insert("h".to_owned(), 1).map(|e| e.0),
            Some("e".to_owned())
        );
        lru.clear();
        assert_eq!(lru.len(), 0);
        assert!(lru.get_mut("f").is_none());
        assert!(lru.insert("i".to_owned(), 1).is_none());
    }
}
