//! Authentication and RBAC end to end, as a user of etcd meets them: real `synod serve`
//! members driven by Debian's etcdctl (`--user`, `user`/`role` commands, `auth
//! enable`/`disable`) and by the JSON gateway (`/v3/auth/authenticate`, then requests
//! with `Authorization`). The same session runs against a three-member etcd 3.4
//! (`scripts/etcd-ref`) and must print the same, step by step; each step also has the
//! text it must print written here. The auth state must survive a restart of every
//! member and reach a member that was down while it changed, and under TLS with
//! `--client-cert-auth` a client certificate's CN is the user.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A failure is the report.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use server::tls::certs::Request;
use support::http::{request, scrubbed};
use support::tls::{etcdctl_with, issue, tls_cluster};
use support::{b64, Background, Cluster};

const ROOT: Option<&str> = Some("root:rootpw");
const ALICE: Option<&str> = Some("alice:alicepw");
const DENIED: &str = "Error: etcdserver: permission denied";
const NO_USER: &str = "Error: etcdserver: user name is empty";
const FAILED: &str = "Error: etcdserver: authentication failed, invalid user ID or password";
const NO_PASSWORD: &str =
    "Error: rpc error: code = Unknown desc = auth: authentication failed, password was given for no password user";
/// What etcdctl prints when a watch it may not make is cancelled.
const CANCELLED: &str = "watch was canceled (rpc error: code = PermissionDenied desc = \
                         etcdserver: permission denied)\nError: watch is canceled by the server";
/// The base of etcd-ref's ports for this file: client ports 36379, 36479, 36579.
const ETCD_BASE: u16 = 36279;

/// `reader`'s permissions as `role get` prints them.
const READER: &str = "Role reader
KV Read:
\t[app/, app0) (prefix app/)
\tk1
\t[x, <open ended>
KV Write:
\t[a, b) (prefix a)
\t[app/, app0) (prefix app/)";

/// What a run of etcdctl said: its standard output, then its standard error without
/// the client library's JSON log lines (retry warnings, with times and ids in them).
fn said(out: &std::process::Output) -> String {
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        if !line.starts_with('{') {
            text += line;
            text.push('\n');
        }
    }
    text
}

/// etcdctl against `endpoints` with `flags`, killed after 15 s (a watch that is never
/// cancelled would otherwise wait for ever).
fn etcdctl(endpoints: &str, flags: &[String], args: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .args(["-k", "2", "15", "etcdctl"])
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--command-timeout=10s")
        .args(flags)
        .args(args)
        .output()
        .expect("etcdctl runs")
}

/// One system under test, seen through etcdctl and the gateway, with what it printed.
struct Session<'a> {
    /// `synod` or `etcd`.
    name: &'a str,
    /// Each member's client address.
    members: &'a [String],
    /// Flags every etcdctl run gets (TLS ones).
    flags: Vec<String>,
    /// Every step and its answer, to compare between the systems.
    transcript: String,
    /// The members' logs, for failure messages.
    logs: &'a dyn Fn() -> String,
}

impl Session<'_> {
    /// Runs etcdctl as `user` (`name:password`) against every member; it must print
    /// `expected` (trailing whitespace aside).
    fn says(&mut self, user: Option<&str>, args: &[&str], expected: &str) {
        let endpoints = self.members.join(",");
        self.says_at(&endpoints, user, args, expected);
    }

    /// The same against `endpoints` only.
    fn says_at(&mut self, endpoints: &str, user: Option<&str>, args: &[&str], expected: &str) {
        let mut all: Vec<String> = user.map(|u| format!("--user={u}")).into_iter().collect();
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = etcdctl(endpoints, &self.flags, &all);
        let text = said(&out);
        let at = match self.members.iter().position(|m| m == endpoints) {
            Some(i) if self.members.len() > 1 => format!(" (member {i} alone)"),
            _ => String::new(),
        };
        self.transcript += &format!(
            "$ etcdctl {}{at}\n{text}[exit {:?}]\n",
            all.join(" "),
            out.status.code()
        );
        assert_eq!(
            text.trim_end(),
            expected,
            "{}: etcdctl {all:?}{at} printed this\n{}",
            self.name,
            (self.logs)()
        );
        let success = expected.lines().all(|l| !l.starts_with("Error:"));
        assert_eq!(out.status.success(), success, "{}: {out:?}", self.name);
    }

    /// A gateway request to member `at` with `token` as its `Authorization`; its status
    /// and JSON (ids and terms left out, a token replaced by `<token>`), which must
    /// have `status` and, for a refusal, `error`.
    fn gateway(&mut self, at: usize, path: &str, token: Option<&str>, body: &str) -> Value {
        let headers: Vec<(&str, &str)> = token.map(|t| ("Authorization", t)).into_iter().collect();
        let answer = request(&self.members[at], "POST", path, &headers, body);
        let (status, mut json) = scrubbed(&answer);
        let token = json.get("token").cloned();
        if token.is_some() {
            json["token"] = "<token>".into();
        }
        let with = if headers.is_empty() {
            ""
        } else {
            " with a token"
        };
        self.transcript += &format!("POST {path} {body} to member {at}{with}\n{status} {json}\n");
        json["status"] = status.into();
        if let Some(token) = token {
            json["token"] = token;
        }
        json
    }

    /// Runs `etcdctl watch` as `user` on member 0 from revision `from` and waits for
    /// the event `put` (a put of `key` to `value` made through member 2, as root).
    fn watch_sees(&mut self, user: Option<&str>, prefix: &str, key: &str, value: &str) {
        let revision = self.revision();
        let flags = [
            self.flags.clone(),
            user.map(|u| format!("--user={u}")).into_iter().collect(),
        ]
        .concat();
        let mut watch = Background(
            Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={}", self.members[0]))
                .args(&flags)
                .args([
                    "watch",
                    prefix,
                    "--prefix",
                    &format!("--rev={}", revision + 1),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("etcdctl watch starts"),
        );
        let stdout = watch.0.stdout.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let put = ["put", key, value];
        self.says_at(&self.members[2].clone(), ROOT, &put, "OK");
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.len() < 3 && Instant::now() < deadline {
            if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
                seen.push(line);
            }
        }
        assert_eq!(
            seen,
            ["PUT", key, value],
            "{}: {}",
            self.name,
            (self.logs)()
        );
        self.transcript += &format!("watched {prefix} as {user:?}: {seen:?}\n");
    }

    /// Root adds user `name` with `password` and grants it `role`.
    fn user_with_role(&mut self, name: &str, password: &str, role: &str) {
        let password = format!("--new-user-password={password}");
        let added = format!("User {name} created");
        self.says(ROOT, &["user", "add", name, &password], &added);
        let granted = format!("Role {role} is granted to user {name}");
        self.says(ROOT, &["user", "grant-role", name, role], &granted);
    }

    /// The store's revision now (root reads it).
    fn revision(&self) -> i64 {
        let args = ["--user=root:rootpw", "get", "none", "-w", "json"];
        let out = etcdctl(&self.members.join(","), &self.flags, &args);
        let json: Value = serde_json::from_slice(&out.stdout).expect("get -w json");
        json["header"]["revision"].as_i64().expect("a revision")
    }
}

/// The whole session: root and auth enabled, a role with a key, a prefix, a range and a
/// from-key permission, users with and without it, what they may and may not do with
/// etcdctl, watch and the gateway, tokens taken to other members, revocations, and
/// `auth disable`. Returns what was printed, step by step.
fn session(name: &str, members: &[String], logs: &dyn Fn() -> String) -> String {
    let mut s = Session {
        name,
        members,
        flags: Vec::new(),
        transcript: String::new(),
        logs,
    };
    s.says(
        None,
        &["user", "add", "root", "--new-user-password=rootpw"],
        "User root created",
    );
    s.says(None, &["auth", "enable"], "Authentication Enabled");
    s.says(None, &["get", "k1"], NO_USER);
    s.says(None, &["user", "list"], NO_USER);

    s.says(ROOT, &["role", "add", "reader"], "Role reader created");
    for grant in [
        &["read", "k1"][..],
        &["readwrite", "app/", "--prefix"],
        &["write", "a", "b"],
        &["read", "x", "--from-key"],
    ] {
        let args = [&["role", "grant-permission", "reader"][..], grant].concat();
        s.says(ROOT, &args, "Role reader updated");
    }
    s.user_with_role("alice", "alicepw", "reader");
    s.says(
        ROOT,
        &["user", "add", "bob", "--new-user-password=bobpw"],
        "User bob created",
    );
    s.says(
        ROOT,
        &["user", "get", "alice"],
        "User: alice\nRoles: reader",
    );
    s.says(ROOT, &["user", "get", "bob"], "User: bob\nRoles:");
    s.says(ROOT, &["user", "get", "root"], "User: root\nRoles: root");
    s.says(
        ROOT,
        &["user", "get", "alice", "--detail"],
        &format!("User: alice\n\n{READER}"),
    );
    s.says(ROOT, &["role", "get", "reader"], READER);
    s.says(
        ROOT,
        &["role", "get", "root"],
        "Role root\nKV Read:\nKV Write:",
    );
    s.says(ROOT, &["user", "list"], "alice\nbob\nroot");
    s.says(ROOT, &["role", "list"], "reader\nroot");
    s.says(
        ROOT,
        &["user", "get", "carol"],
        "Error: etcdserver: user name not found",
    );
    for (key, value) in [("k1", "v1"), ("k2", "v2"), ("app/one", "1")] {
        s.says(ROOT, &["put", key, value], "OK");
    }

    // alice: the key, the prefix, the range and the open range, each as granted.
    s.says(ALICE, &["get", "k1"], "k1\nv1");
    s.says(ALICE, &["put", "k1", "mine"], DENIED);
    s.says(ALICE, &["get", "k2"], DENIED);
    s.says(ALICE, &["get", "k1", "k3"], DENIED);
    s.says(ALICE, &["del", "k1"], DENIED);
    s.says(ALICE, &["put", "app/two", "2"], "OK");
    s.says(
        ALICE,
        &["get", "app/", "--prefix"],
        "app/one\n1\napp/two\n2",
    );
    s.says(ALICE, &["del", "app/one"], "1");
    s.says(ALICE, &["get", "app", "--prefix"], DENIED);
    s.says(ALICE, &["put", "a1", "x"], "OK");
    s.says(ALICE, &["get", "a1"], DENIED);
    s.says(ALICE, &["del", "a1"], "1");
    s.says(ALICE, &["put", "b", "x"], DENIED);
    s.says(ALICE, &["get", "zz"], "");
    s.says(ALICE, &["put", "zz", "x"], DENIED);
    s.says(ALICE, &["watch", "k2"], CANCELLED);
    s.watch_sees(ALICE, "app/", "app/w", "watched");
    // Her own user and role she may read; nobody else's, and no administration.
    s.says(
        ALICE,
        &["user", "get", "alice"],
        "User: alice\nRoles: reader",
    );
    s.says(ALICE, &["role", "get", "reader"], READER);
    s.says(ALICE, &["user", "get", "bob"], DENIED);
    s.says(ALICE, &["role", "get", "root"], DENIED);
    s.says(ALICE, &["user", "list"], DENIED);
    s.says(ALICE, &["role", "list"], DENIED);
    s.says(
        ALICE,
        &["user", "add", "eve", "--new-user-password=x"],
        DENIED,
    );
    s.says(
        ALICE,
        &["role", "grant-permission", "reader", "readwrite", "k2"],
        DENIED,
    );
    s.says(ALICE, &["auth", "disable"], DENIED);
    s.says(Some("bob:bobpw"), &["get", "k1"], DENIED);
    s.says(Some("alice:wrong"), &["get", "k1"], FAILED);
    s.says(Some("nobody:pw"), &["get", "k1"], FAILED);
    s.says(
        ROOT,
        &["user", "add", "dave", "--no-password"],
        "User dave created",
    );
    s.says(Some("dave:pw"), &["get", "k1"], NO_PASSWORD);
    s.says(ROOT, &["user", "delete", "dave"], "User dave deleted");
    // Authenticated at each member alone.
    for m in members {
        s.says_at(m, ALICE, &["get", "app/two", "--print-value-only"], "2");
    }

    // The gateway: a token from member 0, used at members 1 and 2.
    let login = |password: &str| format!(r#"{{"name":"alice","password":"{password}"}}"#);
    let answer = s.gateway(0, "/v3/auth/authenticate", None, &login("alicepw"));
    assert_eq!(answer["status"], 200, "{name}: {answer}");
    let token = answer["token"].as_str().expect("a token").to_string();
    let answer = s.gateway(0, "/v3/auth/authenticate", None, &login("wrong"));
    assert_eq!(answer["status"], 400, "{name}: {answer}");
    assert_eq!(
        answer["error"],
        &FAILED["Error: ".len()..],
        "{name}: {answer}"
    );
    let key = |k: &str| format!(r#"{{"key":"{}"}}"#, b64(k));
    let put = |k: &str| format!(r#"{{"key":"{}","value":"{}"}}"#, b64(k), b64("gw"));
    let answer = s.gateway(1, "/v3/kv/range", Some(&token), &key("app/two"));
    assert_eq!(answer["status"], 200, "{name}: {answer}");
    assert_eq!(answer["kvs"][0]["value"], b64("2"), "{name}: {answer}");
    let answer = s.gateway(2, "/v3/kv/put", Some(&token), &put("app/gw"));
    assert_eq!(answer["status"], 200, "{name}: {answer}");
    let refusals = [
        (
            2,
            "/v3/kv/range",
            Some(token.as_str()),
            key("k2"),
            403,
            DENIED,
        ),
        (1, "/v3/kv/put", Some(&token), put("k1"), 403, DENIED),
        (
            1,
            "/v3/kv/deleterange",
            Some(&token),
            key("k1"),
            403,
            DENIED,
        ),
        (
            1,
            "/v3/auth/user/list",
            Some(&token),
            "{}".into(),
            403,
            DENIED,
        ),
        (2, "/v3/kv/range", None, key("app/two"), 400, NO_USER),
        (
            2,
            "/v3/kv/range",
            Some("nonsense.1"),
            key("app/two"),
            401,
            "Error: etcdserver: invalid auth token",
        ),
    ];
    for (at, path, token, body, status, error) in refusals {
        let answer = s.gateway(at, path, token, &body);
        assert_eq!(answer["status"], status, "{name}: {path} {body}: {answer}");
        assert_eq!(
            answer["error"],
            &error["Error: ".len()..],
            "{name}: {answer}"
        );
    }

    // Revocations take effect at once, on every member.
    let revoked = "Permission of key k1 is revoked from role reader";
    s.says(
        ROOT,
        &["role", "revoke-permission", "reader", "k1"],
        revoked,
    );
    s.says(ALICE, &["get", "k1"], DENIED);
    s.says(ALICE, &["get", "app/two", "--print-value-only"], "2");
    let revoked = "Role reader is revoked from user alice";
    s.says(ROOT, &["user", "revoke-role", "alice", "reader"], revoked);
    for m in members {
        s.says_at(m, ALICE, &["get", "app/two"], DENIED);
    }
    s.says(ROOT, &["user", "delete", "bob"], "User bob deleted");
    s.says(Some("bob:bobpw"), &["get", "k1"], FAILED);

    // Disabled by root: plain requests work again.
    s.says(ROOT, &["auth", "disable"], "Authentication Disabled");
    s.says(None, &["get", "k2", "--print-value-only"], "v2");
    s.says(None, &["put", "k3", "v3"], "OK");
    s.says(
        None,
        &["get", "app/", "--prefix"],
        "app/gw\ngw\napp/two\n2\napp/w\nwatched",
    );
    s.says(None, &["user", "list"], "alice\nroot");
    s.transcript
}

/// The first line where two transcripts differ, with the lines before it.
fn first_difference(ours: &str, theirs: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    let at = (0..a.len().max(b.len()))
        .find(|&i| a.get(i) != b.get(i))
        .unwrap_or(0);
    let context = a[at.saturating_sub(4)..at.min(a.len())].join("\n");
    format!(
        "{context}\nsynod: {:?}\netcd:  {:?}",
        a.get(at).unwrap_or(&"<end>"),
        b.get(at).unwrap_or(&"<end>")
    )
}

#[test]
fn etcdctl_and_the_gateway_with_auth_answer_as_etcd_does() {
    // etcd first: what this file expects it to print is checked against etcd itself.
    let (etcd, members) = support::etcd::start("e2e-auth", ETCD_BASE, 3);
    let theirs = session("etcd", &members, &String::new);
    drop(etcd);
    let synod = Cluster::start_with("auth", &["--bcrypt-cost=4"]);
    let members: Vec<String> = synod.members.iter().map(|m| m.client.clone()).collect();
    let ours = session("synod", &members, &|| synod.logs());
    assert!(ours == theirs, "{}", first_difference(&ours, &theirs));
}

#[test]
fn auth_survives_a_restart_and_reaches_a_member_that_was_down() {
    // Frequent snapshots: the member that was down catches up by snapshot, so the auth
    // state must be in it.
    let flags = ["--bcrypt-cost=4", "--snapshot-count=5"];
    let mut c = Cluster::start_with("auth-restart", &flags);
    c.etcdctl(&["user", "add", "root", "--new-user-password=rootpw"]);
    c.etcdctl(&["auth", "enable"]);
    c.etcdctl_flags = vec!["--user=root:rootpw".into()];
    let members: Vec<String> = c.members.iter().map(|m| m.client.clone()).collect();
    c.kill(2);
    {
        let logs = || c.logs();
        let mut s = Session {
            name: "synod, s3 down",
            members: &members[..2],
            flags: Vec::new(),
            transcript: String::new(),
            logs: &logs,
        };
        s.says(ROOT, &["role", "add", "app"], "Role app created");
        let grant = [
            "role",
            "grant-permission",
            "app",
            "readwrite",
            "app/",
            "--prefix",
        ];
        s.says(ROOT, &grant, "Role app updated");
        s.user_with_role("alice", "alicepw", "app");
        s.says(ROOT, &["put", "secret", "s"], "OK");
        for i in 0..6 {
            s.says(ALICE, &["put", &format!("app/{i}"), "v"], "OK");
        }
    }
    c.spawn(2);
    let s3 = members[2].clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c
        .etcdctl_at(&s3, &["get", "app/5"])
        .stdout
        .starts_with(b"app/5")
    {
        assert!(
            Instant::now() < deadline,
            "s3 never caught up\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        c.log(2).contains("installed a snapshot from a peer"),
        "s3 should have caught up by snapshot\n{}",
        c.logs()
    );
    let checks = |s: &mut Session<'_>| {
        let role = "Role app\nKV Read:\n\t[app/, app0) (prefix app/)\nKV Write:\n\t[app/, app0) (prefix app/)";
        for m in s.members {
            s.says_at(m, None, &["get", "app/0"], NO_USER);
            s.says_at(
                m,
                ROOT,
                &["user", "get", "alice"],
                "User: alice\nRoles: app",
            );
            s.says_at(m, ROOT, &["role", "get", "app"], role);
            s.says_at(m, ROOT, &["user", "list"], "alice\nroot");
            s.says_at(m, ALICE, &["get", "app/0", "--print-value-only"], "v");
            s.says_at(m, ALICE, &["get", "secret"], DENIED);
            s.says_at(m, ALICE, &["put", "secret", "mine"], DENIED);
            s.says_at(m, Some("alice:wrong"), &["get", "app/0"], FAILED);
        }
    };
    {
        // s3 alone.
        let logs = || c.logs();
        let alone = [s3];
        let mut s = Session {
            name: "synod, s3 alone",
            members: &alone,
            flags: Vec::new(),
            transcript: String::new(),
            logs: &logs,
        };
        checks(&mut s);
    }

    // Every member killed and started again on its data directory.
    for i in 0..3 {
        c.kill(i);
    }
    for i in 0..3 {
        c.spawn(i);
    }
    c.wait_healthy();
    let logs = || c.logs();
    let mut s = Session {
        name: "synod, restarted",
        members: &members,
        flags: Vec::new(),
        transcript: String::new(),
        logs: &logs,
    };
    checks(&mut s);
    s.says(ROOT, &["auth", "disable"], "Authentication Disabled");
    s.says(None, &["get", "secret", "--print-value-only"], "s");
}

#[test]
fn under_client_cert_auth_a_certificates_cn_is_the_user() {
    let (mut c, ca) = tls_cluster("auth-tls", &[]);
    for m in &mut c.members {
        m.extra.push("--bcrypt-cost=4".into());
    }
    c.start_all();
    // etcdctl's own certificate (the cluster's flags) has CN root: once auth is enabled,
    // it is root with no --user.
    c.etcdctl(&["user", "add", "root", "--new-user-password=rootpw"]);
    c.etcdctl(&["auth", "enable"]);
    for args in [
        &["role", "add", "app"][..],
        &[
            "role",
            "grant-permission",
            "app",
            "readwrite",
            "app/",
            "--prefix",
        ],
        &["role", "grant-permission", "app", "read", "k1"],
        &["user", "add", "alice", "--no-password"],
        &["user", "grant-role", "alice", "app"],
        &["put", "k1", "v1"],
        &["put", "k2", "v2"],
    ] {
        c.etcdctl(args);
    }
    assert_eq!(c.etcdctl(&["user", "list"]), "alice\nroot\n");

    let dir = c.root().join("tls");
    let cert_of = |name: &str| {
        let (cert, key) = issue(&ca, &dir, name, &Request::new(name, &[]));
        vec![
            format!("--cacert={}", dir.join("ca.pem").display()),
            format!("--cert={}", cert.display()),
            format!("--key={}", key.display()),
        ]
    };
    let members: Vec<String> = c
        .members
        .iter()
        .map(|m| format!("https://{}", m.client))
        .collect();
    let logs = || c.logs();
    let mut s = Session {
        name: "synod over TLS",
        members: &members,
        flags: cert_of("alice"),
        transcript: String::new(),
        logs: &logs,
    };
    s.says(None, &["put", "app/a", "1"], "OK");
    s.says(None, &["get", "app/", "--prefix"], "app/a\n1");
    s.says(None, &["get", "k1", "--print-value-only"], "v1");
    s.says(None, &["put", "k1", "mine"], DENIED);
    s.says(None, &["get", "k2"], DENIED);
    s.says(None, &["del", "app/a", "app/b"], "1");
    s.says(None, &["user", "get", "alice"], "User: alice\nRoles: app");
    s.says(None, &["user", "list"], DENIED);
    s.says(None, &["auth", "disable"], DENIED);
    s.says(None, &["watch", "k2"], CANCELLED);
    s.watch_sees(None, "app/", "app/w", "watched");
    // A token comes first: alice's certificate with root's password is root.
    s.says(ROOT, &["put", "k2", "root"], "OK");
    // alice has no password: she is only her certificate.
    s.says(Some("alice:x"), &["get", "k1"], NO_PASSWORD);
    for m in &members {
        s.says_at(m, None, &["get", "k1", "--print-value-only"], "v1");
    }
    // A certificate whose CN is no user is refused what it asks.
    s.flags = cert_of("mallory");
    s.says(None, &["get", "app/a"], DENIED);
    s.says(None, &["put", "app/a", "2"], DENIED);

    // Once auth is disabled, the CN names nobody: every certificate may do anything.
    assert_eq!(
        c.etcdctl(&["auth", "disable"]).trim(),
        "Authentication Disabled"
    );
    s.says(None, &["put", "k1", "mallory"], "OK");
    let out = etcdctl_with(
        &members[0],
        &cert_of("alice"),
        &["get", "k1", "--print-value-only"],
    );
    assert_eq!(said(&out).trim(), "mallory");
}
