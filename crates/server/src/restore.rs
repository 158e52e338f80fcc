//! Restoring a member's data directory from a backup (`etcdctl snapshot save`), for a new
//! cluster, as `etcdctl snapshot restore` does for etcd: every member of the new cluster
//! is restored from the same file and starts with the store it holds.

use std::path::Path;
use std::sync::Arc;

use paxos::multi::{Members, Membership, SnapshotData, Write};
use storage::{DiskOptions, DiskStorage, Identity, Storage};

use crate::api::maintenance::from_backup_file;
use crate::config::Config;
use crate::payload::Payload;

/// The slot the restored snapshot covers: the new cluster's log starts after it.
pub const RESTORED_SLOT: u64 = 1;

/// Writes `config`'s member directory from the backup `file`. Refuses a directory that
/// already holds a log (restoring over a live member would break its promises).
pub fn restore(config: &Config, file: &[u8]) -> Result<kv::Store, String> {
    let snapshot = from_backup_file(file)
        .ok_or("not a Synod backup, or damaged (its SHA-256 or length does not match)")?;
    let store = kv::Store::restore(snapshot).map_err(|e| format!("the backup's store: {e}"))?;
    let me = config.me().map_err(|e| e.to_string())?;
    let dir = config.data_dir.join("member");
    if has_files(&dir) {
        return Err(format!(
            "{} already holds data; restore into a new --data-dir",
            dir.display()
        ));
    }
    let identity = Identity {
        cluster: config.cluster_id,
        member: me.id,
    };
    let disk = DiskStorage::<Payload>::open(&dir, DiskOptions::new(identity))
        .map_err(|e| e.to_string())?;
    let data = SnapshotData::from(snapshot.to_vec());
    // A restored member starts a new cluster: the one its flags name.
    let ids = config.members.iter().map(|m| m.id).collect();
    let members = Members::new(ids, config.quorum).map_err(|e| e.to_string())?;
    let writes = vec![
        Write::Snapshot {
            index: RESTORED_SLOT,
            membership: Membership::new(Arc::new(members)),
            data,
        },
        Write::Commit(RESTORED_SLOT),
    ];
    disk.persist(writes).map_err(|e| e.to_string())?;
    crate::bootstrap::save(&dir, &crate::bootstrap::from_flags(config)?)?;
    Ok(store)
}

fn has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}
