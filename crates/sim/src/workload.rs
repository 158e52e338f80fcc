//! The simulated clients' workload in etcd's terms, applied by the very state machine a
//! Synod member runs (`server::machine::EtcdMachine`): puts, compare-and-set transactions
//! and deletes on a few keys, each value unique so a read names the write it saw. A key
//! `k` is stored as the bytes `k`, `key`; a value as 8 little-endian bytes. The lease
//! keeper's requests (grants, a put attached to the lease, keep-alives) are etcd's too.
//!
//! The simulator also watches the machine: [`Watched`] wraps it, unchanged, and records
//! what every member applied at each slot, the state's hash every few slots, and the
//! leases its applies expired, for the checkers.

use node::{Answer, Context, StateMachine};
use paxos::multi::{Entry, Slot, SnapshotData};
use paxos::NodeId;
use server::machine::{Applied, EtcdMachine};
use server::payload::Payload;
use server::proto::etcdserverpb as pb;
use server::proto::synodpb::command::Op;

/// A key: one of a small set, so operations collide.
pub type Key = u8;
/// A value: unique per write, so a read names the write it saw.
pub type Value = u64;

/// A write a client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Key,
        /// The value.
        value: Value,
    },
    /// Set `key` to `value` if it holds `expect` (`None`: if absent).
    Cas {
        /// The key.
        key: Key,
        /// The value required.
        expect: Option<Value>,
        /// The value written.
        value: Value,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: Key,
    },
}

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A put or delete took effect.
    Done,
    /// A compare-and-set took effect (`true`) or found another value (`false`).
    Cas(bool),
    /// A lease was granted: its id and TTL in seconds.
    Granted {
        /// The lease's id.
        lease: i64,
        /// Its TTL in seconds.
        ttl: i64,
    },
    /// A keep-alive's answer: the lease's TTL in seconds, 0 if it no longer exists.
    Alive(i64),
    /// The state machine refused the write (never for the simulator's requests; the
    /// simulator reports it as a failure).
    Refused(String),
}

/// What the simulator's lease keeper asks (see `cluster/keeper.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseAsk {
    /// A new lease of [`LEASE_TTL_S`].
    Grant,
    /// Put the keeper's key, attached to `lease`.
    Attach(i64),
    /// Keep `lease` alive.
    KeepAlive(i64),
}

/// The TTL of the keeper's leases, in seconds (etcd's unit).
pub const LEASE_TTL_S: i64 = 1;

/// `ask` as the etcd request a client would send.
pub fn lease_op(ask: LeaseAsk) -> Op {
    match ask {
        LeaseAsk::Grant => Op::LeaseGrant(pb::LeaseGrantRequest {
            ttl: LEASE_TTL_S,
            id: 0,
        }),
        LeaseAsk::Attach(lease) => Op::Put(pb::PutRequest {
            key: b"leased".to_vec(),
            value: lease.to_le_bytes().to_vec(),
            lease,
            ..pb::PutRequest::default()
        }),
        LeaseAsk::KeepAlive(id) => Op::LeaseKeepAlive(pb::LeaseKeepAliveRequest { id }),
    }
}

fn key_bytes(key: Key) -> Vec<u8> {
    vec![b'k', key]
}

/// `write` as the etcd request a client would send.
pub fn op(write: Write) -> Op {
    let put = |key, value: Value| pb::PutRequest {
        key: key_bytes(key),
        value: value.to_le_bytes().to_vec(),
        ..pb::PutRequest::default()
    };
    match write {
        Write::Put { key, value } => Op::Put(put(key, value)),
        Write::Cas { key, expect, value } => {
            let (target, target_union) = match expect {
                Some(v) => (
                    pb::compare::CompareTarget::Value,
                    pb::compare::TargetUnion::Value(v.to_le_bytes().to_vec()),
                ),
                None => (
                    pb::compare::CompareTarget::Version,
                    pb::compare::TargetUnion::Version(0),
                ),
            };
            let compare = pb::Compare {
                result: pb::compare::CompareResult::Equal as i32,
                target: target as i32,
                key: key_bytes(key),
                range_end: Vec::new(),
                target_union: Some(target_union),
            };
            let success = pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(put(key, value))),
            };
            Op::Txn(pb::TxnRequest {
                compare: vec![compare],
                success: vec![success],
                failure: Vec::new(),
            })
        }
        Write::Delete { key } => Op::DeleteRange(pb::DeleteRangeRequest {
            key: key_bytes(key),
            ..pb::DeleteRangeRequest::default()
        }),
    }
}

/// What the machine's answer to a write says it did.
pub fn outcome(output: &Result<Applied, tonic::Status>) -> Outcome {
    match output {
        Ok(Applied::Txn(r)) => Outcome::Cas(r.succeeded),
        Ok(Applied::Put(_) | Applied::Delete(_)) => Outcome::Done,
        Ok(Applied::LeaseGrant(r)) => Outcome::Granted {
            lease: r.id,
            ttl: r.ttl,
        },
        Ok(Applied::KeepAlive(r)) => Outcome::Alive(r.ttl),
        Ok(other) => Outcome::Refused(format!("unexpected answer {other:?}")),
        Err(status) => Outcome::Refused(status.message().to_owned()),
    }
}

/// The value of `key` in `store`.
pub fn get(store: &kv::Store, key: Key) -> Option<Value> {
    let range = kv::Range {
        key: key_bytes(key),
        ..kv::Range::default()
    };
    let kvs = store.range(&range).ok()?.kvs;
    let bytes: [u8; 8] = kvs.first()?.value.as_slice().try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// The lease a command expires, if it is a lease expiry.
fn expiring_lease(command: &Payload) -> Option<i64> {
    use prost::Message as _;
    let command = server::proto::synodpb::Command::decode(&command.0[..]).ok()?;
    match command.op? {
        Op::LeaseExpire(expire) => Some(expire.id),
        _ => None,
    }
}

/// The state's hash is sampled every this many slots.
pub const HASH_EVERY: Slot = 16;

/// The member's state machine, unchanged, with what it applied written down.
#[derive(Debug)]
pub struct Watched {
    /// The machine a server runs.
    pub inner: EtcdMachine,
    /// What was applied at each slot since the last look.
    pub applied: Vec<(Slot, Entry<Payload>)>,
    /// The state's hash after each slot that is a multiple of [`HASH_EVERY`].
    pub hashes: Vec<(Slot, u64)>,
    /// Answers the machine refused, with the slot.
    pub refused: Vec<(Slot, String)>,
    /// The leases this member's applies expired, with the time of the apply.
    pub expired: Vec<(i64, std::time::Duration)>,
    /// A negative control: this member's state drifts from the log (an extra write on
    /// every seventh slot) while it applies the same entries as every other.
    pub drifts: bool,
}

impl Watched {
    /// A member's machine from its snapshot's bytes (none: an empty store).
    pub fn restore(bytes: &[u8], cluster_id: u64) -> Result<Watched, kv::SnapshotError> {
        let store = if bytes.is_empty() {
            kv::Store::default()
        } else {
            kv::Store::restore(bytes)?
        };
        Ok(Watched {
            inner: EtcdMachine::new(cluster_id, store, u64::MAX, None),
            applied: Vec::new(),
            hashes: Vec::new(),
            refused: Vec::new(),
            expired: Vec::new(),
            drifts: false,
        })
    }

    fn lease_exists(&self, id: i64) -> bool {
        self.inner.store().lease_info(id, false).is_ok()
    }

    fn sample(&mut self, slot: Slot) {
        if slot % HASH_EVERY == 0 {
            self.hashes.push((slot, self.inner.hash()));
        }
    }
}

impl StateMachine for Watched {
    type Op = Op;
    type Command = Payload;
    type Output = Result<Applied, tonic::Status>;
    type View = <EtcdMachine as StateMachine>::View;

    fn view(&self, at: &Context) -> Self::View {
        self.inner.view(at)
    }

    fn command(&self, origin: NodeId, id: u64, op: Op) -> Payload {
        self.inner.command(origin, id, op)
    }

    fn barrier(&self, origin: NodeId, id: u64) -> Payload {
        self.inner.barrier(origin, id)
    }

    fn apply(
        &mut self,
        slot: Slot,
        command: &Payload,
        at: &Context,
    ) -> Option<Answer<Self::Output>> {
        self.applied.push((slot, Entry::Command(command.clone())));
        let expiring = expiring_lease(command).filter(|&id| self.lease_exists(id));
        let answer = self.inner.apply(slot, command, at);
        if let Some(id) = expiring.filter(|&id| !self.lease_exists(id)) {
            self.expired.push((id, at.now));
        }
        if self.drifts && slot % 7 == 0 {
            let stray = kv::Put {
                key: b"stray".to_vec(),
                ..kv::Put::default()
            };
            let _ = self.inner.store_mut().put(&stray);
        }
        if let Some(Answer {
            output: Err(status),
            ..
        }) = &answer
        {
            self.refused.push((slot, status.message().to_owned()));
        }
        self.sample(slot);
        answer
    }

    fn noop(&mut self, slot: Slot) {
        self.applied.push((slot, Entry::Noop));
        self.sample(slot);
    }

    fn membership_changed(&mut self, slot: Slot, entry: &Entry<Payload>) {
        self.applied.push((slot, entry.clone()));
        self.sample(slot);
    }

    fn restore(&mut self, data: &SnapshotData, at: &Context) -> Result<(), String> {
        self.inner.restore(data, at)
    }

    fn tick(&mut self, at: &Context) -> Vec<Op> {
        self.inner.tick(at)
    }

    fn hash(&self) -> u64 {
        self.inner.hash()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn context() -> Context {
        Context {
            me: NodeId(1),
            now: Duration::ZERO,
            round: 1,
            leading: true,
            leader_known: true,
        }
    }

    fn apply(machine: &mut Watched, slot: Slot, write: Write) -> Outcome {
        let command = machine.command(NodeId(1), slot, op(write));
        let answer = machine.apply(slot, &command, &context());
        outcome(&answer.expect("answers its request").output)
    }

    #[test]
    fn writes_apply_as_etcd_requests_and_snapshots_restore() {
        let mut m = Watched::restore(&[], 1).expect("empty");
        assert_eq!(
            apply(&mut m, 1, Write::Put { key: 1, value: 10 }),
            Outcome::Done
        );
        let cas = |expect, value| Write::Cas {
            key: 1,
            expect,
            value,
        };
        assert_eq!(apply(&mut m, 2, cas(Some(9), 11)), Outcome::Cas(false));
        assert_eq!(apply(&mut m, 3, cas(Some(10), 11)), Outcome::Cas(true));
        assert_eq!(
            apply(&mut m, 4, Write::Put { key: 2, value: 20 }),
            Outcome::Done
        );
        assert_eq!(apply(&mut m, 5, Write::Delete { key: 2 }), Outcome::Done);
        assert_eq!(apply(&mut m, 6, cas(None, 21)), Outcome::Cas(false));
        let absent = Write::Cas {
            key: 2,
            expect: None,
            value: 22,
        };
        assert_eq!(apply(&mut m, 7, absent), Outcome::Cas(true));
        assert_eq!(get(m.inner.store(), 1), Some(11));
        assert_eq!(get(m.inner.store(), 2), Some(22));
        let copy = Watched::restore(&m.inner.store().snapshot(), 1).expect("restores");
        assert_eq!(copy.hash(), m.hash());
        assert_eq!(m.applied.len(), 7);
    }
}
