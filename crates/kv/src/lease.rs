//! Leases as state: which leases exist, their granted TTL, and the keys attached to each.
//! When a lease expires is decided outside the state machine (by the leader, against its
//! clock); expiry arrives here as a revoke, like any other command.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::KvError;
use crate::store::{DeleteRange, Store};

/// etcd's largest TTL, in seconds.
pub const LEASE_TTL_MAX: i64 = 9_000_000_000;

/// A lease.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseState {
    /// The TTL granted, in seconds.
    pub ttl: i64,
    /// The keys attached to it.
    pub keys: BTreeSet<Vec<u8>>,
    /// How many keep-alives were applied: an expiry decided before the latest one is
    /// stale and revokes nothing.
    pub refreshes: u64,
}

/// etcd's `LeaseGrantRequest`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseGrant {
    /// The TTL asked for, in seconds (raised to the minimum).
    pub ttl: i64,
    /// The ID asked for (0: the store picks one).
    pub id: i64,
}

/// etcd's `LeaseGrantResponse`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseGrantResponse {
    /// The header revision.
    pub revision: i64,
    /// The lease's ID.
    pub id: i64,
    /// The TTL granted.
    pub ttl: i64,
}

/// etcd's `LeaseTimeToLiveResponse`, without the remaining TTL (the leader's clock knows it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The header revision.
    pub revision: i64,
    /// The lease's ID.
    pub id: i64,
    /// The TTL granted.
    pub granted_ttl: i64,
    /// The attached keys, if asked for.
    pub keys: Vec<Vec<u8>>,
}

/// The leases of a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Leases {
    pub(crate) leases: BTreeMap<i64, LeaseState>,
    /// The next ID to try when the store picks one.
    pub(crate) next_id: i64,
    /// TTLs below this are raised to it (etcd: 1.5 election timeouts, rounded up).
    pub(crate) min_ttl: i64,
}

impl Default for Leases {
    fn default() -> Self {
        Leases {
            leases: BTreeMap::new(),
            next_id: 1,
            min_ttl: 2,
        }
    }
}

impl Store {
    /// Grants a lease. Does not change the revision.
    pub fn lease_grant(&mut self, g: LeaseGrant) -> Result<LeaseGrantResponse, KvError> {
        if g.ttl > LEASE_TTL_MAX {
            return Err(KvError::LeaseTtlTooLarge);
        }
        let leases = &mut self.leases;
        let id = if g.id == 0 {
            // Never reuse an ID, even a revoked one: old revisions still name it.
            while leases.leases.contains_key(&leases.next_id) {
                leases.next_id += 1;
            }
            leases.next_id += 1;
            leases.next_id - 1
        } else {
            g.id
        };
        if leases.leases.contains_key(&id) {
            return Err(KvError::LeaseExists);
        }
        let ttl = g.ttl.max(leases.min_ttl);
        let keys = BTreeSet::new();
        leases.leases.insert(
            id,
            LeaseState {
                ttl,
                keys,
                refreshes: 0,
            },
        );
        Ok(LeaseGrantResponse {
            revision: self.revision(),
            id,
            ttl,
        })
    }

    /// Revokes a lease and deletes its keys, all at one revision.
    pub fn lease_revoke(&mut self, id: i64) -> Result<i64, KvError> {
        let lease = self
            .leases
            .leases
            .remove(&id)
            .ok_or(KvError::LeaseNotFound)?;
        for key in lease.keys {
            let delete = DeleteRange {
                key,
                ..DeleteRange::default()
            };
            self.delete_in_txn(&delete)?;
        }
        self.end_write();
        Ok(self.revision())
    }

    /// A keep-alive: counts the refresh and returns the granted TTL.
    pub fn lease_keep_alive(&mut self, id: i64) -> Result<i64, KvError> {
        let lease = self
            .leases
            .leases
            .get_mut(&id)
            .ok_or(KvError::LeaseNotFound)?;
        lease.refreshes += 1;
        Ok(lease.ttl)
    }

    /// How many keep-alives lease `id` has had (`None` if it does not exist).
    pub fn lease_refreshes(&self, id: i64) -> Option<u64> {
        self.leases.leases.get(&id).map(|l| l.refreshes)
    }

    /// Expiry decided by a leader that had seen `refreshes` keep-alives of lease `id`:
    /// revokes it unless a keep-alive was applied since (the leader's decision raced a
    /// client's refresh, and the client was told the lease lives). `Ok(None)`: kept.
    pub fn lease_expire(&mut self, id: i64, refreshes: u64) -> Result<Option<i64>, KvError> {
        match self.lease_refreshes(id) {
            None => Err(KvError::LeaseNotFound),
            Some(now) if now != refreshes => Ok(None),
            Some(_) => self.lease_revoke(id).map(Some),
        }
    }

    /// A lease's granted TTL and (if asked) its keys.
    pub fn lease_info(&self, id: i64, keys: bool) -> Result<LeaseInfo, KvError> {
        let lease = self.leases.leases.get(&id).ok_or(KvError::LeaseNotFound)?;
        Ok(LeaseInfo {
            revision: self.revision(),
            id,
            granted_ttl: lease.ttl,
            keys: if keys {
                lease.keys.iter().cloned().collect()
            } else {
                Vec::new()
            },
        })
    }

    /// Every lease's ID, ascending.
    pub fn lease_ids(&self) -> Vec<i64> {
        self.leases.leases.keys().copied().collect()
    }

    /// Whether a lease exists.
    pub fn lease_exists(&self, id: i64) -> bool {
        self.leases.leases.contains_key(&id)
    }

    /// Moves `key` from lease `old` to lease `new` (0: none).
    pub(crate) fn attach(&mut self, key: &[u8], old: i64, new: i64) {
        if old == new {
            return;
        }
        if let Some(lease) = self.leases.leases.get_mut(&old) {
            lease.keys.remove(key);
        }
        if let Some(lease) = self.leases.leases.get_mut(&new) {
            lease.keys.insert(key.to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Put, Range};

    #[test]
    fn an_expiry_decided_before_a_keep_alive_revokes_nothing() {
        let mut s = Store::new();
        let id = s.lease_grant(LeaseGrant { ttl: 5, id: 0 }).unwrap().id;
        let seen = s.lease_refreshes(id).unwrap();
        assert_eq!(s.lease_keep_alive(id), Ok(5));
        assert_eq!(s.lease_expire(id, seen), Ok(None), "kept alive since");
        assert!(s.lease_exists(id));
        let seen = s.lease_refreshes(id).unwrap();
        assert!(s.lease_expire(id, seen).unwrap().is_some());
        assert!(!s.lease_exists(id));
        assert_eq!(s.lease_expire(id, seen), Err(KvError::LeaseNotFound));
        assert_eq!(s.lease_keep_alive(id), Err(KvError::LeaseNotFound));
    }

    #[test]
    fn revoking_a_lease_deletes_its_keys_in_one_revision_and_ids_are_never_reused() {
        let mut s = Store::new();
        let a = s.lease_grant(LeaseGrant { ttl: 1, id: 0 }).unwrap();
        assert_eq!(
            (a.id, a.ttl, a.revision),
            (1, 2, 1),
            "raised to the minimum TTL"
        );
        for key in ["x", "y"] {
            let put = Put {
                key: key.into(),
                value: b"v".to_vec(),
                lease: a.id,
                ..Put::default()
            };
            s.put(&put).unwrap();
        }
        // Re-putting a key without the lease detaches it.
        s.put(&Put {
            key: "y".into(),
            value: b"w".to_vec(),
            ..Put::default()
        })
        .unwrap();
        assert_eq!(s.lease_info(a.id, true).unwrap().keys, vec![b"x".to_vec()]);
        assert_eq!(s.lease_revoke(a.id), Ok(5));
        let all = Range {
            key: vec![0],
            range_end: vec![0],
            ..Range::default()
        };
        let left: Vec<_> = s
            .range(&all)
            .unwrap()
            .kvs
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        assert_eq!(left, vec![b"y".to_vec()]);
        assert_eq!(s.lease_revoke(a.id), Err(KvError::LeaseNotFound));
        let b = s.lease_grant(LeaseGrant { ttl: 10, id: 0 }).unwrap();
        assert_ne!(b.id, a.id, "a revoked lease's ID is not reused");
        assert_eq!(
            s.lease_grant(LeaseGrant { ttl: 10, id: b.id }),
            Err(KvError::LeaseExists)
        );
        assert_eq!(
            s.lease_grant(LeaseGrant {
                ttl: LEASE_TTL_MAX + 1,
                id: 0
            }),
            Err(KvError::LeaseTtlTooLarge)
        );
    }
}
