//! Single-decree Paxos on the simulated network, told as a timeline.
//!
//! The run drives the real roles of `paxos::synod`. Besides what each node sees, it keeps
//! the global view no node has: every durable vote, and so the moment a value becomes
//! chosen (a phase-2 quorum accepted it at one ballot), usually before anyone knows it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use paxos::synod::{
    Acceptor, Action, Config, Learner, Message, Node, Phase, Proposer, Timing, Vote,
};
use paxos::{AcceptorSet, Ballot, NodeId, QuorumSpec, QuorumSystem};
use rand_core::SeedableRng;
use rand_pcg::Pcg64Mcg;

use crate::network::{Envelope, Fate, Faults, Network};
use crate::trace::{self, Event, Header, Recorder, State, Trace};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Options {
    /// Number of acceptors.
    pub acceptors: usize,
    /// Number of proposers, each proposing its own value.
    pub proposers: usize,
    /// Number of learners.
    pub learners: usize,
    /// The quorum system.
    pub quorum: QuorumSpec,
    /// Network faults.
    pub faults: Faults,
    /// The seed that determines the whole run.
    pub seed: u64,
    /// Proposer timeouts.
    pub timing: Timing,
    /// The run stops after this many ticks even if some node never learned.
    pub ticks_max: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            acceptors: 5,
            proposers: 3,
            learners: 2,
            quorum: QuorumSpec::Majority,
            faults: Faults {
                loss: 0.2,
                duplication: 0.1,
                delay_ticks_min: 1,
                delay_ticks_max: 6,
            },
            seed: 7,
            timing: Timing::default(),
            ticks_max: 2_000,
        }
    }
}

/// The value a proposer proposes: a fruit, so timelines read easily.
pub fn proposal_value(index: usize) -> String {
    const FRUITS: [&str; 8] = [
        "apple",
        "banana",
        "cherry",
        "damson",
        "elderberry",
        "fig",
        "grape",
        "huckleberry",
    ];
    FRUITS
        .get(index)
        .map_or_else(|| format!("value-{}", index + 1), |f| f.to_string())
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The chosen value, the tick it became chosen, and the ballot.
    pub chosen: Option<(String, u64, Ballot)>,
    /// A second value that reached a phase-2 quorum: a safety violation (never expected).
    pub second_chosen: Option<String>,
    /// Each node that learned, with the tick and the value it learned.
    pub learned: Vec<(String, u64, String)>,
    /// Nodes that never learned.
    pub unaware: Vec<String>,
    /// Messages handed to the network, lost, duplicated.
    pub sent: u64,
    /// See `sent`.
    pub lost: u64,
    /// See `sent`.
    pub duplicated: u64,
}

impl Outcome {
    /// Whether the run was safe: at most one value chosen, every learned value the chosen one.
    pub fn is_safe(&self) -> bool {
        let chosen = self.chosen.as_ref().map(|c| &c.0);
        self.second_chosen.is_none() && self.learned.iter().all(|l| Some(&l.2) == chosen)
    }
}

type SimNode = Node<String, Pcg64Mcg>;

/// A single-decree run in progress.
#[derive(Debug)]
pub struct Run {
    config: Arc<Config>,
    nodes: BTreeMap<NodeId, SimNode>,
    names: BTreeMap<NodeId, String>,
    network: Network<Message<String>>,
    rng: Pcg64Mcg,
    now: u64,
    /// Durable votes per ballot: the global view.
    votes: BTreeMap<Ballot, (String, AcceptorSet)>,
    outcome: Outcome,
    timeline: String,
    /// Messages sent so far (each gets the next id).
    messages_sent: u64,
    /// The trace, when asked for (`Run::start_trace`).
    recorder: Option<Recorder>,
}

/// Id ranges keep roles apart in ballots and traces: A1 = 1, P1 = 101, L1 = 201.
const PROPOSER_ID_BASE: u64 = 100;
const LEARNER_ID_BASE: u64 = 200;

fn ids(base: u64, count: usize) -> Vec<NodeId> {
    (1..=count as u64).map(|i| NodeId(base + i)).collect()
}

impl Run {
    /// Builds the nodes; refuses configurations the core refuses.
    pub fn new(options: &Options) -> Result<Run, String> {
        options.faults.validate()?;
        let config = Config::new(
            ids(0, options.acceptors),
            ids(PROPOSER_ID_BASE, options.proposers),
            ids(LEARNER_ID_BASE, options.learners),
            options.quorum,
        )
        .map_err(|e| e.to_string())?;
        let config = Arc::new(config);
        let mut rng = Pcg64Mcg::seed_from_u64(options.seed);
        let mut nodes = BTreeMap::new();
        let mut names = BTreeMap::new();
        for (i, &id) in config.acceptors().iter().enumerate() {
            let acceptor = Acceptor::new(id, config.clone()).map_err(|e| e.to_string())?;
            nodes.insert(id, Node::Acceptor(acceptor));
            names.insert(id, format!("A{}", i + 1));
        }
        for (i, &id) in config.proposers().iter().enumerate() {
            let node_rng = Pcg64Mcg::seed_from_u64(rand_core::RngCore::next_u64(&mut rng));
            let proposer = Proposer::new(
                id,
                config.clone(),
                proposal_value(i),
                options.timing,
                node_rng,
            )
            .map_err(|e| e.to_string())?;
            nodes.insert(id, Node::Proposer(proposer));
            names.insert(id, format!("P{}", i + 1));
        }
        for (i, &id) in config.learners().iter().enumerate() {
            let learner = Learner::new(id, config.clone()).map_err(|e| e.to_string())?;
            nodes.insert(id, Node::Learner(learner));
            names.insert(id, format!("L{}", i + 1));
        }
        Ok(Run {
            config,
            nodes,
            names,
            network: Network::new(options.faults),
            rng,
            now: 0,
            votes: BTreeMap::new(),
            outcome: Outcome {
                chosen: None,
                second_chosen: None,
                learned: Vec::new(),
                unaware: Vec::new(),
                sent: 0,
                lost: 0,
                duplicated: 0,
            },
            timeline: String::new(),
            messages_sent: 0,
            recorder: None,
        })
    }

    /// Records a trace from now on (vector clocks and node states included).
    pub fn start_trace(&mut self, seed: u64) {
        let nodes = self.names.iter().map(|(id, name)| (id.0, name.clone()));
        self.recorder = Some(Recorder::new(Header {
            source: "synod".into(),
            seed,
            nodes: nodes.collect(),
        }));
    }

    /// The trace recorded (none unless `start_trace` was called).
    pub fn take_trace(&mut self) -> Option<Result<Trace, String>> {
        self.recorder.take().map(|r| r.finish(Vec::new()))
    }

    /// Runs `options` to the end: every proposer and learner knows the chosen value, or
    /// `ticks_max` passed. Returns the timeline and the outcome.
    pub fn simulate(options: &Options) -> Result<(String, Outcome), String> {
        Ok(Run::run_to_end(options, false)?.into_parts())
    }

    /// As [`Run::simulate`], with the run's trace.
    pub fn simulate_with_trace(options: &Options) -> Result<(String, Outcome, Trace), String> {
        let mut run = Run::run_to_end(options, true)?;
        let trace = run.take_trace().ok_or("no trace was recorded")??;
        let (timeline, outcome) = run.into_parts();
        Ok((timeline, outcome, trace))
    }

    fn run_to_end(options: &Options, trace: bool) -> Result<Run, String> {
        let mut run = Run::new(options)?;
        if trace {
            run.start_trace(options.seed);
        }
        run.header(options);
        for id in run.config.proposers().to_vec() {
            run.propose(id);
        }
        while run.now < options.ticks_max && !run.everyone_knows() {
            run.now += 1;
            // Timers first: what arrives during a tick is acted on from the next tick.
            for id in run.config.proposers().to_vec() {
                run.tick(id);
            }
            while let Some(envelope) = run.network.next_due(run.now) {
                run.deliver(envelope);
            }
        }
        Ok(run)
    }

    fn header(&mut self, options: &Options) {
        let f = options.faults;
        self.line(&format!(
            "single-decree Paxos: {} acceptors, {} proposers, {} learners; quorum: {}",
            options.acceptors,
            options.proposers,
            options.learners,
            self.config.quorum()
        ));
        self.line(&format!(
            "network: loss {:.0}%, duplication {:.0}%, delay {}-{} ticks; seed {}",
            f.loss * 100.0,
            f.duplication * 100.0,
            f.delay_ticks_min,
            f.delay_ticks_max,
            options.seed
        ));
        self.line(
            "ballots read (round.proposer); a value is chosen once a phase-2 quorum accepts it \
             at one ballot\n",
        );
    }

    /// Whether every proposer and learner knows the chosen value.
    pub fn everyone_knows(&self) -> bool {
        self.nodes.values().all(|node| match node {
            Node::Proposer(p) => p.chosen().is_some(),
            Node::Learner(l) => l.learned().is_some(),
            Node::Acceptor(_) => true,
        })
    }

    /// Proposer `id` starts proposing.
    pub fn propose(&mut self, id: NodeId) {
        let Some(Node::Proposer(p)) = self.nodes.get_mut(&id) else {
            return;
        };
        let actions = p.propose();
        let value = format!("{:?}", p.own_value());
        let text = format!("proposes {value}");
        self.trace_local(id, "propose", None, Some(value));
        self.event(id, &format!("{text}: {}", self.prepare_text(&actions)));
        self.execute(id, actions);
    }

    /// One tick of node `id`'s logical clock (only proposers have timers).
    pub fn tick(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let before = phase_of(node);
        let actions = node.tick();
        let after = phase_of(node).map(|(phase, _)| phase);
        match (before, after) {
            (Some((_, Some(ballot))), Some(Phase::BackingOff { wait_ticks })) => {
                let b = self.ballot(ballot);
                let wait = ticks(wait_ticks);
                self.trace_local(
                    id,
                    "timeout",
                    Some(ballot),
                    Some(format!("backs off {wait}")),
                );
                self.event(id, &format!("round {b} timed out: backs off {wait}"));
            }
            (Some((Phase::BackingOff { .. }, _)), Some(Phase::Preparing { .. })) => {
                self.trace_local(id, "retry", None, None);
                let text = self.prepare_text(&actions);
                self.event(id, &format!("retries: {text}"));
            }
            _ => {}
        }
        self.execute(id, actions);
    }

    /// Delivers one message and tells what its recipient made of it.
    pub fn deliver(&mut self, envelope: Envelope<Message<String>>) {
        let Envelope {
            id: message_id,
            from,
            to,
            message,
        } = envelope;
        if !self.nodes.contains_key(&to) {
            return;
        }
        let recorded = self.trace_message("deliver", message_id, to, from, &message);
        let Some(node) = self.nodes.get_mut(&to) else {
            return;
        };
        let before = phase_of(node).map(|(phase, _)| phase);
        let actions = node.step(from, message.clone());
        let after = phase_of(node).map(|(phase, _)| phase);
        let text = self.describe(from, to, &message, &actions, before, after);
        if let Some(text) = text {
            self.event(to, &text);
        }
        // The delivery's state is its node's once it has handled the message.
        let state = self.state_of(to);
        if let (Some(recorder), Some(index)) = (self.recorder.as_mut(), recorded) {
            recorder.set_state(index, state);
        }
        self.execute(to, actions);
    }

    /// A message is lost: in the trace, a drop after its send (scripted scenarios lose
    /// messages by hand, and tell it on the timeline in their own words).
    pub fn trace_lost(&mut self, envelope: &Envelope<Message<String>>) {
        let Envelope {
            id,
            from,
            to,
            message,
        } = envelope;
        self.trace_message("drop", *id, *from, *to, message);
    }

    fn lost_line(&mut self, what: &str, from: NodeId, to: NodeId) {
        let route = format!("{}→{}", self.name(from), self.name(to));
        self.line(&format!("{:>6}        ✗ lost: {what} {route}", self.now));
    }

    /// Records a network event at `node` about a message to or from `peer`; returns its
    /// index in the trace.
    fn trace_message(
        &mut self,
        what: &str,
        id: u64,
        node: NodeId,
        peer: NodeId,
        message: &Message<String>,
    ) -> Option<usize> {
        self.recorder.as_ref()?;
        let event = Event {
            id: Some(id),
            message: Some(message.kind().to_string()),
            ballot: Some(trace::ballot(message.ballot())),
            peer: Some(peer.0),
            state: self.state_of(node),
            ..Event::new(self.now, node.0, what)
        };
        self.recorder.as_mut().map(|r| r.record(event))
    }

    /// Records a local event at `node`.
    fn trace_local(
        &mut self,
        node: NodeId,
        what: &str,
        ballot: Option<Ballot>,
        detail: Option<String>,
    ) {
        if self.recorder.is_none() {
            return;
        }
        let event = Event {
            ballot: ballot.map(trace::ballot),
            detail,
            state: self.state_of(node),
            ..Event::new(self.now, node.0, what)
        };
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.record(event);
        }
    }

    /// What the explorer shows of node `id`: its role, promise (a proposer's: the ballot
    /// it runs) and vote (a learner's: what it learned).
    fn state_of(&self, id: NodeId) -> Option<State> {
        let vote = |v: &Vote<String>| format!("{}={}", trace::ballot(v.ballot), v.value);
        Some(match self.nodes.get(&id)? {
            Node::Acceptor(a) => State {
                role: "acceptor".into(),
                promised: Some(trace::ballot(a.state().promised)),
                vote: a.state().accepted.as_ref().map(vote),
                ..State::default()
            },
            Node::Proposer(p) => State {
                role: "proposer".into(),
                promised: p.ballot().map(trace::ballot),
                vote: p.chosen().map(vote),
                ..State::default()
            },
            Node::Learner(l) => State {
                role: "learner".into(),
                vote: l.learned().map(vote),
                ..State::default()
            },
        })
    }

    fn execute(&mut self, id: NodeId, actions: Vec<Action<String>>) {
        for action in actions {
            match action {
                Action::PersistAcceptor(durable) => {
                    if let Some(vote) = durable.accepted {
                        self.record_vote(id, vote);
                    }
                }
                Action::PersistBallot(_) => {}
                Action::Send { to, message } => self.send(id, to, message),
                Action::Learn { ballot, value } => self.learned(id, ballot, value),
            }
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, message: Message<String>) {
        self.outcome.sent += 1;
        self.messages_sent += 1;
        let id = self.messages_sent;
        self.trace_message("send", id, from, to, &message);
        let what = format!("{} {}", message.kind(), self.ballot(message.ballot()));
        let traced = self.recorder.is_some().then(|| message.clone());
        let envelope = Envelope {
            id,
            from,
            to,
            message,
        };
        match self.network.send(self.now, envelope, &mut self.rng) {
            Fate::Lost => {
                self.outcome.lost += 1;
                if let Some(message) = traced {
                    self.trace_message("drop", id, from, to, &message);
                }
                self.lost_line(&what, from, to);
            }
            Fate::Duplicated => self.outcome.duplicated += 1,
            Fate::Delivered => {}
        }
    }

    /// The global view: a vote becomes durable; does a phase-2 quorum now agree?
    fn record_vote(&mut self, acceptor: NodeId, vote: Vote<String>) {
        let Some(index) = self.config.acceptor_index(acceptor) else {
            return;
        };
        let entry = self
            .votes
            .entry(vote.ballot)
            .or_insert_with(|| (vote.value.clone(), AcceptorSet::EMPTY));
        entry.1.insert(index);
        let voters = entry.1;
        if !self.config.quorum().is_phase2_quorum(voters) {
            return;
        }
        match &self.outcome.chosen {
            None => {
                self.outcome.chosen = Some((vote.value.clone(), self.now, vote.ballot));
                let names = self.set_names(voters);
                let b = self.ballot(vote.ballot);
                // The moment no node sees: at the acceptor whose vote completed the quorum.
                let detail = format!("{:?} accepted by {names}", vote.value);
                self.trace_local(acceptor, "chosen", Some(vote.ballot), Some(detail));
                self.line(&format!(
                    "{:>6}  ★     CHOSEN {:?} at {b}: accepted by {names}. No participant \
                     knows yet.",
                    self.now, vote.value
                ));
            }
            Some((value, _, _)) if *value != vote.value => {
                self.outcome.second_chosen = Some(vote.value.clone());
                self.line(&format!(
                    "{:>6}  ✗✗    SAFETY VIOLATION: {:?} also chosen",
                    self.now, vote.value
                ));
            }
            Some(_) => {}
        }
    }

    fn learned(&mut self, id: NodeId, ballot: Ballot, value: String) {
        let name = self.name(id);
        self.outcome.learned.push((name, self.now, value.clone()));
        let b = self.ballot(ballot);
        self.trace_local(id, "learn", Some(ballot), Some(format!("{value:?}")));
        self.event(
            id,
            &format!("learns {value:?} is chosen (phase-2 quorum at {b})"),
        );
    }

    /// Ends the run: adds the summary; returns the timeline and the outcome.
    pub fn into_parts(mut self) -> (String, Outcome) {
        let unaware: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, node)| match node {
                Node::Proposer(p) => p.chosen().is_none(),
                Node::Learner(l) => l.learned().is_none(),
                Node::Acceptor(_) => false,
            })
            .map(|(&id, _)| self.name(id))
            .collect();
        self.outcome.unaware = unaware;
        self.summary();
        (self.timeline, self.outcome)
    }

    fn summary(&mut self) {
        let o = self.outcome.clone();
        self.line("");
        match &o.chosen {
            Some((value, tick, ballot)) => {
                let b = self.ballot(*ballot);
                self.line(&format!("chosen: {value:?} at tick {tick}, ballot {b}"))
            }
            None => self.line(&format!("chosen: nothing by tick {}", self.now)),
        }
        let known: Vec<String> = o
            .learned
            .iter()
            .map(|(n, t, _)| format!("{n}@{t}"))
            .collect();
        self.line(&format!("learned: {}", known.join(", ")));
        if !o.unaware.is_empty() {
            self.line(&format!(
                "never learned: {} (by tick {}: the votes sent to them were lost, or the run \
                 ended first)",
                o.unaware.join(", "),
                self.now
            ));
        }
        self.line(&format!(
            "network: {} messages sent, {} lost, {} duplicated",
            o.sent, o.lost, o.duplicated
        ));
        let safety = if o.is_safe() { "safe" } else { "UNSAFE" };
        self.line(&format!(
            "safety: {safety} (at most one value chosen; whoever learned, learned it)"
        ));
    }

    /// The network, for scripted scenarios that deliver by hand.
    pub fn network(&mut self) -> &mut Network<Message<String>> {
        &mut self.network
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Node `id`, for scripted scenarios that inspect state.
    pub fn node(&self, id: NodeId) -> Option<&SimNode> {
        self.nodes.get(&id)
    }

    /// Advances the clock of a scripted scenario by one tick.
    pub fn advance(&mut self) {
        self.now += 1;
    }

    /// Appends a line of commentary to the timeline.
    pub fn note(&mut self, text: &str) {
        self.line(text);
    }

    /// The display name of `id` (A1, P2, L1…).
    pub fn name(&self, id: NodeId) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("?{id}"))
    }

    /// A ballot as `(round.Pn)`.
    pub fn ballot(&self, ballot: Ballot) -> String {
        format!("({}.{})", ballot.round, self.name(ballot.node))
    }

    fn set_names(&self, set: AcceptorSet) -> String {
        let acceptors = self.config.acceptors();
        let names: Vec<String> = set.iter().map(|i| self.name(acceptors[i])).collect();
        names.join(", ")
    }

    fn vote_text(&self, vote: &Option<Vote<String>>) -> String {
        match vote {
            Some(v) => format!("{}={:?}", self.ballot(v.ballot), v.value),
            None => "nothing".to_string(),
        }
    }

    fn prepare_text(&self, actions: &[Action<String>]) -> String {
        match actions.iter().find_map(|a| match a {
            Action::PersistBallot(b) => Some(*b),
            _ => None,
        }) {
            Some(b) => format!("prepare {} → all acceptors", self.ballot(b)),
            None => "no ballot left".to_string(),
        }
    }

    /// What a delivery did, in words; `None` for deliveries not worth a line.
    fn describe(
        &self,
        from: NodeId,
        to: NodeId,
        message: &Message<String>,
        actions: &[Action<String>],
        before: Option<Phase<String>>,
        after: Option<Phase<String>>,
    ) -> Option<String> {
        let sender = self.name(from);
        let b = self.ballot(message.ballot());
        let reply = actions.iter().find_map(|a| match a {
            Action::Send { message, .. } => Some(message),
            _ => None,
        });
        let persisted = actions
            .iter()
            .any(|a| matches!(a, Action::PersistAcceptor(_)));
        let repeat = if persisted { "" } else { " again (duplicate)" };
        match (message, reply) {
            (Message::Prepare { .. }, Some(Message::Promise { accepted, .. })) => Some(format!(
                "← prepare {b} from {sender}: promises{repeat}, reporting {}",
                self.vote_text(accepted)
            )),
            (Message::Accept { value, .. }, Some(Message::Accepted { .. })) => Some(format!(
                "← accept {b}={value:?} from {sender}: accepts{repeat}"
            )),
            (
                Message::Prepare { .. } | Message::Accept { .. },
                Some(Message::Nack { promised, .. }),
            ) => Some(format!(
                "← {} {b} from {sender}: refuses, promised {}",
                message.kind(),
                self.ballot(*promised)
            )),
            (Message::Promise { accepted, .. }, _) => {
                let reported = accepted.is_some()
                    || matches!(
                        &before,
                        Some(Phase::Preparing {
                            highest: Some(_),
                            ..
                        })
                    );
                match before {
                    Some(Phase::Preparing { .. }) => {
                        self.describe_promise(to, &sender, &b, reported, after)
                    }
                    _ => None,
                }
            }
            (Message::Accepted { value, .. }, _) => {
                let learned = actions.iter().any(|a| matches!(a, Action::Learn { .. }));
                self.describe_accepted(to, &sender, &b, value, learned, after)
            }
            (Message::Nack { promised, .. }, _) => match after {
                Some(Phase::BackingOff { wait_ticks }) if before != after => Some(format!(
                    "← nack {b} from {sender}: fenced by {}; steps down, backs off {}",
                    self.ballot(*promised),
                    ticks(wait_ticks)
                )),
                _ => None,
            },
            _ => None,
        }
    }

    /// An accepted reply reaching a proposer or a learner that does not know the outcome
    /// yet; repeats and late arrivals are not worth a line.
    fn describe_accepted(
        &self,
        to: NodeId,
        sender: &str,
        b: &str,
        value: &str,
        learned: bool,
        after: Option<Phase<String>>,
    ) -> Option<String> {
        let received = format!("← accepted {b}={value:?} from {sender}");
        if learned {
            return Some(format!("{received}: phase-2 quorum"));
        }
        match (self.nodes.get(&to), after) {
            (Some(Node::Proposer(_)), Some(Phase::Accepting { accepted, .. })) => {
                Some(format!("{received} ({} so far)", accepted.len()))
            }
            (Some(Node::Learner(l)), _) if l.learned().is_none() => Some(received),
            _ => None,
        }
    }

    fn describe_promise(
        &self,
        to: NodeId,
        sender: &str,
        b: &str,
        reported: bool,
        after: Option<Phase<String>>,
    ) -> Option<String> {
        match after {
            Some(Phase::Preparing { promised, .. }) => Some(format!(
                "← promise {b} from {sender} ({} so far)",
                promised.len()
            )),
            Some(Phase::Accepting {
                value, accepted, ..
            }) if accepted.is_empty() => {
                let own = match self.nodes.get(&to) {
                    Some(Node::Proposer(p)) => p.own_value().clone(),
                    _ => String::new(),
                };
                let why = match (reported, value == own) {
                    (false, _) => "no promise reported a vote, so it proposes its own value".into(),
                    (true, true) => format!("the highest vote reported is {value:?}, its own"),
                    (true, false) => format!(
                        "the highest vote reported is {value:?}, so by P2c it proposes that, \
                         not its own {own:?}"
                    ),
                };
                Some(format!(
                    "← promise {b} from {sender}: phase-1 quorum; {why}: accept {b}={value:?} → \
                     all acceptors"
                ))
            }
            _ => None,
        }
    }

    fn event(&mut self, id: NodeId, text: &str) {
        let line = format!("{:>6}  {:<4}  {text}", self.now, self.name(id));
        self.line(&line);
    }

    fn line(&mut self, text: &str) {
        let _ = writeln!(self.timeline, "{text}");
    }
}

fn ticks(n: u32) -> String {
    if n == 1 {
        "1 tick".into()
    } else {
        format!("{n} ticks")
    }
}

/// A proposer's phase and ballot, or `None` for other roles.
fn phase_of(node: &SimNode) -> Option<(Phase<String>, Option<Ballot>)> {
    match node {
        Node::Proposer(p) => Some((p.phase().clone(), p.ballot())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(seed: u64, quorum: QuorumSpec, acceptors: usize) -> Options {
        Options {
            seed,
            quorum,
            acceptors,
            ..Options::default()
        }
    }

    #[test]
    fn same_seed_same_timeline() {
        let (a, _) = Run::simulate(&Options::default()).unwrap();
        let (b, _) = Run::simulate(&Options::default()).unwrap();
        assert_eq!(a, b);
        let (c, _) = Run::simulate(&options(8, QuorumSpec::Majority, 5)).unwrap();
        assert_ne!(a, c, "the seed matters");
    }

    #[test]
    fn seed_7_chooses_one_value_that_everyone_learns() {
        let (timeline, outcome) = Run::simulate(&Options::default()).unwrap();
        assert!(outcome.is_safe(), "{timeline}");
        let (value, _, _) = outcome.chosen.clone().expect("chosen");
        assert!(timeline.contains("CHOSEN"));
        assert!(timeline.contains("✗ lost"));
        assert_eq!(outcome.learned.len() + outcome.unaware.len(), 5);
        assert!(outcome.learned.iter().all(|(_, _, v)| *v == value));
    }

    #[test]
    fn hundreds_of_seeds_are_safe_under_every_quorum_system() {
        let systems = [
            (QuorumSpec::Majority, 5),
            (QuorumSpec::Flexible { q1: 4, q2: 2 }, 5),
            (QuorumSpec::Grid { rows: 2, cols: 3 }, 6),
        ];
        for (quorum, acceptors) in systems {
            let mut chosen_runs = 0;
            for seed in 0..200 {
                let (timeline, outcome) = Run::simulate(&options(seed, quorum, acceptors)).unwrap();
                assert!(outcome.is_safe(), "seed {seed} {quorum}:\n{timeline}");
                chosen_runs += usize::from(outcome.chosen.is_some());
            }
            assert!(
                chosen_runs >= 195,
                "{quorum}: only {chosen_runs} of 200 runs chose"
            );
        }
    }

    #[test]
    fn refuses_unsafe_or_impossible_configurations() {
        let unsafe_quorum = options(1, QuorumSpec::Flexible { q1: 2, q2: 2 }, 5);
        assert!(Run::simulate(&unsafe_quorum)
            .unwrap_err()
            .contains("unsafe"));
        let bad_grid = options(1, QuorumSpec::Grid { rows: 2, cols: 2 }, 5);
        assert!(Run::simulate(&bad_grid).unwrap_err().contains("grid:2x2"));
        let all_lost = Options {
            faults: Faults {
                loss: 1.0,
                ..Faults::NONE
            },
            ..Options::default()
        };
        assert!(Run::simulate(&all_lost).is_err());
    }
}
