use proptest::prelude::*;

use super::*;

fn header() -> Header {
    Header {
        source: "test".into(),
        seed: 0,
        nodes: vec![(1, "a".into()), (2, "b".into()), (3, "c".into())],
    }
}

fn message(time: u64, node: u64, what: &str, id: u64, peer: u64) -> Event {
    Event {
        id: Some(id),
        peer: Some(peer),
        message: Some("accept".into()),
        ..Event::new(time, node, what)
    }
}

/// a sends m1 to b and m2 to c; c does something of its own meanwhile (concurrent with
/// the sends); b receives m1 twice (a duplicate); c receives m2; b sends m3 to c, lost.
fn exchange() -> Trace {
    let mut recorder = Recorder::new(header());
    recorder.record(message(1, 1, "send", 1, 2));
    recorder.record(message(1, 1, "send", 2, 3));
    recorder.record(Event::new(2, 3, "tick"));
    recorder.record(message(3, 2, "deliver", 1, 1));
    recorder.record(message(4, 2, "deliver", 1, 1));
    recorder.record(message(5, 3, "deliver", 2, 1));
    recorder.record(message(6, 2, "send", 3, 3));
    recorder.record(message(6, 2, "drop", 3, 3));
    match recorder.finish(Vec::new()) {
        Ok(trace) => trace,
        Err(problem) => panic!("{problem}"),
    }
}

#[test]
fn clocks_follow_sends_deliveries_duplicates_and_local_events() {
    let clocks: Vec<Vec<u64>> = exchange().events.into_iter().map(|e| e.clock).collect();
    assert_eq!(
        clocks,
        vec![
            vec![1, 0, 0], // a sends m1
            vec![2, 0, 0], // a sends m2
            vec![0, 0, 1], // c, concurrent with both sends
            vec![1, 1, 0], // b delivers m1: max with m1's clock, then its own entry
            vec![1, 2, 0], // the duplicate of m1: the same merge again
            vec![2, 0, 2], // c delivers m2
            vec![1, 3, 0], // b sends m3
            vec![1, 4, 0], // and m3 is lost: a local event at b
        ]
    );
}

#[test]
fn happened_before_reads_from_the_clocks() {
    let events = exchange().events;
    let before = |a: &Event, b: &Event| {
        a.clock.iter().zip(&b.clock).all(|(x, y)| x <= y) && a.clock != b.clock
    };
    assert!(
        before(&events[0], &events[3]),
        "a send precedes its delivery"
    );
    assert!(!before(&events[2], &events[0]) && !before(&events[0], &events[2]));
    assert!(!before(&events[3], &events[5]) && !before(&events[5], &events[3]));
    assert!(before(&events[1], &events[5]));
}

#[test]
fn a_recorded_trace_reads_back() {
    let trace = exchange();
    let text = trace.to_jsonl();
    assert_eq!(read(text.as_bytes()), Ok(trace));
}

fn refused(text: &str) -> ReadError {
    match read(text.as_bytes()) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(error) => error,
    }
}

fn lines() -> Vec<String> {
    exchange().to_jsonl().lines().map(String::from).collect()
}

fn joined(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn bad_traces_are_refused_with_the_line_and_the_reason() {
    let good = lines();
    // Truncated: the last line cut short.
    let text = joined(&good);
    let cut = refused(&text[..text.len() - 10]);
    assert_eq!(cut.line, good.len());
    assert!(cut.problem.contains("truncated"), "{cut}");
    // Malformed.
    let mut bad = good.clone();
    bad[3] = "{\"time\":".into();
    let e = refused(&joined(&bad));
    assert_eq!((e.line, e.problem.contains("malformed")), (4, true), "{e}");
    // A newer version.
    let mut newer = good.clone();
    newer[0] = newer[0].replace("\"version\":1", "\"version\":2");
    let e = refused(&joined(&newer));
    assert_eq!(e.line, 1);
    assert!(e.problem.contains("newer"), "{e}");
    // Time going backwards.
    let mut back = good.clone();
    back[3] = back[3].replace("\"time\":2", "\"time\":0");
    let e = refused(&joined(&back));
    assert_eq!(e.line, 4);
    assert!(e.problem.contains("backwards"), "{e}");
    // A delivery before its send.
    let mut early = good.clone();
    early.swap(1, 4);
    let e = refused(&joined(&early));
    assert_eq!(e.line, 2);
    assert!(e.problem.contains("before it is sent"), "{e}");
    // A clock that says less than happened: the delivery of m1 without the merge.
    let mut forgetful = good.clone();
    forgetful[4] = forgetful[4].replace("[1,1,0]", "[0,1,0]");
    let e = refused(&joined(&forgetful));
    assert_eq!(e.line, 5);
    assert!(e.problem.contains("happened-before"), "{e}");
    // Something else entirely.
    let e = refused("{\"format\":\"other\",\"version\":1}\n");
    assert!(e.problem.contains("not \"synod-trace\""), "{e}");
    assert_eq!(refused("").line, 1);
}

#[test]
fn shiviz_export_parses_with_shivizs_regex_and_keeps_the_clocks() {
    let trace = exchange();
    let export = shiviz(&trace);
    let (first, log) = export.split_once("\n\n").unwrap_or_default();
    assert_eq!(first, SHIVIZ_REGEX);
    // JavaScript reads an unescaped `{` as a literal, Rust's regex wants it escaped: the
    // same language.
    let rust = SHIVIZ_REGEX.replace("{.*}", r"\{.*\}");
    let regex = regex::Regex::new(&rust).unwrap_or_else(|e| panic!("{e}"));
    let parsed: Vec<(String, serde_json::Value)> = regex
        .captures_iter(log)
        .map(|c| {
            let clock = serde_json::from_str(&c["clock"]).unwrap_or_else(|e| panic!("{e}"));
            (c["host"].to_string(), clock)
        })
        .collect();
    assert_eq!(parsed.len(), trace.events.len());
    for ((host, clock), event) in parsed.iter().zip(&trace.events) {
        assert_eq!(*host, trace.name(event.node));
        for ((_, name), count) in trace.header.nodes.iter().zip(&event.clock) {
            let shown = clock.get(name).and_then(serde_json::Value::as_u64);
            assert_eq!(shown.unwrap_or(0), *count, "{host} {clock}");
        }
        assert_eq!(
            clock.as_object().map(|o| o.len()),
            Some(event.clock.iter().filter(|&&c| c > 0).count())
        );
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = read(&bytes);
    }

    #[test]
    fn a_good_trace_with_a_line_mangled_never_panics(line in 0usize..9, cut in 0usize..80, junk in ".{0,8}") {
        let mut lines = lines();
        let l = &mut lines[line];
        let at = cut.min(l.len());
        let at = (0..=at).rev().find(|&i| l.is_char_boundary(i)).unwrap_or(0);
        l.replace_range(at.., &junk);
        let _ = read(joined(&lines).as_bytes());
    }
}

/// A member's file as `synod serve --trace-file` writes one (see the server's
/// `node::trace`): its clock over the header's nodes, each send numbered by its own entry.
struct MemberFile {
    me: u64,
    nodes: Vec<u64>,
    clock: Vec<u64>,
    lines: Vec<String>,
}

impl MemberFile {
    fn new(me: u64, cluster: &str) -> MemberFile {
        let nodes = vec![10, 20];
        let header = Header {
            source: "serve".into(),
            seed: 0,
            nodes: vec![(10, "a".into()), (20, "b".into())],
        };
        let mut line = header.to_json();
        line.pop();
        line += &format!(",\"cluster\":\"{cluster}\",\"member\":{me}}}");
        MemberFile {
            me,
            clock: vec![0; nodes.len()],
            nodes,
            lines: vec![line],
        }
    }

    fn at(&self) -> usize {
        self.nodes.iter().position(|&n| n == self.me).unwrap_or(0)
    }

    fn push(&mut self, mut event: Event) {
        event.clock.clone_from(&self.clock);
        event.ballot = Some("1.20".into());
        event.state = Some(State {
            role: "follower".into(),
            promised: Some("1.20".into()),
            ..State::default()
        });
        self.lines.push(event.to_json());
    }

    fn local(&mut self, time: u64, what: &str) {
        let at = self.at();
        self.clock[at] += 1;
        self.push(Event::new(time, self.me, what));
    }

    /// A send to `to`: the stamp its message carries.
    fn send(&mut self, time: u64, to: u64) -> Vec<u64> {
        let at = self.at();
        self.clock[at] += 1;
        let event = Event {
            id: Some(self.clock[at]),
            peer: Some(to),
            message: Some("accept".into()),
            ..Event::new(time, self.me, "send")
        };
        self.push(event);
        self.clock.clone()
    }

    fn deliver(&mut self, time: u64, from: u64, stamp: &[u64]) {
        let from_at = self.nodes.iter().position(|&n| n == from).unwrap_or(0);
        for (mine, theirs) in self.clock.iter_mut().zip(stamp) {
            *mine = (*mine).max(*theirs);
        }
        let at = self.at();
        self.clock[at] += 1;
        let event = Event {
            id: Some(stamp[from_at]),
            peer: Some(from),
            message: Some("accepted".into()),
            ..Event::new(time, self.me, "deliver")
        };
        self.push(event);
    }

    fn bytes(&self) -> Vec<u8> {
        self.lines
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes()
    }
}

/// Member a (10) sends to b (20), which answers; b's wall clock is a second behind a's,
/// and b does something of its own first. Then a restarts.
fn two_members() -> (MemberFile, MemberFile) {
    let (mut a, mut b) = (MemberFile::new(10, "c1"), MemberFile::new(20, "c1"));
    b.local(1_000_050, "apply");
    let m1 = a.send(2_000_100, 20);
    b.deliver(1_000_150, 10, &m1);
    let m2 = b.send(1_000_200, 10);
    a.deliver(2_000_300, 20, &m2);
    a.local(2_000_400, "crash");
    a.local(2_900_000, "restart");
    (a, b)
}

fn files(members: &[&MemberFile]) -> Vec<(String, Vec<u8>)> {
    members
        .iter()
        .map(|m| (format!("m{}.trace", m.me), m.bytes()))
        .collect()
}

fn merged(members: &[&MemberFile]) -> Merged {
    merge(&files(members)).unwrap_or_else(|e| panic!("{e}"))
}

fn merge_refused(files: &[(String, Vec<u8>)]) -> MergeError {
    match merge(files) {
        Ok(merged) => panic!("merged:\n{}", merged.trace.to_jsonl()),
        Err(e) => e,
    }
}

#[test]
fn members_files_merge_in_happened_before_order_without_synchronized_clocks() {
    let (a, b) = two_members();
    let Merged { trace, notes } = merged(&[&b, &a]);
    assert!(notes.is_empty(), "{notes:?}");
    let names: Vec<&str> = trace.header.nodes.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let order: Vec<(u64, &str, Option<u64>)> = (trace.events.iter())
        .map(|e| (e.node, e.what.as_str(), e.id))
        .collect();
    // b's own event first (earliest by its clock, concurrent with a's send); b's
    // delivery after a's send although b's clock says it came a second earlier.
    assert_eq!(
        order,
        [
            (2, "apply", None),
            (1, "send", Some(1)),
            (2, "deliver", Some(1)),
            (2, "send", Some(2)),
            (1, "deliver", Some(2)),
            (1, "crash", None),
            (1, "restart", None),
        ]
    );
    let times: Vec<u64> = trace.events.iter().map(|e| e.time).collect();
    assert_eq!(
        times,
        [0, 1_000_050, 1_000_050, 1_000_050, 1_000_250, 1_000_350, 1_899_950]
    );
    assert_eq!(
        trace.events[1].ballot.as_deref(),
        Some("1.2"),
        "ballots renumbered"
    );
    assert_eq!(trace.events[1].peer, Some(2));
    let state = trace.events[1]
        .state
        .as_ref()
        .and_then(|s| s.promised.as_deref());
    assert_eq!(state, Some("1.2"));
    assert_eq!(
        trace.faults,
        [Fault {
            kind: "crash".into(),
            nodes: vec![1],
            start: 1_000_350,
            end: Some(1_899_950),
            detail: None,
        }]
    );
    assert_eq!(read(trace.to_jsonl().as_bytes()), Ok(trace));
}

#[test]
fn a_member_file_cut_mid_line_merges_without_the_cut_line() {
    let (a, b) = two_members();
    let mut files = files(&[&a, &b]);
    files[0]
        .1
        .extend_from_slice(b"{\"time\":2000500,\"node\":1");
    let Merged { trace, notes } = merge(&files).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trace.events.len(), 7);
    assert_eq!(notes.len(), 1);
    assert!(notes[0].starts_with("m10.trace:6: cut short"), "{notes:?}");
}

#[test]
fn inconsistent_member_files_are_refused_with_the_file_and_line() {
    let (a, b) = two_members();
    let good = files(&[&a, &b]);
    let lines = |i: usize| -> Vec<String> {
        String::from_utf8_lossy(&good[i].1)
            .lines()
            .map(String::from)
            .collect()
    };
    let with = |i: usize, lines: Vec<String>| {
        let mut files = good.clone();
        files[i].1 = lines
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes();
        files
    };
    // A delivery whose send is in no file: b's file alone.
    let e = merge_refused(&good[1..]);
    assert_eq!((e.file.as_str(), e.line), ("m20.trace", 3), "{e}");
    assert!(e.problem.contains("send is in no file"), "{e}");
    // A message sent twice.
    let mut twice = lines(0);
    twice.insert(2, twice[1].clone());
    let e = merge_refused(&with(0, twice));
    assert_eq!((e.line, e.problem.contains("sent twice")), (3, true), "{e}");
    // Another cluster.
    let mut other = lines(1);
    other[0] = other[0].replace("\"c1\"", "\"c2\"");
    let e = merge_refused(&with(1, other));
    assert_eq!((e.file.as_str(), e.line), ("m20.trace", 1), "{e}");
    assert!(e.problem.contains("cluster"), "{e}");
    // A node named differently.
    let mut renamed = lines(1);
    renamed[0] = renamed[0].replace("\"name\":\"a\"", "\"name\":\"x\"");
    let e = merge_refused(&with(1, renamed));
    assert!(e.problem.contains("named"), "{e}");
    // A clock that says less than happened: b's delivery without a's send in it.
    let mut forgetful = lines(1);
    forgetful[2] = forgetful[2].replace("\"clock\":[1,2]", "\"clock\":[0,2]");
    let e = merge_refused(&with(1, forgetful));
    assert_eq!(e.line, 3, "{e}");
    assert!(e.problem.contains("happened-before"), "{e}");
    // A line after the stop line.
    let mut after = lines(1);
    after.insert(2, "{\"stop\":\"full\",\"time\":1,\"node\":20}".into());
    let e = merge_refused(&with(1, after));
    assert_eq!(e.line, 4, "{e}");
    // A simulator's trace is no member's file.
    let e = merge_refused(&[("sim.jsonl".into(), exchange().to_jsonl().into_bytes())]);
    assert_eq!(e.line, 1);
    assert!(e.problem.contains("serve"), "{e}");
    // Files that contradict each other: each delivers the other's message before
    // sending its own.
    let (mut x, mut y) = (MemberFile::new(10, "c1"), MemberFile::new(20, "c1"));
    x.deliver(1, 20, &[0, 2]);
    x.send(2, 20);
    y.deliver(1, 10, &[2, 0]);
    y.send(2, 10);
    let e = merge_refused(&files(&[&x, &y]));
    assert!(e.problem.contains("contradict"), "{e}");
    // Nothing at all, and two files of one member.
    assert!(merge(&[]).is_err());
    let e = merge_refused(&files(&[&a, &a]));
    assert!(e.problem.contains("trace"), "{e}");
}

proptest! {
    #[test]
    fn mangled_member_files_never_panic(line in 0usize..7, cut in 0usize..80, junk in ".{0,8}") {
        let (a, b) = two_members();
        let mut files = files(&[&a, &b]);
        let text = String::from_utf8_lossy(&files[0].1).into_owned();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let count = lines.len();
        let l = &mut lines[line % count];
        let at = cut.min(l.len());
        let at = (0..=at).rev().find(|&i| l.is_char_boundary(i)).unwrap_or(0);
        l.replace_range(at.., &junk);
        files[0].1 = lines.iter().map(|l| format!("{l}\n")).collect::<String>().into_bytes();
        let _ = merge(&files);
    }
}

#[test]
fn the_checked_in_real_failover_reads() {
    // docs/examples/failover-trace.jsonl, regenerated by scripts/trace-example.
    let bytes = include_bytes!("../../../../docs/examples/failover-trace.jsonl");
    let trace = read(bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trace.header.source, "serve");
    assert!(trace.events.iter().filter(|e| e.what == "elected").count() >= 2);
    assert!(trace.events.iter().any(|e| e.what == "restart"));
    assert!(trace.faults.iter().any(|f| f.kind == "crash"));
}
