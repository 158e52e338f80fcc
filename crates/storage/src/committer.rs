//! Group commit on a dedicated thread, for callers that are tasks rather than threads
//! (the server's requests): submissions queue up while a sync runs, and the next sync
//! carries all of them, in one write and one fdatasync. Each caller hears back through
//! the callback it gave, with its own number, only once its writes are durable.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use paxos::multi::Write;

use crate::{Storage, StorageError};

/// What the committer answers: the caller's tag, and whether its writes are durable.
pub type Completion = (u64, Result<(), StorageError>);

/// What the committer calls, on its own thread, once a submission is durable or failed.
pub type Notify = Box<dyn FnOnce(Completion) + Send>;

struct Request<C> {
    writes: Vec<Write<C>>,
    tag: u64,
    reply: Notify,
}

/// The most submissions one sync carries.
const BATCH_MAX: usize = 4096;

/// A group-commit thread in front of a [`Storage`].
#[derive(Debug)]
pub struct Committer<C> {
    requests: Option<Sender<Request<C>>>,
    thread: Option<JoinHandle<()>>,
}

impl<C: Send + Sync + 'static> Committer<C> {
    /// Starts the thread.
    pub fn start<S: Storage<C> + Send + Sync + 'static>(storage: Arc<S>) -> Committer<C> {
        let (requests, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("synod-committer".into())
            .spawn(move || commit_loop(&*storage, &queue))
            .ok();
        Committer {
            requests: Some(requests),
            thread,
        }
    }

    /// Queues `writes`; `reply` gets `(tag, result)` once they are durable (or failed).
    /// Returns false if the committer has stopped.
    pub fn submit(&self, writes: Vec<Write<C>>, tag: u64, reply: Notify) -> bool {
        let request = Request { writes, tag, reply };
        self.requests
            .as_ref()
            .is_some_and(|requests| requests.send(request).is_ok())
    }
}

impl<C> Drop for Committer<C> {
    fn drop(&mut self) {
        self.requests = None; // Closes the queue: the thread finishes what it has.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn commit_loop<C, S: Storage<C>>(storage: &S, queue: &Receiver<Request<C>>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match queue.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let mut writes = Vec::new();
        let mut answers = Vec::with_capacity(batch.len());
        for request in batch {
            writes.extend(request.writes);
            answers.push((request.tag, request.reply));
        }
        let result = storage.persist(writes);
        for (tag, reply) in answers {
            reply((tag, result.as_ref().map(|_| ()).map_err(copy)));
        }
    }
}

/// The same error again, for each caller a failed sync covered.
fn copy(error: &StorageError) -> StorageError {
    match error {
        StorageError::Io { path, error } => StorageError::Io {
            path: path.clone(),
            error: std::io::Error::new(error.kind(), error.to_string()),
        },
        StorageError::Full { path } => StorageError::Full { path: path.clone() },
        StorageError::Injected => StorageError::Injected,
        other => StorageError::Io {
            path: std::path::PathBuf::new(),
            error: std::io::Error::other(other.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FaultyStorage, Storage};
    use paxos::multi::{Durable, Entry};
    use paxos::{Ballot, NodeId};

    #[test]
    fn every_submission_is_answered_once_durable_and_failures_reach_their_callers() {
        let storage = Arc::new(FaultyStorage::new());
        let committer = Committer::start(storage.clone());
        let (reply, answers) = mpsc::channel();
        let notify = |reply: &Sender<Completion>| -> Notify {
            let reply = reply.clone();
            Box::new(move |completion| {
                let _ = reply.send(completion);
            })
        };
        for tag in 1..=100u64 {
            let write = Write::Votes {
                ballot: Ballot::new(1, NodeId(1)),
                first: tag,
                entries: vec![Entry::Command(tag)].into(),
            };
            assert!(committer.submit(vec![write], tag, notify(&reply)));
        }
        let mut tags: Vec<u64> = (0..100).map(|_| answers.recv().unwrap().0).collect();
        tags.sort_unstable();
        assert_eq!(tags, (1..=100).collect::<Vec<_>>());
        let durable: Durable<u64> = storage.recovered().unwrap();
        assert_eq!(durable.votes.len(), 100);
        storage.fail_after(0);
        committer.submit(vec![Write::<u64>::Commit(1)], 7, notify(&reply));
        assert!(matches!(
            answers.recv().unwrap(),
            (7, Err(StorageError::Injected))
        ));
    }
}
