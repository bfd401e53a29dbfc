//! A one-pass way to read a rule's captures: the rule's regex, cut at its top-level
//! concatenation into steps (literals, matchers, lazy gaps, assertions), each matched in turn
//! where the last one ended, taking each step's own first choice.
//!
//! Why it is exact: a backtracking engine's leftmost-first match is the first path, in
//! priority order, that reaches the end. Taking each step's first choice walks the first path;
//! if that path reaches the end of the line, no earlier path can have, so it is the match the
//! whole regex gives, with the same spans. If it does not, a later choice might still succeed,
//! and the caller asks the whole regex. So the plan only ever answers "these spans" or "ask the
//! regex", and the regex crate's capture engine (the costly part of a parse, measured) runs only
//! for lines that need backtracking between steps.

use regex_automata::meta;
use regex_automata::util::look::{Look, LookMatcher};
use regex_automata::{Anchored, Input};
use regex_syntax::hir::{self, Hir, HirKind};

/// The steps of one rule.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    steps: Vec<Step>,
    /// What every match ends with, when the last step that consumes text says so.
    ends_with: Option<End>,
}

/// The last step that consumes text, when it tells how any match ends: every path through a
/// concatenation takes every step, so a line that does not end so cannot match at all.
#[derive(Debug, Clone)]
enum End {
    Literal(Box<[u8]>),
    /// A character of this class (a run of at least one).
    Class(Class),
}

#[derive(Debug, Clone)]
enum Step {
    Literal(Box<[u8]>),
    /// An assertion between steps (`\A`, `\z`, an ASCII word boundary).
    Look(Look),
    /// Where grok capture `n` starts and ends.
    Open(usize),
    Close(usize),
    /// A character class repeated greedily (`\S+`, `[0-9]{2}`, `[+-]?`), checked here without
    /// the engine. Followed by a literal, its first choice is the longest run the literal can
    /// follow (a longer one fails at the literal at once), so `"%{notSpace}"` gives back the
    /// closing quote as the regex would.
    Repeat(Repeat),
    /// `.*?` (`dotall`: also across newlines): up to the first place the next step, a literal
    /// or the end, matches. The first choice of a lazy gap is the shortest one that lets the
    /// next step match, so this is still the first path.
    Lazy {
        dotall: bool,
    },
    /// Any other part of the regex, matched anchored where the last step ended; `groups` maps
    /// its own capture groups to grok captures.
    Element {
        regex: meta::Regex,
        groups: Vec<(usize, usize)>,
    },
}

#[derive(Debug, Clone)]
struct Repeat {
    class: Class,
    min: u32,
    max: u32,
}

/// A set of characters: a table for ASCII, sorted ranges beyond.
#[derive(Debug, Clone)]
struct Class {
    ascii: [bool; 128],
    wide: Vec<(char, char)>,
}

impl Class {
    fn of(class: &hir::Class) -> Option<Class> {
        let mut ascii = [false; 128];
        let mut wide = Vec::new();
        let mut add = |start: u32, end: u32| {
            for b in start..=end.min(127) {
                ascii[b as usize] = true;
            }
            if end >= 128 {
                let from = char::from_u32(start.max(128)).expect("a class holds characters");
                wide.push((from, char::from_u32(end).expect("a class holds characters")));
            }
        };
        match class {
            hir::Class::Unicode(c) => {
                for r in c.iter() {
                    add(u32::from(r.start()), u32::from(r.end()));
                }
            }
            // Bytes past ASCII can split a character: left to the engine.
            hir::Class::Bytes(c) => {
                for r in c.iter() {
                    if r.end() >= 128 {
                        return None;
                    }
                    add(u32::from(r.start()), u32::from(r.end()));
                }
            }
        }
        Some(Class { ascii, wide })
    }

    fn contains(&self, c: char) -> bool {
        match usize::try_from(u32::from(c)) {
            Ok(b) if b < 128 => self.ascii[b],
            _ => self
                .wide
                .binary_search_by(|&(lo, hi)| {
                    if hi < c {
                        std::cmp::Ordering::Less
                    } else if lo > c {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Equal
                    }
                })
                .is_ok(),
        }
    }
}

impl Repeat {
    /// The end of the longest run from `pos` (at most `max` characters), and its length.
    fn longest(&self, input: &str, pos: usize) -> (usize, u32) {
        let mut count = 0;
        let mut end = pos;
        let bytes = input.as_bytes();
        while count < self.max {
            match bytes.get(end) {
                Some(&b) if b < 128 => {
                    if !self.class.ascii[usize::from(b)] {
                        break;
                    }
                    end += 1;
                }
                Some(_) => {
                    let c = input[end..]
                        .chars()
                        .next()
                        .expect("at a character boundary");
                    if !self.class.contains(c) {
                        break;
                    }
                    end += c.len_utf8();
                }
                None => break,
            }
            count += 1;
        }
        (end, count)
    }
}

/// A rule whose regex is not cut into steps; the whole regex reads it.
#[derive(Debug)]
pub(super) struct Unplanned;

impl Plan {
    /// The plan of `pattern` (a rule's whole regex, as compiled), or [`Unplanned`] when some
    /// part cannot be a step of its own (a lazy gap followed by something other than a
    /// literal, a part the meta engine refuses).
    pub(super) fn new(pattern: &str, size_limit: usize) -> Result<Plan, Unplanned> {
        let hir = regex_syntax::ParserBuilder::new()
            .build()
            .parse(pattern)
            .map_err(|_| Unplanned)?;
        let mut steps = Vec::new();
        flatten(&hir, &mut steps, size_limit)?;
        // A lazy gap needs to know where it stops.
        for (i, step) in steps.iter().enumerate() {
            if let Step::Lazy { .. } = step {
                match next_matching(&steps, i + 1) {
                    None | Some(Step::Look(Look::End)) => {}
                    Some(Step::Literal(lit)) if std::str::from_utf8(lit).is_ok() => {}
                    _ => return Err(Unplanned),
                }
            }
        }
        let ends_with = steps
            .iter()
            .rev()
            .find(|s| !matches!(s, Step::Open(_) | Step::Close(_) | Step::Look(_)))
            .and_then(|s| match s {
                Step::Literal(lit) => Some(End::Literal(lit.clone())),
                Step::Repeat(rep) if rep.min >= 1 => Some(End::Class(rep.class.clone())),
                _ => None,
            });
        Ok(Plan { steps, ends_with })
    }

    /// Whether `input` cannot match the rule at all, from how it ends (cheap, and saves
    /// walking a line that a rule only fails at its end: the common log line against the
    /// combined rule's last quote).
    pub(super) fn rejects(&self, input: &str) -> bool {
        match &self.ends_with {
            Some(End::Literal(lit)) => !input.as_bytes().ends_with(lit),
            Some(End::Class(class)) => {
                !input.chars().next_back().is_some_and(|c| class.contains(c))
            }
            None => false,
        }
    }

    /// The spans of the grok captures (indexed by capture number, `spans` all `None` on entry)
    /// if the steps' first choices match the whole of `input`; `false` means "ask the whole
    /// regex", never "no match", and leaves `spans` to be cleared.
    pub(super) fn spans(&self, input: &str, spans: &mut [Option<(usize, usize)>]) -> bool {
        let hay = input.as_bytes();
        let looks = LookMatcher::new();
        let mut pos = 0;
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                Step::Literal(lit) => {
                    if !hay[pos..].starts_with(lit) {
                        return false;
                    }
                    pos += lit.len();
                }
                Step::Look(look) => {
                    if !looks.matches(*look, hay, pos) {
                        return false;
                    }
                }
                // Groups nest, so a group's start is kept in its own span until it closes.
                Step::Open(n) => match spans.get_mut(*n) {
                    Some(span) => *span = Some((pos, pos)),
                    None => return false,
                },
                Step::Close(n) => match spans.get_mut(*n) {
                    Some(Some(span)) => span.1 = pos,
                    _ => return false,
                },
                Step::Repeat(rep) => {
                    let (mut end, mut count) = rep.longest(input, pos);
                    if count < rep.min {
                        return false;
                    }
                    if let Some(Step::Literal(lit)) = next_matching(&self.steps, i + 1) {
                        while !hay[end..].starts_with(lit) {
                            if count == rep.min {
                                return false;
                            }
                            end -= 1;
                            while !input.is_char_boundary(end) {
                                end -= 1;
                            }
                            count -= 1;
                        }
                    }
                    pos = end;
                }
                Step::Lazy { dotall } => {
                    let end = match next_matching(&self.steps, i + 1) {
                        Some(Step::Literal(lit)) => match memchr::memmem::find(&hay[pos..], lit) {
                            Some(at) => pos + at,
                            None => return false,
                        },
                        _ => hay.len(),
                    };
                    if !dotall && memchr::memchr(b'\n', &hay[pos..end]).is_some() {
                        return false;
                    }
                    pos = end;
                }
                Step::Element { regex, groups } => {
                    let at = Input::new(hay).span(pos..hay.len()).anchored(Anchored::Yes);
                    if groups.is_empty() {
                        match regex.search_half(&at) {
                            Some(m) => pos = m.offset(),
                            None => return false,
                        }
                    } else {
                        let mut slots = vec![None; regex.group_info().slot_len()];
                        if regex.search_slots(&at, &mut slots).is_none() {
                            return false;
                        }
                        for &(group, n) in groups {
                            let (s, e) = (slots[group * 2], slots[group * 2 + 1]);
                            if let (Some(span), Some(s), Some(e)) = (spans.get_mut(n), s, e) {
                                *span = Some((s.get(), e.get()));
                            }
                        }
                        match slots[1] {
                            Some(end) => pos = end.get(),
                            None => return false,
                        }
                    }
                }
            }
        }
        pos == hay.len()
    }

    /// How many steps ask the meta engine (for the tests: a rule of plain matchers and
    /// literals should need one per matcher).
    #[cfg(test)]
    fn elements(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Element { .. }))
            .count()
    }
}

/// The next step that consumes or asserts something (capture marks take no room).
fn next_matching(steps: &[Step], from: usize) -> Option<&Step> {
    steps[from..]
        .iter()
        .find(|s| !matches!(s, Step::Open(_) | Step::Close(_)))
}

fn flatten(hir: &Hir, steps: &mut Vec<Step>, size_limit: usize) -> Result<(), Unplanned> {
    match hir.kind() {
        HirKind::Empty => {}
        HirKind::Concat(items) => {
            for item in items {
                flatten(item, steps, size_limit)?;
            }
        }
        HirKind::Literal(hir::Literal(bytes)) => match steps.last_mut() {
            Some(Step::Literal(prev)) => {
                let mut joined = prev.to_vec();
                joined.extend_from_slice(bytes);
                *prev = joined.into_boxed_slice();
            }
            _ => steps.push(Step::Literal(bytes.clone())),
        },
        HirKind::Capture(cap) => match cap.name.as_deref().and_then(super::grok_group) {
            Some(n) => {
                steps.push(Step::Open(n));
                flatten(&cap.sub, steps, size_limit)?;
                steps.push(Step::Close(n));
            }
            // Groups the rule's author wrote capture nothing grok reads.
            None => flatten(&cap.sub, steps, size_limit)?,
        },
        HirKind::Look(look) if look_of(*look).is_some() => {
            steps.push(Step::Look(look_of(*look).expect("checked above")));
        }
        HirKind::Repetition(rep)
            if rep.min == 0 && rep.max.is_none() && !rep.greedy && any_char(&rep.sub).is_some() =>
        {
            steps.push(Step::Lazy {
                dotall: any_char(&rep.sub).expect("checked above"),
            });
        }
        HirKind::Class(class) if Class::of(class).is_some() => steps.push(Step::Repeat(Repeat {
            class: Class::of(class).expect("checked above"),
            min: 1,
            max: 1,
        })),
        HirKind::Repetition(rep) if rep.greedy && class_of(&rep.sub).is_some() => {
            steps.push(Step::Repeat(Repeat {
                class: class_of(&rep.sub).expect("checked above"),
                min: rep.min,
                max: rep.max.unwrap_or(u32::MAX),
            }))
        }
        _ => steps.push(element(hir, size_limit)?),
    }
    Ok(())
}

fn element(hir: &Hir, size_limit: usize) -> Result<Step, Unplanned> {
    // Printed and parsed again rather than built from the `Hir`: the printed form numbers its
    // groups from 1, as the engine expects, and keeps their names.
    let regex = meta::Builder::new()
        .configure(meta::Config::new().nfa_size_limit(Some(size_limit)))
        .build(&hir.to_string())
        .map_err(|_| Unplanned)?;
    let groups = regex
        .group_info()
        .pattern_names(regex_automata::PatternID::ZERO)
        .enumerate()
        .filter_map(|(g, name)| name.and_then(super::grok_group).map(|n| (g, n)))
        .collect();
    Ok(Step::Element { regex, groups })
}

fn class_of(hir: &Hir) -> Option<Class> {
    match hir.kind() {
        HirKind::Class(c) => Class::of(c),
        _ => None,
    }
}

/// The assertions checked in place; the others go to the engine as elements.
fn look_of(look: hir::Look) -> Option<Look> {
    match look {
        hir::Look::Start => Some(Look::Start),
        hir::Look::End => Some(Look::End),
        hir::Look::WordAscii => Some(Look::WordAscii),
        hir::Look::WordAsciiNegate => Some(Look::WordAsciiNegate),
        _ => None,
    }
}

/// `Some(dotall)` when `hir` is `.` (any character but `\n`) or `(?s:.)` (any character).
fn any_char(hir: &Hir) -> Option<bool> {
    let HirKind::Class(hir::Class::Unicode(class)) = hir.kind() else {
        return None;
    };
    let ranges: Vec<(char, char)> = class.iter().map(|r| (r.start(), r.end())).collect();
    match ranges.as_slice() {
        [('\0', '\u{10FFFF}')] => Some(true),
        [('\0', '\u{9}'), ('\u{B}', '\u{10FFFF}')] => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_and_literals_are_steps_of_their_own() {
        let plan = Plan::new(
            r"\A(?:(?P<__grok0>\S+) \[(?P<__grok1>[0-9]+)\] (?P<__grok2>(?s:.*?)))\z",
            1 << 20,
        )
        .expect("plans");
        // Class runs, literals and the lazy gap are all checked here, without the engine.
        assert_eq!(plan.elements(), 0, "{plan:?}");
        let mut spans = vec![None; 3];
        assert!(plan.spans("host [42] rest of it", &mut spans));
        assert_eq!(spans, vec![Some((0, 4)), Some((6, 8)), Some((10, 20))]);
        let month = Plan::new(r"\A(?:(?P<__grok0>Jan|Feb) [0-9]+)\z", 1 << 20).expect("plans");
        assert_eq!(month.elements(), 1, "{month:?}");
    }

    #[test]
    fn a_line_that_does_not_end_as_every_match_does_is_rejected_at_once() {
        let quote = Plan::new(r#"\A(?:"(?P<__grok0>\S+)")\z"#, 1 << 20).expect("plans");
        assert!(quote.rejects(r#""abc"#));
        assert!(!quote.rejects(r#""abc""#));
        let digits = Plan::new(r"\A(?:a (?P<__grok0>[0-9]+))\z", 1 << 20).expect("plans");
        assert!(digits.rejects("a 12x"));
        assert!(!digits.rejects("a 12"));
        // A run that may be empty, or a lazy gap, says nothing of the end.
        let optional = Plan::new(r"\A(?:a[0-9]*)\z", 1 << 20).expect("plans");
        assert!(!optional.rejects("ab"));
        let lazy = Plan::new(r"\A(?:a(?s:.*?))\z", 1 << 20).expect("plans");
        assert!(!lazy.rejects("ab"));
    }

    #[test]
    fn a_lazy_gap_before_an_element_is_left_to_the_regex() {
        assert!(Plan::new(r"\A(?:(?s:.*?)[0-9]+)\z", 1 << 20).is_err());
    }
}
