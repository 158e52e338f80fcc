//! Restoring a member's data directory from a backup (`etcdctl snapshot save`, against
//! Synod or against etcd), for a new cluster, as `etcdctl snapshot restore` does for
//! etcd: every member of the new cluster is restored from the same file and starts with
//! the store it holds. An etcd database brings every kept revision, the leases and the
//! compacted revision with it.

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
    let (store, snapshot) = read_backup(config, file)?;
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
    let data = SnapshotData::from(snapshot);
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

/// The store `file` holds (a Synod backup, or an etcd database), and its snapshot bytes.
/// An etcd database is told by its bbolt magic; `etcdctl snapshot save` appends its
/// SHA-256, a database copied from a member's directory (`member/snap/db`) has none.
fn read_backup(config: &Config, file: &[u8]) -> Result<(kv::Store, Vec<u8>), String> {
    if crate::etcd_db::looks_like_bbolt(file) {
        let database = etcd_database(file);
        let min_ttl = crate::server::min_lease_ttl(config.election_timeout);
        let store = crate::etcd_db::read(database, min_ttl)
            .map_err(|e| format!("an etcd database that cannot be read: {e}"))?;
        let mut snapshot = Vec::new();
        store
            .write_snapshot(&mut snapshot)
            .map_err(|e| e.to_string())?;
        return Ok((store, snapshot));
    }
    let snapshot = from_backup_file(file).ok_or(
        "neither a Synod backup nor an etcd database, or damaged (its SHA-256 or length \
         does not match)",
    )?;
    let store = kv::Store::restore(snapshot).map_err(|e| format!("the backup's store: {e}"))?;
    Ok((store, snapshot.to_vec()))
}

/// The database in an etcd snapshot file: without the SHA-256 `etcdctl snapshot save`
/// appends, if it has one that matches.
fn etcd_database(file: &[u8]) -> &[u8] {
    use sha2::Digest;
    let Some((database, digest)) = file.split_at_checked(file.len().saturating_sub(32)) else {
        return file;
    };
    match sha2::Sha256::digest(database).as_slice() == digest {
        true => database,
        false => file,
    }
}

fn has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}
