//! Differential test against real etcd: one seeded random sequence of puts, ranges,
//! deletes and compactions on a small key space goes to a fresh etcd (through etcdctl)
//! and to the store; every answer must match: header revision, every key-value field,
//! count, more, deleted, previous key-values, and the exact error text.
//!
//! Needs etcd 3.4: `scripts/etcd-ref` starts it, installing Debian's package when it is
//! missing and the test runs as root. Seed and length: `SYNOD_DIFF_SEED`, `SYNOD_DIFF_OPS`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]

use std::path::PathBuf;
use std::process::Command;

use kv::{
    Compare, DeleteRange, KeyValue, Put, Range, Relation, RequestOp, ResponseOp, SortOrder,
    SortTarget, Store, Target, Txn, TxnResponse,
};
use rand_core::{RngCore, SeedableRng};
use serde_json::Value;

struct Etcd {
    dir: PathBuf,
    endpoint: String,
}

impl Etcd {
    fn start() -> Etcd {
        let dir = std::env::temp_dir().join(format!("synod-etcd-diff-{}", std::process::id()));
        let out = Command::new(script())
            .args(["start", dir.to_str().unwrap(), "1"])
            .output()
            .expect("scripts/etcd-ref runs");
        assert!(
            out.status.success(),
            "cannot start the reference etcd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let endpoint = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        Etcd { dir, endpoint }
    }

    /// Runs `etcdctl ARGS -w json`: the JSON answer, or etcd's error message.
    fn run(&self, args: &[String]) -> Result<Value, String> {
        self.run_with_input(args, "")
    }

    fn run_with_input(&self, args: &[String], input: &str) -> Result<Value, String> {
        use std::io::Write as _;
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint))
            .args(["-w", "json"])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("etcdctl runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().expect("etcdctl finishes");
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            return Ok(serde_json::from_str(text.trim()).unwrap_or(Value::Null));
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().find_map(|l| l.strip_prefix("Error: "));
        Err(line.unwrap_or(&err).trim().to_owned())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", self.dir.to_str().unwrap()])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/etcd-ref")
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
        for _ in chunk.len()..3 {
            out.push('=');
        }
    }
    out
}

/// A key-value as etcdctl's JSON prints it (zero fields omitted).
fn kv_json(kv: &KeyValue) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("key".into(), b64(&kv.key).into());
    for (name, n) in [
        ("create_revision", kv.create_revision),
        ("mod_revision", kv.mod_revision),
        ("version", kv.version),
        ("lease", kv.lease),
    ] {
        if n != 0 {
            o.insert(name.into(), n.into());
        }
    }
    if !kv.value.is_empty() {
        o.insert("value".into(), b64(&kv.value).into());
    }
    Value::Object(o)
}

fn header_revision(v: &Value) -> i64 {
    v["header"]["revision"].as_i64().unwrap_or(0)
}

fn list(v: &Value, field: &str) -> Vec<Value> {
    v[field].as_array().cloned().unwrap_or_default()
}

struct Gen(rand_pcg::Pcg64);

impl Gen {
    fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n
    }
    fn chance(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    fn key(&mut self) -> Vec<u8> {
        const KEYS: [&str; 6] = ["a", "a/1", "a/2", "b", "b/1", "c"];
        KEYS[self.below(6) as usize].as_bytes().to_vec()
    }
}

#[test]
fn the_store_answers_exactly_as_etcd_does() {
    let seed: u64 = std::env::var("SYNOD_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let ops: usize = std::env::var("SYNOD_DIFF_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    println!("differential test against etcd: seed {seed}, {ops} operations");
    let etcd = Etcd::start();
    let mut store = Store::new();
    let mut g = Gen(rand_pcg::Pcg64::seed_from_u64(seed));
    let mut value = 0;
    // Lease IDs are the server's choice: ours ↔ etcd's.
    let mut leases: Vec<(i64, i64)> = Vec::new();
    // Every pair ever granted: historical reads still name revoked leases.
    let mut renames: Vec<(i64, i64)> = Vec::new();
    for step in 0..ops {
        let key = g.key();
        let key_text = String::from_utf8(key.clone()).unwrap();
        let mut args: Vec<String> = Vec::new();
        let (ours, theirs) = match g.below(12) {
            10 => {
                let result = lease_op(&mut g, &etcd, &mut store, &mut leases, &mut args);
                for pair in &leases {
                    if !renames.contains(pair) {
                        renames.push(*pair);
                    }
                }
                result
            }
            11 if !leases.is_empty() => {
                value += 1;
                let (our_id, their_id) = leases[g.below(leases.len() as u64) as usize];
                let put = Put {
                    key: key.clone(),
                    value: format!("v{value}").into_bytes(),
                    lease: our_id,
                    ..Put::default()
                };
                args = vec![
                    "put".into(),
                    key_text,
                    format!("v{value}"),
                    format!("--lease={their_id:x}"),
                ];
                let ours = store
                    .put(&put)
                    .map(|r| serde_json::json!({ "revision": r.revision }));
                let theirs = etcd
                    .run(&args)
                    .map(|v| serde_json::json!({ "revision": header_revision(&v) }));
                (ours, theirs)
            }
            0..=3 => {
                value += 1;
                let ignore_value = g.chance(8);
                let put = Put {
                    key: key.clone(),
                    value: if ignore_value {
                        vec![]
                    } else {
                        format!("v{value}").into_bytes()
                    },
                    prev_kv: g.chance(2),
                    ignore_value,
                    ..Put::default()
                };
                args = vec!["put".into(), key_text];
                if !ignore_value {
                    args.push(format!("v{value}"));
                }
                if put.prev_kv {
                    args.push("--prev-kv".into());
                }
                if ignore_value {
                    args.push("--ignore-value".into());
                }
                let ours = store.put(&put).map(|r| {
                    let mut o = serde_json::json!({ "revision": r.revision });
                    if let Some(prev) = r.prev_kv {
                        o["prev_kv"] = kv_json(&prev);
                    }
                    o
                });
                let theirs = etcd.run(&args).map(|v| {
                    let mut o = serde_json::json!({ "revision": header_revision(&v) });
                    if !v["prev_kv"].is_null() {
                        o["prev_kv"] = v["prev_kv"].clone();
                    }
                    o
                });
                (ours, theirs)
            }
            7 => {
                let (txn, script) = random_txn(&mut g, &store, &mut value);
                args = vec!["txn".into(), format!("<<{}>>", script.replace('\n', "|"))];
                let ours = store.txn(&txn).map(|r| txn_json(&r));
                let theirs = etcd
                    .run_with_input(&["txn".to_string()], &script)
                    .map(|v| normalize_txn(&v));
                (ours, theirs)
            }
            4..=6 => {
                let mut range = Range {
                    key: key.clone(),
                    ..Range::default()
                };
                args = vec!["get".into(), key_text.clone()];
                match g.below(4) {
                    0 => {
                        range.range_end = vec![key[0] + 1];
                        args.push(String::from_utf8(range.range_end.clone()).unwrap());
                    }
                    1 => {
                        let mut end = key.clone();
                        *end.last_mut().unwrap() += 1;
                        range.range_end = end;
                        args.push("--prefix".into());
                    }
                    2 => {
                        range.range_end = vec![0];
                        args.push("--from-key".into());
                    }
                    _ => {}
                }
                if g.chance(3) {
                    range.revision = g.below(store.revision() as u64 + 3) as i64;
                    args.push(format!("--rev={}", range.revision));
                }
                if g.chance(3) {
                    range.limit = 1 + g.below(3) as i64;
                    args.push(format!("--limit={}", range.limit));
                }
                if g.chance(3) {
                    let (target, name) = [
                        (SortTarget::Key, "KEY"),
                        (SortTarget::Version, "VERSION"),
                        (SortTarget::Create, "CREATE"),
                        (SortTarget::Mod, "MODIFY"),
                        (SortTarget::Value, "VALUE"),
                    ][g.below(5) as usize];
                    range.sort_target = target;
                    args.push(format!("--sort-by={name}"));
                    if g.chance(2) {
                        let (order, name) = [
                            (SortOrder::Ascend, "ASCEND"),
                            (SortOrder::Descend, "DESCEND"),
                        ][g.below(2) as usize];
                        // etcd's client drops an ascending order on the key target.
                        if (target, order) != (SortTarget::Key, SortOrder::Ascend) {
                            range.sort_order = order;
                        }
                        args.push(format!("--order={name}"));
                    }
                }
                if g.chance(6) {
                    range.keys_only = true;
                    args.push("--keys-only".into());
                }
                // etcdctl 3.4 has no flags for count_only or the revision filters; they
                // are covered by unit tests until the gRPC server runs this test.
                let ours = store.range(&range).map(|r| {
                    let kvs: Vec<Value> = r.kvs.iter().map(kv_json).collect();
                    serde_json::json!({"revision": r.revision, "kvs": kvs, "more": r.more, "count": r.count})
                });
                let theirs = etcd.run(&args).map(|v| {
                    serde_json::json!({
                        "revision": header_revision(&v),
                        "kvs": list(&v, "kvs"),
                        "more": v["more"].as_bool().unwrap_or(false),
                        "count": v["count"].as_i64().unwrap_or(0),
                    })
                });
                (ours, theirs)
            }
            8 => {
                let mut delete = DeleteRange {
                    key: key.clone(),
                    prev_kv: g.chance(2),
                    ..DeleteRange::default()
                };
                args = vec!["del".into(), key_text];
                if g.chance(2) {
                    let mut end = key.clone();
                    *end.last_mut().unwrap() += 1;
                    delete.range_end = end;
                    args.push("--prefix".into());
                }
                if delete.prev_kv {
                    args.push("--prev-kv".into());
                }
                let ours = store.delete_range(&delete).map(|r| {
                    let prev: Vec<Value> = r.prev_kvs.iter().map(kv_json).collect();
                    serde_json::json!({"revision": r.revision, "deleted": r.deleted, "prev_kvs": prev})
                });
                let theirs = etcd.run(&args).map(|v| {
                    serde_json::json!({
                        "revision": header_revision(&v),
                        "deleted": v["deleted"].as_i64().unwrap_or(0),
                        "prev_kvs": list(&v, "prev_kvs"),
                    })
                });
                (ours, theirs)
            }
            _ => {
                let revision = 1 + g.below(store.revision() as u64 + 1) as i64;
                args = vec!["compaction".into(), revision.to_string()];
                let ours = store
                    .compact(kv::Compaction { revision })
                    .map(|_| Value::Null);
                let theirs = etcd.run(&args).map(|_| Value::Null);
                (ours, theirs)
            }
        };
        let ours = ours
            .map(|mut v| {
                rename_leases(&mut v, &renames);
                v
            })
            .map_err(|e| e.message().to_owned());
        assert_eq!(
            ours,
            theirs,
            "step {step} (seed {seed}): etcdctl {}",
            args.join(" ")
        );
    }
    for _ in 0..4 {
        compare_watch(&mut g, &etcd, &store, &renames, seed);
    }
    for revision in [
        0,
        store.compacted(),
        store.compacted() + 1,
        store.revision(),
        store.revision() + 1,
    ] {
        let args = vec![
            "endpoint".to_string(),
            "hashkv".into(),
            format!("--rev={revision}"),
        ];
        let ours = store
            .hash_kv(revision)
            .map(|h| serde_json::json!({"hash": h.hash, "compact": h.compact_revision}))
            .map_err(|e| e.message().to_owned());
        let theirs = etcd.run(&args).map(|v| {
            let h = &v[0]["HashKV"];
            serde_json::json!({
                "hash": h["hash"].as_u64().unwrap_or(0),
                "compact": h["compact_revision"].as_i64().unwrap_or(0),
            })
        });
        assert_eq!(ours, theirs, "hashkv (seed {seed}) at revision {revision}");
    }
}

/// One watch from a past revision, on etcd (for half a second: the past events arrive at
/// once) and on the store; the events, or the compaction answer, must match.
fn compare_watch(g: &mut Gen, etcd: &Etcd, store: &Store, renames: &[(i64, i64)], seed: u64) {
    let key = g.key();
    let prefix = g.chance(2);
    let mut end = key.clone();
    *end.last_mut().unwrap() += 1;
    let start = (store.compacted() - 1 + g.below(6) as i64).max(1);
    let watch = kv::Watch {
        key: key.clone(),
        range_end: if prefix { end } else { Vec::new() },
        start_revision: start,
        prev_kv: g.chance(2),
        ..kv::Watch::default()
    };
    let mut args = vec![
        "watch".to_string(),
        format!("--rev={start}"),
        String::from_utf8(key).unwrap(),
        "-w".into(),
        "json".into(),
    ];
    if prefix {
        args.push("--prefix".into());
    }
    if watch.prev_kv {
        args.push("--prev-kv".into());
    }
    let out = Command::new("timeout")
        .args(["0.5", "etcdctl"])
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", etcd.endpoint))
        .args(&args)
        .output()
        .expect("etcdctl watch runs");
    let mut theirs_events = Vec::new();
    let mut theirs_compacted = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        theirs_compacted = theirs_compacted.max(v["CompactRevision"].as_i64().unwrap_or(0));
        theirs_events.extend(list(&v, "Events"));
    }
    let theirs = if theirs_compacted > 0 {
        Err(theirs_compacted)
    } else {
        Ok(Value::Array(theirs_events))
    };
    let ours = store
        .watch_events(&watch)
        .map(|events| {
            let mut v = Value::Array(
                events
                    .iter()
                    .map(|e| {
                        let mut o = serde_json::json!({ "kv": kv_json(&e.kv) });
                        if e.kind == kv::EventKind::Delete {
                            o["type"] = 1.into();
                        }
                        if let Some(prev) = &e.prev_kv {
                            o["prev_kv"] = kv_json(prev);
                        }
                        o
                    })
                    .collect(),
            );
            rename_leases(&mut v, renames);
            v
        })
        .map_err(|c| c.compact_revision);
    assert_eq!(
        ours,
        theirs,
        "watch (seed {seed}): etcdctl {}",
        args.join(" ")
    );
}

/// A random transaction on the small key space, and the same as etcdctl's `txn` input.
fn random_txn(g: &mut Gen, store: &Store, value: &mut u64) -> (Txn, String) {
    let mut txn = Txn::default();
    let mut script = String::new();
    for _ in 0..g.below(3) {
        let key = g.key();
        let name = String::from_utf8(key.clone()).unwrap();
        let (relation, symbol) = [
            (Relation::Equal, "="),
            (Relation::NotEqual, "!="),
            (Relation::Less, "<"),
            (Relation::Greater, ">"),
        ][g.below(4) as usize];
        let n = g.below(store.revision() as u64 + 2) as i64;
        let (target, field, operand) = match g.below(4) {
            0 => {
                let v = format!("v{}", g.below(*value + 2));
                (Target::Value(v.clone().into_bytes()), "val", v)
            }
            1 => (Target::Version(n % 4), "ver", (n % 4).to_string()),
            2 => (Target::Create(n), "create", n.to_string()),
            _ => (Target::Mod(n), "mod", n.to_string()),
        };
        script.push_str(&format!("{field}(\"{name}\") {symbol} \"{operand}\"\n"));
        txn.compare.push(Compare {
            relation,
            target,
            key,
            range_end: Vec::new(),
        });
    }
    script.push('\n');
    for branch in 0..2 {
        let mut ops = Vec::new();
        for _ in 0..g.below(4) {
            let key = g.key();
            let name = String::from_utf8(key.clone()).unwrap();
            let mut end = key.clone();
            *end.last_mut().unwrap() += 1;
            let prefix = g.chance(3);
            let (op, line) = match g.below(3) {
                0 => {
                    *value += 1;
                    let v = format!("v{value}");
                    let put = Put {
                        key,
                        value: v.clone().into_bytes(),
                        ..Put::default()
                    };
                    (RequestOp::Put(put), format!("put {name} {v}"))
                }
                1 => {
                    let range = Range {
                        key,
                        range_end: if prefix { end } else { Vec::new() },
                        ..Range::default()
                    };
                    let flag = if prefix { " --prefix" } else { "" };
                    (RequestOp::Range(range), format!("get {name}{flag}"))
                }
                _ => {
                    let delete = DeleteRange {
                        key,
                        range_end: if prefix { end } else { Vec::new() },
                        ..DeleteRange::default()
                    };
                    let flag = if prefix { " --prefix" } else { "" };
                    (RequestOp::DeleteRange(delete), format!("del {name}{flag}"))
                }
            };
            script.push_str(&line);
            script.push('\n');
            ops.push(op);
        }
        script.push('\n');
        if branch == 0 {
            txn.success = ops;
        } else {
            txn.failure = ops;
        }
    }
    (txn, script)
}

/// A transaction's answer in a shape both sides can be brought to.
fn txn_json(r: &TxnResponse) -> Value {
    let responses: Vec<Value> = r
        .responses
        .iter()
        .map(|op| match op {
            ResponseOp::Range(x) => serde_json::json!({
                "kind": "range", "revision": x.revision, "count": x.count, "more": x.more,
                "kvs": x.kvs.iter().map(kv_json).collect::<Vec<_>>(),
            }),
            ResponseOp::Put(x) => serde_json::json!({"kind": "put", "revision": x.revision}),
            ResponseOp::DeleteRange(x) => serde_json::json!({
                "kind": "delete", "revision": x.revision, "deleted": x.deleted,
            }),
            ResponseOp::Txn(_) => serde_json::json!({"kind": "txn"}),
        })
        .collect();
    serde_json::json!({"revision": r.revision, "succeeded": r.succeeded, "responses": responses})
}

fn normalize_txn(v: &Value) -> Value {
    let responses: Vec<Value> = list(v, "responses")
        .iter()
        .map(|op| {
            let op = &op["Response"];
            if let Some(x) = op.get("ResponseRange") {
                serde_json::json!({
                    "kind": "range", "revision": header_revision(x),
                    "count": x["count"].as_i64().unwrap_or(0),
                    "more": x["more"].as_bool().unwrap_or(false), "kvs": list(x, "kvs"),
                })
            } else if let Some(x) = op.get("ResponsePut") {
                serde_json::json!({"kind": "put", "revision": header_revision(x)})
            } else if let Some(x) = op.get("ResponseDeleteRange") {
                serde_json::json!({
                    "kind": "delete", "revision": header_revision(x),
                    "deleted": x["deleted"].as_i64().unwrap_or(0),
                })
            } else {
                serde_json::json!({"kind": "unknown", "raw": op.clone()})
            }
        })
        .collect();
    serde_json::json!({
        "revision": header_revision(v),
        "succeeded": v["succeeded"].as_bool().unwrap_or(false),
        "responses": responses,
    })
}

/// Replaces our lease IDs by etcd's in a JSON answer.
fn rename_leases(v: &mut Value, leases: &[(i64, i64)]) {
    match v {
        Value::Object(o) => {
            for (name, field) in o.iter_mut() {
                match (name.as_str(), field.as_i64()) {
                    ("lease", Some(ours)) => {
                        if let Some(&(_, theirs)) = leases.iter().find(|(o, _)| *o == ours) {
                            *field = theirs.into();
                        }
                    }
                    _ => rename_leases(field, leases),
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rename_leases(item, leases)),
        _ => {}
    }
}

/// etcdctl wraps some errors: "failed to revoke lease (etcdserver: …)".
fn inner_error(e: String) -> String {
    match (e.find('('), e.rfind(')')) {
        (Some(open), Some(close)) if open < close => e[open + 1..close].to_owned(),
        _ => e,
    }
}

/// A lease grant, revoke, time-to-live or list, sent to both.
fn lease_op(
    g: &mut Gen,
    etcd: &Etcd,
    store: &mut Store,
    leases: &mut Vec<(i64, i64)>,
    args: &mut Vec<String>,
) -> (Result<Value, kv::KvError>, Result<Value, String>) {
    match g.below(5) {
        0 | 1 => {
            // etcd expires leases in real time: the ones kept live for an hour; a short
            // one (to check the minimum TTL) is revoked at once on both sides.
            let short = g.chance(4);
            let ttl = match (short, g.chance(10)) {
                (_, true) => 9_000_000_001,
                (true, false) => 1 + g.below(3) as i64,
                (false, false) => 3_600 + g.below(100) as i64,
            };
            *args = vec!["lease".into(), "grant".into(), ttl.to_string()];
            // etcd picks the ID; the store is given the same one, so that key-values,
            // and so HashKV, are the same byte for byte.
            let theirs = etcd.run(args).map_err(inner_error);
            let id = theirs.as_ref().map_or(0, |t| t["ID"].as_i64().unwrap_or(0));
            let ours = store.lease_grant(kv::LeaseGrant { ttl, id });
            if let (Ok(o), Ok(t)) = (&ours, &theirs) {
                let pair = (o.id, t["ID"].as_i64().unwrap());
                if short {
                    store.lease_revoke(pair.0).unwrap();
                    let revoke = [
                        "lease".to_string(),
                        "revoke".into(),
                        format!("{:x}", pair.1),
                    ];
                    etcd.run(&revoke).unwrap();
                } else {
                    leases.push(pair);
                }
            }
            let ours = ours.map(|r| serde_json::json!({"revision": r.revision, "ttl": r.ttl}));
            let theirs = theirs.map(|v| {
                serde_json::json!({"revision": v["revision"].as_i64().unwrap_or(0), "ttl": v["TTL"]})
            });
            (ours, theirs)
        }
        2 => {
            let known = !leases.is_empty() && !g.chance(4);
            let (ours_id, theirs_id) = if known {
                leases.remove(g.below(leases.len() as u64) as usize)
            } else {
                (987_654_321, 987_654_321)
            };
            *args = vec!["lease".into(), "revoke".into(), format!("{theirs_id:x}")];
            let ours = store
                .lease_revoke(ours_id)
                .map(|r| serde_json::json!({ "revision": r }));
            let theirs = etcd
                .run(args)
                .map(|v| serde_json::json!({ "revision": header_revision(&v) }))
                .map_err(inner_error);
            (ours, theirs)
        }
        3 if !leases.is_empty() => {
            let (ours_id, theirs_id) = leases[g.below(leases.len() as u64) as usize];
            *args = vec![
                "lease".into(),
                "timetolive".into(),
                format!("{theirs_id:x}"),
                "--keys".into(),
            ];
            let ours = store.lease_info(ours_id, true).map(|i| {
                let mut keys: Vec<String> = i.keys.iter().map(|k| b64(k)).collect();
                keys.sort_unstable();
                serde_json::json!({"revision": i.revision, "granted": i.granted_ttl, "keys": keys})
            });
            let theirs = etcd.run(args).map(|v| {
                // etcd lists a lease's keys in no particular order.
                let mut keys: Vec<String> = list(&v, "keys")
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect();
                keys.sort_unstable();
                serde_json::json!({
                    "revision": v["revision"].as_i64().unwrap_or(0),
                    "granted": v["granted-ttl"],
                    "keys": keys,
                })
            });
            (ours, theirs)
        }
        _ => {
            *args = vec!["lease".into(), "list".into()];
            let by_theirs = |ours: i64| {
                leases
                    .iter()
                    .find(|(o, _)| *o == ours)
                    .map_or(ours, |p| p.1)
            };
            let mut ids: Vec<i64> = store.lease_ids().into_iter().map(by_theirs).collect();
            ids.sort_unstable();
            let ours = Ok(serde_json::json!({"revision": store.revision(), "ids": ids}));
            let theirs = etcd.run(args).map(|v| {
                let mut ids: Vec<i64> = list(&v, "leases")
                    .iter()
                    .filter_map(|l| l["id"].as_i64())
                    .collect();
                ids.sort_unstable();
                serde_json::json!({"revision": v["revision"].as_i64().unwrap_or(0), "ids": ids})
            });
            (ours, theirs)
        }
    }
}
