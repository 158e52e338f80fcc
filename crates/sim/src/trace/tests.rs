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
