//! Catch-up: chosen entries fetched from a peer, or its snapshot when they were
//! compacted away.

use super::*;

impl<C: Command, R: RngCore> Shared<C, R> {
    pub(super) fn catch_up_if_behind(&mut self) {
        self.catch_up_elapsed += 1;
        if self.catch_up_elapsed < self.options.heartbeat_ticks.saturating_mul(2) {
            return;
        }
        self.forget_sources_once_joined();
        if !self.sources.is_empty() {
            // Joining: the log's first configurations may have no member left, so ask
            // the members it was told of, in turn, until the log has added it.
            let turn = usize::try_from(self.now).unwrap_or(0) % self.sources.len();
            let peer = self.sources[turn];
            self.request_catch_up(peer);
        } else if self.log.commit() < self.known_commit {
            if let Some(leader) = self.leader.filter(|&l| l != self.id) {
                self.request_catch_up(leader);
            }
        } else if self.highest_seen.epoch() > self.membership.epoch() {
            // A ballot of an epoch we have not learned: a change was chosen that we
            // missed, and its leader may be a member we do not know. Ask the voters we
            // know, in turn, for the log.
            let voters = self.membership.current().replicas();
            let turn = usize::try_from(self.now).unwrap_or(0) % voters.len();
            let peer = voters[turn..]
                .iter()
                .chain(&voters[..turn])
                .find(|&&v| v != self.id);
            if let Some(&peer) = peer {
                self.request_catch_up(peer);
            }
        }
    }

    /// A joining member that the replayed log made a member of its current configuration
    /// needs the members it was told of no more: its roster holds live members now.
    fn forget_sources_once_joined(&mut self) {
        let joined =
            self.membership.is_settled() && self.membership.current().position(self.id).is_some();
        if joined {
            self.sources.clear();
        }
    }

    pub(super) fn request_catch_up(&mut self, peer: NodeId) {
        self.catch_up_elapsed = 0;
        let from = self.log.commit() + 1;
        let ballot = self.promised;
        self.send(peer, Message::CatchUp { ballot, from });
    }

    pub(super) fn on_catch_up(&mut self, peer: NodeId, from: Slot) {
        let ballot = self.promised;
        if from > self.log.compacted() {
            let entries = self.log.chosen_from(from, self.chunk_limit());
            let commit = self.log.commit();
            if !entries.is_empty() {
                let chosen = Message::Chosen {
                    ballot,
                    first: from,
                    entries,
                    commit,
                };
                self.send(peer, chosen);
            }
            return;
        }
        let Some((index, data)) = self.snapshot.clone() else {
            return;
        };
        let membership = self.history.compacted().clone();
        // A snapshot is big: send it again only if the last copy has had time to arrive.
        let Some(member) = self.membership.position(peer) else {
            return;
        };
        let wait = u64::from(self.options.election_ticks);
        if self.snapshot_sent[member].is_some_and(|at| self.now < at + wait) {
            return;
        }
        self.snapshot_sent[member] = Some(self.now);
        self.out.push(Action::SendSnapshot {
            to: peer,
            ballot,
            index,
            membership,
            data,
            chunk_bytes: self.options.snapshot_chunk_bytes,
        });
    }

    /// The log from a peer: chosen entries, or a snapshot's chunk (anything else is
    /// ignored).
    pub(super) fn on_log(&mut self, from: NodeId, message: Message<C>) {
        match message {
            Message::Chosen {
                first,
                entries,
                commit,
                ..
            } => self.on_chosen(from, first, entries, commit),
            Message::Snapshot {
                index,
                membership,
                offset,
                total,
                data,
                ..
            } => self.on_snapshot_chunk(from, index, membership, (offset, total), data),
            _ => {}
        }
    }

    pub(super) fn on_chosen(
        &mut self,
        peer: NodeId,
        first: Slot,
        entries: Vec<LogEntry<C>>,
        commit: Slot,
    ) {
        self.known_commit = self.known_commit.max(commit);
        let start = self.log.commit() + 1;
        if first > start {
            return; // A gap: ask again from where we are.
        }
        let skip = distance(first, start);
        let fresh: Vec<LogEntry<C>> = entries.into_iter().skip(skip).collect();
        if fresh.is_empty() {
            return;
        }
        let through = start + fresh.len() as u64 - 1;
        for (slot, chosen) in (start..).zip(&fresh) {
            let same = self.log.get(slot).is_some_and(|e| e.entry == chosen.entry);
            if !same {
                self.log.set(slot, chosen.clone());
            }
        }
        self.log.commit_through(through);
        self.out.push(Action::Persist(Write::Chosen {
            first: start,
            entries: fresh,
        }));
        self.out.push(Action::CommitHint(through));
        self.apply_committed();
        if self.log.commit() < self.known_commit {
            self.request_catch_up(peer);
        }
    }

    pub(super) fn on_snapshot_chunk(
        &mut self,
        peer: NodeId,
        index: Slot,
        membership: Membership,
        (offset, total): (u64, u64),
        data: Vec<u8>,
    ) {
        if index <= self.log.commit() {
            return;
        }
        let newer = self
            .incoming
            .as_ref()
            .is_none_or(|i| index > i.index || (index == i.index && total != i.total));
        if newer {
            let chunks = BTreeMap::new();
            self.incoming = Some(IncomingSnapshot {
                index,
                total,
                membership,
                chunks,
            });
        }
        let Some(incoming) = &mut self.incoming else {
            return;
        };
        let fits = incoming.index == index
            && offset
                .checked_add(data.len() as u64)
                .is_some_and(|end| end <= total);
        if !fits {
            return; // An older snapshot's chunk, or one that does not fit: ignore it.
        }
        incoming.chunks.entry(offset).or_insert(data);
        let Some(data) = incoming.assemble() else {
            return;
        };
        let data = SnapshotData::from(data);
        let membership = incoming.membership.clone();
        self.incoming = None;
        self.out.push(Action::Persist(Write::Snapshot {
            index,
            membership: membership.clone(),
            data: data.clone(),
        }));
        self.out.push(Action::InstallSnapshot {
            index,
            data: data.clone(),
        });
        self.log.compact(index);
        self.applied = index;
        self.known_commit = self.known_commit.max(index);
        self.snapshot = Some((index, data));
        // Changes applied below the snapshot this event are in its membership already.
        self.chosen_membership.clear();
        #[cfg(feature = "negative-controls")]
        if self.drops_snapshot_membership {
            // Broken on purpose: the snapshot's membership is not taken.
            let own = self.membership.clone();
            self.install_membership(own);
            self.apply_committed();
            return;
        }
        self.install_membership(membership);
        self.apply_committed();
        if self.log.commit() < self.known_commit {
            self.request_catch_up(peer);
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct IncomingSnapshot {
    pub(super) index: Slot,
    pub(super) total: u64,
    /// The membership the snapshot was taken with.
    pub(super) membership: Membership,
    /// Chunks by offset: they may arrive in any order, and more than once.
    pub(super) chunks: BTreeMap<u64, Vec<u8>>,
}

impl IncomingSnapshot {
    /// The whole snapshot, once the chunks cover it end to end.
    pub(super) fn assemble(&mut self) -> Option<Vec<u8>> {
        let mut covered = 0;
        for (&offset, data) in &self.chunks {
            if offset != covered {
                return None;
            }
            covered += data.len() as u64;
        }
        if covered != self.total {
            return None;
        }
        Some(
            mem::take(&mut self.chunks)
                .into_values()
                .flatten()
                .collect(),
        )
    }
}
