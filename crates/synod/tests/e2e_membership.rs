//! Membership changes on a real cluster with Debian's etcdctl, as an operator replaces a
//! machine: add a learner with `member add --learner`, start it with the
//! `--initial-cluster` that printed and `--initial-cluster-state existing`, promote it
//! once it caught up, remove an old member (which stops, as etcd's does), and restart the
//! new one from its data directory. etcd's refusals along the way answer as etcd's do.

#![allow(clippy::expect_used)] // A test: a failure is the report.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::Cluster;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `member list` at `endpoints` as (id, name, is learner), by name.
fn members_at(c: &Cluster, endpoints: &str) -> Vec<(u64, String, bool)> {
    let out = c.etcdctl_at(endpoints, &["member", "list", "-w", "json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = json(&text);
    let mut out: Vec<(u64, String, bool)> = list["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            let id = m["ID"].as_u64().expect("ID");
            let name = m["name"].as_str().unwrap_or_default().to_string();
            (id, name, m["isLearner"].as_bool().unwrap_or(false))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

/// `member list` at every running member (no learner among them).
fn members(c: &Cluster) -> Vec<(u64, String, bool)> {
    members_at(c, &c.endpoints())
}

/// The `ETCD_INITIAL_CLUSTER` that `member add` printed.
fn initial_cluster(added: &str) -> String {
    added
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER in {added}"))
        .to_string()
}

/// Runs etcdctl at `endpoints` and returns its stderr, asserting it failed.
fn refused(c: &Cluster, endpoints: &str, args: &[&str]) -> String {
    let out = c.etcdctl_at(endpoints, args);
    assert!(!out.status.success(), "etcdctl {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Retries `f` until it returns `Some`, for up to 30 s.
fn eventually<T>(c: &Cluster, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 30 s\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_learner_joins_is_promoted_and_replaces_a_removed_member() {
    let mut c = Cluster::start("membership");
    c.etcdctl(&["put", "before", "1"]);
    let s4 = c.add_spare("s4");
    let peer = format!("http://{}", c.members[s4].peer);

    // etcd's refusals: a peer URL in use, a member that is not one, a voter promoted.
    let used = format!("--peer-urls=http://{}", c.members[0].peer);
    let all = c.endpoints();
    let err = refused(&c, &all, &["member", "add", "x", &used]);
    assert!(
        err.contains("etcdserver: Peer URLs already exists"),
        "{err}"
    );
    let err = refused(&c, &all, &["member", "remove", "1234"]);
    assert!(err.contains("etcdserver: member not found"), "{err}");
    let voter = format!("{:x}", members(&c)[0].0);
    let err = refused(&c, &all, &["member", "promote", &voter]);
    assert!(
        err.contains("etcdserver: can only promote a learner member"),
        "{err}"
    );

    let added = c.etcdctl(&[
        "member",
        "add",
        "s4",
        "--learner",
        &format!("--peer-urls={peer}"),
    ]);
    assert!(
        added.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{added}"
    );
    let initial = initial_cluster(&added);
    assert!(initial.contains(&format!("s4={peer}")), "{initial}");
    let listed = members(&c);
    assert_eq!(listed.len(), 4);
    assert!(listed
        .iter()
        .any(|(_, name, learner)| name.is_empty() && *learner));

    // Until it is promoted, member commands go to the voters: a learner refuses them.
    let voters = c.endpoints();
    c.members[s4].joining = Some(initial);
    c.spawn(s4);
    let learner_id = eventually(&c, "s4 publishes its name", || {
        members_at(&c, &voters)
            .into_iter()
            .find(|(_, name, learner)| name == "s4" && *learner)
            .map(|(id, ..)| id)
    });
    // A learner serves serializable reads only.
    let at_s4 = c.members[s4].client.clone();
    let status = c.etcdctl_at(&at_s4, &["endpoint", "status", "-w", "json"]);
    let status = json(&String::from_utf8_lossy(&status.stdout));
    assert_eq!(status[0]["Status"]["isLearner"], true, "{status}");
    let stale = c.etcdctl_at(&at_s4, &["get", "before", "--consistency=s"]);
    assert_eq!(String::from_utf8_lossy(&stale.stdout), "before\n1\n");
    for refused_there in [
        &["put", "k", "v"][..],
        &["get", "before"],
        &["member", "list"],
    ] {
        let err = refused(&c, &at_s4, refused_there);
        assert!(
            err.contains("etcdserver: rpc not supported for learner"),
            "{err}"
        );
    }

    let id = format!("{learner_id:x}");
    // Leadership goes to voters only, as etcd's.
    for target in [id.as_str(), "1234"] {
        let err = refused(&c, &voters, &["move-leader", target]);
        assert!(err.contains("etcdserver: bad leader transferee"), "{err}");
    }
    eventually(&c, "promote s4", || {
        let out = c.etcdctl_at(&voters, &["member", "promote", &id]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || err.contains("in sync with leader"),
            "{err}"
        );
        out.status.success().then_some(())
    });
    assert!(members(&c).iter().all(|(_, _, learner)| !learner));
    c.etcdctl(&["put", "after-promote", "2"]);

    // Drain s1 (it may lead), then remove it: it stops, as etcd's removed members do,
    // and the others go on.
    let id_of = |c: &Cluster, name: &str| {
        let listed = members(c);
        listed.iter().find(|m| m.1 == name).expect("listed").0
    };
    let (s1, s2) = (format!("{:x}", id_of(&c, "s1")), id_of(&c, "s2"));
    let moved = c.etcdctl(&["move-leader", &format!("{s2:x}")]);
    assert!(moved.contains("Leadership transferred"), "{moved}");
    let status = json(&c.etcdctl(&["endpoint", "status", "-w", "json"]));
    for member in status.as_array().expect("statuses") {
        assert_eq!(member["Status"]["leader"].as_u64(), Some(s2), "{status}");
    }
    let removed = c.etcdctl(&["member", "remove", &s1]);
    // etcdctl pads the id to 16 places: "Member  d2f2045d674ae1a removed from cluster …".
    assert!(
        removed.contains(&format!("{s1:>16} removed from cluster")),
        "{removed}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = c.exited(0) {
            break status;
        }
        assert!(Instant::now() < deadline, "s1 did not stop\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!status.success());
    assert!(c.log(0).contains("permanently removed"), "{}", c.log(0));
    // It refuses to start again from its data directory, with etcd's words.
    c.spawn(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.exited(0).is_none() {
        assert!(
            Instant::now() < deadline,
            "the removed member started again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let refusals = c
        .log(0)
        .matches("permanently removed from the cluster")
        .count();
    assert!(refusals >= 3, "{}", c.log(0));
    let names: Vec<String> = members(&c).into_iter().map(|m| m.1).collect();
    assert_eq!(names, ["s2", "s3", "s4"]);
    // As with etcd, a write sent while the removed leader's successor is being elected
    // may time out: wait for it.
    c.wait_healthy();
    c.etcdctl(&["put", "after-remove", "3"]);
    assert_eq!(c.etcdctl(&["get", "after-remove"]), "after-remove\n3\n");

    // The new member restarts from its data directory.
    c.kill(s4);
    c.spawn(s4);
    c.wait_healthy();
    let at_s4 = c.members[s4].client.clone();
    let read = c.etcdctl_at(&at_s4, &["get", "after-promote"]);
    assert_eq!(String::from_utf8_lossy(&read.stdout), "after-promote\n2\n");
}

/// `synod quorum ARGS --endpoints …` at every running member: its stdout, or its stderr
/// if it failed.
fn quorum(c: &Cluster, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_synod"))
        .arg("quorum")
        .args(args)
        .arg(format!("--endpoints={}", c.endpoints()))
        .output()
        .expect("synod quorum runs");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// Adds a voter named `name` with `member add` and starts it as the output says.
fn add_voter(c: &mut Cluster, name: &str) {
    let i = c.add_spare(name);
    let peer = format!("--peer-urls=http://{}", c.members[i].peer);
    let added = c.etcdctl(&["member", "add", name, &peer]);
    let initial = initial_cluster(&added);
    c.members[i].joining = Some(initial);
    c.spawn(i);
    c.wait_healthy();
}

#[test]
fn a_cluster_grows_to_six_and_switches_to_a_grid() {
    let mut c = Cluster::start("grid");
    let got = quorum(&c, &["get"]).unwrap();
    assert_eq!(
        got.trim(),
        "quorum system majority over 3 voters (configuration epoch 0)"
    );
    let err = quorum(&c, &["set", "grid:2x3"]).unwrap_err();
    assert!(err.contains("unsafe quorum system"), "{err}");
    let err = quorum(&c, &["set", "triangle"]).unwrap_err();
    assert!(err.contains("triangle"), "{err}");

    // One-phase-2 writes: any single acceptor completes a write, all three elect.
    let set = quorum(&c, &["set", "flexible:3,1"]).unwrap();
    assert!(set.contains("flexible:3,1 over 3 voters"), "{set}");
    c.etcdctl(&["put", "k", "flexible"]);

    // flexible:3,1 does not fit four voters: the addition is refused, so back to
    // majority first.
    let taken = format!("--peer-urls=http://{}", support::free_port_url());
    let err = refused(&c, &c.endpoints(), &["member", "add", "s4", &taken]);
    assert!(err.contains("unsafe quorum system"), "{err}");
    quorum(&c, &["set", "majority"]).unwrap();
    for name in ["s4", "s5", "s6"] {
        add_voter(&mut c, name);
    }
    let set = quorum(&c, &["set", "grid:2x3"]).unwrap();
    assert!(set.contains("grid:2x3 over 6 voters"), "{set}");
    c.etcdctl(&["put", "k", "grid"]);
    assert_eq!(c.etcdctl(&["get", "k"]), "k\ngrid\n");
    let listed = members(&c);
    assert_eq!(listed.len(), 6);
    assert!(listed
        .iter()
        .all(|(_, name, learner)| !name.is_empty() && !learner));
}
