//! Quorum systems: which sets of acceptors suffice for phase 1 and for phase 2.
//!
//! Paxos is safe as long as **every phase-1 quorum intersects every phase-2 quorum**: a
//! proposer's phase 1 then always hears from at least one acceptor of any phase-2 quorum
//! that may have chosen a value (seed 001, P2c). Phase-2 quorums need not intersect each
//! other, and neither need phase-1 quorums (Flexible Paxos, Howard et al. 2016). That
//! freedom is what [`Flexible`] and [`Grid`] spend on cheaper phase 2.
//!
//! Every quorum system here is *monotone* (a superset of a quorum is a quorum), so the
//! intersection property has a cheap exact test: no phase-1 quorum's complement is a
//! phase-2 quorum. [`find_disjoint_quorums`] runs that test over all `2^n` subsets; the
//! constructors use closed-form rules, and the tests check the two agree for `n ≤ 16`.

use std::fmt;
use std::str::FromStr;

use crate::node::{AcceptorSet, ACCEPTORS_MAX};

/// Decides whether a set of acceptors (by configuration index) is a quorum.
pub trait QuorumSystem {
    /// How many acceptors the system is defined over.
    fn acceptor_count(&self) -> usize;
    /// Whether `set` suffices for phase 1 (prepare/promise).
    fn is_phase1_quorum(&self, set: AcceptorSet) -> bool;
    /// Whether `set` suffices for phase 2 (accept/accepted): a value accepted by a phase-2
    /// quorum at one ballot is chosen.
    fn is_phase2_quorum(&self, set: AcceptorSet) -> bool;
}

/// Why a quorum configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumError {
    /// Zero acceptors: nothing can ever be chosen.
    NoAcceptors,
    /// More acceptors than an [`AcceptorSet`] holds.
    TooManyAcceptors {
        /// The number asked for.
        count: usize,
    },
    /// A flexible quorum size of 0 or above the number of acceptors.
    FlexibleSizeOutOfRange {
        /// Acceptors in the configuration.
        acceptors: usize,
        /// Phase-1 quorum size.
        q1: usize,
        /// Phase-2 quorum size.
        q2: usize,
    },
    /// `q1 + q2 <= n`: some phase-1 quorum can miss some phase-2 quorum.
    FlexibleMayNotIntersect {
        /// Acceptors in the configuration.
        acceptors: usize,
        /// Phase-1 quorum size.
        q1: usize,
        /// Phase-2 quorum size.
        q2: usize,
    },
    /// A grid with no rows or no columns.
    GridEmpty {
        /// Rows asked for.
        rows: usize,
        /// Columns asked for.
        cols: usize,
    },
    /// The grid does not cover the configuration's acceptors exactly.
    GridSizeMismatch {
        /// Rows asked for.
        rows: usize,
        /// Columns asked for.
        cols: usize,
        /// Acceptors in the configuration.
        acceptors: usize,
    },
    /// A quorum specification that does not parse.
    BadSpec {
        /// The text given.
        spec: String,
    },
}

impl fmt::Display for QuorumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            QuorumError::NoAcceptors => write!(
                f,
                "a quorum system needs at least one acceptor; configure 3 or 5 for fault tolerance"
            ),
            QuorumError::TooManyAcceptors { count } => write!(
                f,
                "{count} acceptors is more than the {ACCEPTORS_MAX} a configuration supports"
            ),
            QuorumError::FlexibleSizeOutOfRange { acceptors, q1, q2 } => write!(
                f,
                "flexible:{q1},{q2} over {acceptors} acceptors: each quorum size must be \
                 between 1 and {acceptors}"
            ),
            QuorumError::FlexibleMayNotIntersect { acceptors, q1, q2 } => write!(
                f,
                "flexible:{q1},{q2} over {acceptors} acceptors is unsafe: a phase-1 quorum of \
                 {q1} and a phase-2 quorum of {q2} can be disjoint because {q1} + {q2} <= \
                 {acceptors}, and then two different values can be chosen; choose q1 + q2 > \
                 {acceptors}, for example flexible:{},{q2}, or use majority",
                acceptors + 1 - q2.min(acceptors)
            ),
            QuorumError::GridEmpty { rows, cols } => write!(
                f,
                "grid:{rows}x{cols} has no acceptors; a grid needs at least one row and one \
                 column, for example grid:3x3"
            ),
            QuorumError::GridSizeMismatch {
                rows,
                cols,
                acceptors,
            } => write!(
                f,
                "grid:{rows}x{cols} places {} acceptors but the configuration has {acceptors}; \
                 every acceptor must sit in exactly one cell",
                rows.saturating_mul(cols)
            ),
            QuorumError::BadSpec { ref spec } => write!(
                f,
                "unknown quorum system {spec:?}; expected majority, flexible:Q1,Q2 (Q1 + Q2 > \
                 acceptors) or grid:RxC (R x C = acceptors)"
            ),
        }
    }
}

impl std::error::Error for QuorumError {}

fn check_count(count: usize) -> Result<(), QuorumError> {
    match count {
        0 => Err(QuorumError::NoAcceptors),
        c if c > ACCEPTORS_MAX => Err(QuorumError::TooManyAcceptors { count: c }),
        _ => Ok(()),
    }
}

/// Classic Paxos: both phases need more than half of the acceptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Majority {
    acceptors: usize,
}

impl Majority {
    /// A majority quorum system over `acceptors` acceptors.
    pub fn new(acceptors: usize) -> Result<Majority, QuorumError> {
        check_count(acceptors)?;
        Ok(Majority { acceptors })
    }

    /// The size of a quorum: `⌊n/2⌋ + 1`.
    pub fn size(&self) -> usize {
        self.acceptors / 2 + 1
    }
}

impl QuorumSystem for Majority {
    fn acceptor_count(&self) -> usize {
        self.acceptors
    }
    fn is_phase1_quorum(&self, set: AcceptorSet) -> bool {
        set.intersection(AcceptorSet::all(self.acceptors)).len() >= self.size()
    }
    fn is_phase2_quorum(&self, set: AcceptorSet) -> bool {
        self.is_phase1_quorum(set)
    }
}

/// Flexible Paxos: any `q1` acceptors for phase 1, any `q2` for phase 2, with
/// `q1 + q2 > n`. A small `q2` makes the common path (phase 2) cheaper and more available,
/// paid for by a larger phase 1, which runs only on leader change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flexible {
    acceptors: usize,
    q1: usize,
    q2: usize,
}

impl Flexible {
    /// Phase-1 quorums of `q1` and phase-2 quorums of `q2` over `acceptors` acceptors;
    /// refused unless `1 <= q1, q2 <= acceptors` and `q1 + q2 > acceptors`.
    pub fn new(acceptors: usize, q1: usize, q2: usize) -> Result<Flexible, QuorumError> {
        check_count(acceptors)?;
        if q1 == 0 || q2 == 0 || q1 > acceptors || q2 > acceptors {
            return Err(QuorumError::FlexibleSizeOutOfRange { acceptors, q1, q2 });
        }
        if q1 + q2 <= acceptors {
            return Err(QuorumError::FlexibleMayNotIntersect { acceptors, q1, q2 });
        }
        Ok(Flexible { acceptors, q1, q2 })
    }

    /// Builds an unsafe pair on purpose, for the negative controls of the model checker.
    #[cfg(test)]
    pub(crate) fn new_unchecked(acceptors: usize, q1: usize, q2: usize) -> Flexible {
        Flexible { acceptors, q1, q2 }
    }

    /// Phase-1 quorum size.
    pub fn q1(&self) -> usize {
        self.q1
    }

    /// Phase-2 quorum size.
    pub fn q2(&self) -> usize {
        self.q2
    }
}

impl QuorumSystem for Flexible {
    fn acceptor_count(&self) -> usize {
        self.acceptors
    }
    fn is_phase1_quorum(&self, set: AcceptorSet) -> bool {
        set.intersection(AcceptorSet::all(self.acceptors)).len() >= self.q1
    }
    fn is_phase2_quorum(&self, set: AcceptorSet) -> bool {
        set.intersection(AcceptorSet::all(self.acceptors)).len() >= self.q2
    }
}

/// Grid quorums (seed 000): acceptors in `rows × cols` cells, acceptor `i` at row
/// `i / cols`, column `i % cols`. Phase 1 needs one full row, phase 2 one full column.
/// Every row meets every column in exactly one cell, so the phases always intersect, while
/// phase 2 touches only `rows` acceptors. A 3×6 grid: phase 2 = 3 acceptors, phase 1 = 6,
/// and a leader change followed by a write touches 3 + 6 − 1 = 8 of the 18.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Grid {
    rows: usize,
    cols: usize,
}

impl Grid {
    /// A `rows × cols` grid; refused if empty or larger than [`ACCEPTORS_MAX`].
    pub fn new(rows: usize, cols: usize) -> Result<Grid, QuorumError> {
        if rows == 0 || cols == 0 {
            return Err(QuorumError::GridEmpty { rows, cols });
        }
        check_count(rows.saturating_mul(cols))?;
        Ok(Grid { rows, cols })
    }

    /// Number of rows (the size of a phase-2 quorum).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (the size of a phase-1 quorum).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The acceptors of row `row`.
    pub fn row(&self, row: usize) -> AcceptorSet {
        (0..self.cols).map(|c| row * self.cols + c).collect()
    }

    /// The acceptors of column `col`.
    pub fn column(&self, col: usize) -> AcceptorSet {
        (0..self.rows).map(|r| r * self.cols + col).collect()
    }
}

impl QuorumSystem for Grid {
    fn acceptor_count(&self) -> usize {
        self.rows * self.cols
    }
    fn is_phase1_quorum(&self, set: AcceptorSet) -> bool {
        (0..self.rows).any(|r| set.is_superset(self.row(r)))
    }
    fn is_phase2_quorum(&self, set: AcceptorSet) -> bool {
        (0..self.cols).any(|c| set.is_superset(self.column(c)))
    }
}

/// A quorum system as written in configuration: `majority`, `flexible:Q1,Q2` or
/// `grid:RxC`. [`QuorumSpec::build`] checks it against the number of acceptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum QuorumSpec {
    /// `majority`
    #[default]
    Majority,
    /// `flexible:Q1,Q2`
    Flexible {
        /// Phase-1 quorum size.
        q1: usize,
        /// Phase-2 quorum size.
        q2: usize,
    },
    /// `grid:RxC`
    Grid {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
}

impl QuorumSpec {
    /// The quorum system this spec describes over `acceptors` acceptors, or why it is unsafe
    /// or inconsistent.
    pub fn build(self, acceptors: usize) -> Result<Quorum, QuorumError> {
        Ok(match self {
            QuorumSpec::Majority => Quorum::Majority(Majority::new(acceptors)?),
            QuorumSpec::Flexible { q1, q2 } => Quorum::Flexible(Flexible::new(acceptors, q1, q2)?),
            QuorumSpec::Grid { rows, cols } => {
                let grid = Grid::new(rows, cols)?;
                if grid.acceptor_count() != acceptors {
                    return Err(QuorumError::GridSizeMismatch {
                        rows,
                        cols,
                        acceptors,
                    });
                }
                Quorum::Grid(grid)
            }
        })
    }
}

impl FromStr for QuorumSpec {
    type Err = QuorumError;

    fn from_str(text: &str) -> Result<QuorumSpec, QuorumError> {
        let bad = || QuorumError::BadSpec {
            spec: text.to_string(),
        };
        let number = |s: &str| s.trim().parse::<usize>().map_err(|_| bad());
        let lower = text.trim().to_ascii_lowercase();
        if lower == "majority" {
            return Ok(QuorumSpec::Majority);
        }
        if let Some(sizes) = lower.strip_prefix("flexible:") {
            let (q1, q2) = sizes.split_once(',').ok_or_else(bad)?;
            return Ok(QuorumSpec::Flexible {
                q1: number(q1)?,
                q2: number(q2)?,
            });
        }
        if let Some(shape) = lower.strip_prefix("grid:") {
            let (rows, cols) = shape.split_once('x').ok_or_else(bad)?;
            return Ok(QuorumSpec::Grid {
                rows: number(rows)?,
                cols: number(cols)?,
            });
        }
        Err(bad())
    }
}

impl fmt::Display for QuorumSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuorumSpec::Majority => write!(f, "majority"),
            QuorumSpec::Flexible { q1, q2 } => write!(f, "flexible:{q1},{q2}"),
            QuorumSpec::Grid { rows, cols } => write!(f, "grid:{rows}x{cols}"),
        }
    }
}

/// One of the quorum systems, checked for intersection when built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quorum {
    /// See [`Majority`].
    Majority(Majority),
    /// See [`Flexible`].
    Flexible(Flexible),
    /// See [`Grid`].
    Grid(Grid),
}

impl Quorum {
    /// The spec that builds this system.
    pub fn spec(&self) -> QuorumSpec {
        match *self {
            Quorum::Majority(_) => QuorumSpec::Majority,
            Quorum::Flexible(f) => QuorumSpec::Flexible { q1: f.q1, q2: f.q2 },
            Quorum::Grid(g) => QuorumSpec::Grid {
                rows: g.rows,
                cols: g.cols,
            },
        }
    }

    fn system(&self) -> &dyn QuorumSystem {
        match self {
            Quorum::Majority(q) => q,
            Quorum::Flexible(q) => q,
            Quorum::Grid(q) => q,
        }
    }
}

impl QuorumSystem for Quorum {
    fn acceptor_count(&self) -> usize {
        self.system().acceptor_count()
    }
    fn is_phase1_quorum(&self, set: AcceptorSet) -> bool {
        self.system().is_phase1_quorum(set)
    }
    fn is_phase2_quorum(&self, set: AcceptorSet) -> bool {
        self.system().is_phase2_quorum(set)
    }
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quorum::Majority(m) => write!(
                f,
                "majority ({} of {} acceptors in each phase)",
                m.size(),
                m.acceptors
            ),
            Quorum::Flexible(q) => write!(
                f,
                "flexible (phase 1: {} of {}, phase 2: {} of {})",
                q.q1, q.acceptors, q.q2, q.acceptors
            ),
            Quorum::Grid(g) => write!(
                f,
                "grid {}x{} (phase 1: a full row of {}, phase 2: a full column of {})",
                g.rows, g.cols, g.cols, g.rows
            ),
        }
    }
}

/// Searches all `2^n` subsets for a phase-1 quorum and a phase-2 quorum that share no
/// acceptor; `None` means every pair intersects.
///
/// Exact for monotone systems (all of this module's): a phase-1 quorum `s` misses some
/// phase-2 quorum iff its complement is itself a phase-2 quorum. Meant for tests and
/// tools, not hot paths; refuses (panics) above 24 acceptors, where it would take seconds.
pub fn find_disjoint_quorums(system: &impl QuorumSystem) -> Option<(AcceptorSet, AcceptorSet)> {
    let n = system.acceptor_count();
    assert!(n <= 24, "exhaustive search over 2^{n} subsets is too slow");
    (0..1u64 << n).map(AcceptorSet::from_bits).find_map(|s| {
        let rest = s.complement(n);
        (system.is_phase1_quorum(s) && system.is_phase2_quorum(rest)).then_some((s, rest))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(members: &[usize]) -> AcceptorSet {
        members.iter().copied().collect()
    }

    /// (system, set, phase-1 quorum?, phase-2 quorum?)
    #[test]
    fn quorum_arithmetic_table() {
        let majority3 = Quorum::Majority(Majority::new(3).unwrap());
        let majority4 = Quorum::Majority(Majority::new(4).unwrap());
        let flexible5 = Quorum::Flexible(Flexible::new(5, 4, 2).unwrap());
        let grid2x3 = Quorum::Grid(Grid::new(2, 3).unwrap());
        let grid3x6 = Quorum::Grid(Grid::new(3, 6).unwrap());
        let cases: &[(&Quorum, &[usize], bool, bool)] = &[
            (&majority3, &[], false, false),
            (&majority3, &[0], false, false),
            (&majority3, &[0, 2], true, true),
            (&majority3, &[0, 1, 2], true, true),
            (&majority4, &[1, 3], false, false),
            (&majority4, &[0, 1, 3], true, true),
            (&flexible5, &[0, 4], false, true),
            (&flexible5, &[0, 1, 2], false, true),
            (&flexible5, &[0, 1, 2, 4], true, true),
            (&flexible5, &[4], false, false),
            // grid 2x3: rows {0,1,2} {3,4,5}; columns {0,3} {1,4} {2,5}
            (&grid2x3, &[0, 1, 2], true, false),
            (&grid2x3, &[1, 4], false, true),
            (&grid2x3, &[0, 1, 2, 5], true, true),
            (&grid2x3, &[0, 1, 3, 4], false, true),
            (&grid2x3, &[0, 4, 2], false, false),
            // seed 000: 3x6 grid; column 0 = {0, 6, 12}, row 1 = {6..=11}
            (&grid3x6, &[0, 6, 12], false, true),
            (&grid3x6, &[6, 7, 8, 9, 10, 11], true, false),
            (&grid3x6, &[0, 6, 12, 7, 8, 9, 10, 11], true, true),
        ];
        for &(system, members, phase1, phase2) in cases {
            let s = set(members);
            assert_eq!(
                system.is_phase1_quorum(s),
                phase1,
                "{system} phase 1 of {s:?}"
            );
            assert_eq!(
                system.is_phase2_quorum(s),
                phase2,
                "{system} phase 2 of {s:?}"
            );
        }
    }

    #[test]
    fn seed000_grid_touches_eight_of_eighteen() {
        let grid = Grid::new(3, 6).unwrap();
        let touched = grid.row(1).bits() | grid.column(4).bits();
        assert_eq!(AcceptorSet::from_bits(touched).len(), 3 + 6 - 1);
    }

    #[test]
    fn majority_closed_form_matches_exhaustive_search() {
        for n in 1..=16 {
            assert_eq!(
                find_disjoint_quorums(&Majority::new(n).unwrap()),
                None,
                "n={n}"
            );
        }
    }

    #[test]
    fn flexible_constructor_accepts_exactly_the_intersecting_pairs() {
        for n in 1..=16 {
            for q1 in 1..=n {
                for q2 in 1..=n {
                    let exhaustive = find_disjoint_quorums(&Flexible::new_unchecked(n, q1, q2));
                    let built = Flexible::new(n, q1, q2);
                    assert_eq!(built.is_ok(), exhaustive.is_none(), "n={n} q1={q1} q2={q2}");
                }
            }
        }
    }

    #[test]
    fn every_grid_up_to_16_intersects() {
        for rows in 1..=16 {
            for cols in 1..=16 / rows {
                let grid = Grid::new(rows, cols).unwrap();
                assert_eq!(find_disjoint_quorums(&grid), None, "{rows}x{cols}");
            }
        }
    }

    #[test]
    fn exhaustive_search_finds_the_disjoint_pair() {
        let (p1, p2) = find_disjoint_quorums(&Flexible::new_unchecked(5, 2, 3)).unwrap();
        assert_eq!((p1.len(), p2.len()), (2, 3));
        assert!(p1.intersection(p2).is_empty());
    }

    #[test]
    fn refusals_say_why_and_what_would_work() {
        let err = Flexible::new(5, 2, 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "flexible:2,2 over 5 acceptors is unsafe: a phase-1 quorum of 2 and a phase-2 \
             quorum of 2 can be disjoint because 2 + 2 <= 5, and then two different values \
             can be chosen; choose q1 + q2 > 5, for example flexible:4,2, or use majority"
        );
        assert_eq!(Majority::new(0).unwrap_err(), QuorumError::NoAcceptors);
        assert_eq!(
            Majority::new(65).unwrap_err(),
            QuorumError::TooManyAcceptors { count: 65 }
        );
        assert!(matches!(
            Flexible::new(3, 0, 3),
            Err(QuorumError::FlexibleSizeOutOfRange { .. })
        ));
        assert!(matches!(
            Flexible::new(3, 4, 1),
            Err(QuorumError::FlexibleSizeOutOfRange { .. })
        ));
        assert_eq!(
            Grid::new(0, 3).unwrap_err(),
            QuorumError::GridEmpty { rows: 0, cols: 3 }
        );
        assert!(Grid::new(9, 9).is_err());
        let mismatch = QuorumSpec::Grid { rows: 3, cols: 6 }.build(5).unwrap_err();
        assert_eq!(
            mismatch.to_string(),
            "grid:3x6 places 18 acceptors but the configuration has 5; every acceptor must \
             sit in exactly one cell"
        );
    }

    #[test]
    fn specs_parse_and_print() {
        let cases = [
            ("majority", Some(QuorumSpec::Majority)),
            ("flexible:4,2", Some(QuorumSpec::Flexible { q1: 4, q2: 2 })),
            ("GRID:3x6", Some(QuorumSpec::Grid { rows: 3, cols: 6 })),
            ("flexible:4", None),
            ("grid:3*6", None),
            ("grid:ax2", None),
            ("raft", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<QuorumSpec>().ok(), expected, "{text:?}");
            if let Some(spec) = expected {
                assert_eq!(spec.to_string().parse::<QuorumSpec>().unwrap(), spec);
            }
        }
        assert!("raft"
            .parse::<QuorumSpec>()
            .unwrap_err()
            .to_string()
            .contains("expected majority, flexible:Q1,Q2"));
    }

    #[test]
    fn built_systems_describe_themselves() {
        let grid = QuorumSpec::Grid { rows: 2, cols: 3 }.build(6).unwrap();
        assert_eq!(
            grid.to_string(),
            "grid 2x3 (phase 1: a full row of 3, phase 2: a full column of 2)"
        );
        assert_eq!(grid.spec(), QuorumSpec::Grid { rows: 2, cols: 3 });
        let majority = QuorumSpec::Majority.build(5).unwrap();
        assert_eq!(
            majority.to_string(),
            "majority (3 of 5 acceptors in each phase)"
        );
    }
}
