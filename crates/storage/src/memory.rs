//! The contract in memory: every `persist` is durable at once, and survives as long as
//! the value does. For tests, and for embedding the engine where durability is elsewhere.

use std::sync::{Mutex, PoisonError};

use paxos::multi::{Durable, Write};

use crate::state::State;
use crate::{Storage, StorageError};

/// Storage in memory.
#[derive(Debug, Default)]
pub struct MemoryStorage<C> {
    state: Mutex<State<C>>,
}

impl<C: Clone> MemoryStorage<C> {
    /// Empty storage.
    pub fn new() -> MemoryStorage<C> {
        MemoryStorage {
            state: Mutex::new(State::default()),
        }
    }

    /// A copy that starts where this one is: a restart that lost nothing.
    pub fn reopen(&self) -> MemoryStorage<C> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        MemoryStorage {
            state: Mutex::new(state),
        }
    }
}

impl<C: Clone> Storage<C> for MemoryStorage<C> {
    fn recovered(&self) -> Result<Durable<C>, StorageError> {
        Ok(self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .durable())
    }

    fn persist(&self, writes: Vec<Write<C>>) -> Result<(), StorageError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for write in writes {
            state.apply(write);
        }
        Ok(())
    }
}
