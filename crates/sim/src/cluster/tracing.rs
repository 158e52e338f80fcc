//! The trace `--trace` writes: each event with its vector clock and its node's state,
//! faults from start to end, and the moment each slot is chosen, which no node sees: the
//! sync that makes a phase-2 quorum's votes for one ballot durable. Kept only when
//! `Options::trace` asks; a run without it never comes here.

use paxos::{AcceptorSet, QuorumSystem};

use super::*;
use crate::trace::{self, Event as Recorded, Fault, Header, Recorder, State};

pub(super) struct Tracing {
    pub(super) recorder: Recorder,
    /// Votes each node appended to its disk since its last sync: slot and ballot.
    unsynced: HashMap<usize, Vec<(Slot, Ballot)>>,
    /// Durable votes: for a slot and ballot, the nodes that hold one.
    votes: HashMap<(Slot, Ballot), Vec<NodeId>>,
    /// Slots whose chosen moment is recorded.
    chosen: BTreeSet<Slot>,
    /// Faults under way, by kind and node (or partition), with their index.
    open: HashMap<(&'static str, usize), usize>,
}

impl Tracing {
    pub(super) fn new(options: &Options) -> Tracing {
        let nodes = (1..=options.nodes + options.spares)
            .map(|id| (id, format!("n{id}")))
            .collect();
        let header = Header {
            source: "cluster".into(),
            seed: options.seed,
            nodes,
        };
        Tracing {
            recorder: Recorder::new(header),
            unsynced: HashMap::new(),
            votes: HashMap::new(),
            chosen: BTreeSet::new(),
            open: HashMap::new(),
        }
    }

    /// `node` crashed: the votes it appended since its last sync are gone.
    pub(super) fn forget_unsynced(&mut self, node: usize) {
        self.unsynced.remove(&node);
    }

    /// The trace, with faults still under way ending at `now` and the clients' history.
    pub(super) fn finish(self, now: u64, history: &[Operation]) -> Result<Trace, String> {
        let mut recorder = self.recorder;
        for index in self.open.into_values() {
            recorder.fault_ends(index, now);
        }
        recorder.finish(history.to_vec())
    }
}

impl World {
    pub(super) fn tracing_mut(&mut self, change: impl FnOnce(&mut Tracing)) {
        if let Some(tracing) = self.tracing.as_deref_mut() {
            change(tracing);
        }
    }

    /// Records `event` with its node's state; returns its index.
    pub(super) fn trace_event(&mut self, event: &TraceEvent) -> usize {
        let state = self
            .node_of(NodeId(event.node))
            .and_then(|node| self.state_of(node, event.slot));
        let mut recorded = Recorded {
            id: event.id,
            message: event.message.map(String::from),
            ballot: event.ballot.map(trace::ballot),
            slot: event.slot,
            peer: event.peer,
            state,
            ..Recorded::new(event.time, event.node, event.what)
        };
        if event.what == "read-ready" {
            // Its peer is the client the read is for, not a node.
            recorded.detail = recorded.peer.take().map(|c| format!("client {c}"));
        }
        let mut index = 0;
        self.tracing_mut(|t| index = t.recorder.record(recorded));
        index
    }

    /// The state of `node`'s member, with its vote for `slot`; none while it is down.
    pub(super) fn state_of(&self, node: usize, slot: Option<Slot>) -> Option<State> {
        let replica = self.nodes[node].member.as_ref()?.replica();
        Some(node::trace::state_of(replica, slot))
    }

    /// `node` appends votes to its disk: they count once a sync covers them.
    pub(super) fn trace_votes(&mut self, node: usize, writes: &[DiskWrite<Payload>]) {
        self.tracing_mut(|t| {
            let unsynced = t.unsynced.entry(node).or_default();
            for write in writes {
                if let DiskWrite::Votes {
                    ballot,
                    first,
                    entries,
                } = write
                {
                    let slots = *first..*first + entries.len() as Slot;
                    unsynced.extend(slots.map(|slot| (slot, *ballot)));
                }
            }
        });
    }

    /// `node`'s disk synced: its votes are durable. A slot whose votes at one ballot now
    /// form a phase-2 quorum (of the node's current configuration) is chosen, here.
    pub(super) fn trace_synced(&mut self, node: usize) {
        let id = self.nodes[node].id;
        let Some(member) = self.nodes[node].member.as_ref() else {
            return;
        };
        let members = member.replica().membership().current().clone();
        let mut chosen = Vec::new();
        self.tracing_mut(|t| {
            for (slot, ballot) in t.unsynced.remove(&node).unwrap_or_default() {
                let voters = t.votes.entry((slot, ballot)).or_default();
                if !voters.contains(&id) {
                    voters.push(id);
                }
                let mut set = AcceptorSet::EMPTY;
                for index in voters.iter().filter_map(|v| members.index_of(*v)) {
                    set.insert(index);
                }
                if members.quorum().is_phase2_quorum(set) && t.chosen.insert(slot) {
                    chosen.push((slot, ballot));
                }
            }
        });
        for (slot, ballot) in chosen {
            let event = TraceEvent {
                time: self.now,
                node: id.0,
                what: "chosen",
                id: None,
                message: None,
                ballot: Some(ballot),
                slot: Some(slot),
                peer: None,
            };
            self.record(event);
        }
    }

    /// A fault of `kind` starts, keyed by `key` (the node, or the partition's number).
    pub(super) fn fault_starts(
        &mut self,
        kind: &'static str,
        key: usize,
        nodes: &[usize],
        detail: Option<String>,
    ) {
        let (now, ids) = (
            self.now,
            nodes.iter().map(|&n| self.nodes[n].id.0).collect(),
        );
        self.tracing_mut(|t| {
            if t.open.contains_key(&(kind, key)) {
                return;
            }
            let fault = Fault {
                kind: kind.into(),
                nodes: ids,
                start: now,
                end: None,
                detail,
            };
            t.open.insert((kind, key), t.recorder.fault_starts(fault));
        });
    }

    /// The fault of `kind` keyed by `key` ends now, if it is under way.
    pub(super) fn fault_ends(&mut self, kind: &'static str, key: usize) {
        let now = self.now;
        self.tracing_mut(|t| {
            if let Some(index) = t.open.remove(&(kind, key)) {
                t.recorder.fault_ends(index, now);
            }
        });
    }

    /// Partition `id` starts: the nodes on either side of a cut link, and the links.
    pub(super) fn partition_starts(&mut self, id: u64) {
        if self.tracing.is_none() {
            return;
        }
        let mut nodes: Vec<usize> = self.cut.iter().flat_map(|&(a, b)| [a, b]).collect();
        nodes.sort_unstable();
        nodes.dedup();
        let links: Vec<String> = self
            .cut
            .iter()
            .map(|&(a, b)| format!("{}>{}", self.nodes[a].id.0, self.nodes[b].id.0))
            .collect();
        self.fault_starts("partition", index(id), &nodes, Some(links.join(" ")));
    }
}
