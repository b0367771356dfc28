//! One source per field: what a field of `cluster.toml` means, its default and its bounds are
//! written once, next to the field (`table.rs` says how).
//!
//! A [`Knob`] is what a field's declaration says beyond its type, meaning and default: its unit,
//! its bounds (numbers, or multiples and shares of another field of the same table) and the
//! rules no bound can say. The docs' rule column is rendered from it, and `validate()` resolves
//! it to a [`Range`] that the one [`check_range`] checks, so every range refusal is worded alike.

use super::ConfigError;

/// What a field's number counts: the unit column of the docs, and the reading aid after a large
/// number (`4194304 (4 MiB)`, `604800 (a week)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Not a quantity, or a plain count.
    None,
    /// Milliseconds.
    Ms,
    /// Seconds.
    Secs,
    /// Bytes.
    Bytes,
    /// Anything else, named as the unit column shows it (`messages/s`, `log entries`).
    Of(&'static str),
}

impl Unit {
    /// The unit column of `docs/config.md`.
    pub(crate) fn column(self) -> &'static str {
        match self {
            Unit::None => "",
            Unit::Ms => "ms",
            Unit::Secs => "s",
            Unit::Bytes => "bytes",
            Unit::Of(name) => name,
        }
    }

    /// `n` as the docs and the refusals write it: with a reading aid when one helps.
    pub(crate) fn number(self, n: u64) -> String {
        let aid = match self {
            Unit::Bytes => binary_size(n),
            Unit::Secs => match n {
                3600 => Some("an hour".to_string()),
                86_400 => Some("a day".to_string()),
                604_800 => Some("a week".to_string()),
                _ => None,
            },
            _ => None,
        };
        match aid {
            Some(aid) => format!("{n} ({aid})"),
            None => n.to_string(),
        }
    }
}

/// `n` in the largest binary unit that divides it (`64 MiB`), from 1 KiB up.
fn binary_size(n: u64) -> Option<String> {
    [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")]
        .into_iter()
        .find(|(shift, _)| n >= 1 << shift && n % (1 << shift) == 0)
        .map(|(shift, name)| format!("{} {name}", n >> shift))
}

/// One end of a field's range: a number, or a multiple or a share of another field of the same
/// table.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    /// A fixed number.
    Value(u64),
    /// `times × field / per`, `field` a number field of the same table.
    Field {
        /// The other field.
        name: &'static str,
        /// How many times its value.
        times: u64,
        /// What share of its value.
        per: u64,
    },
}

impl Limit {
    /// How the limit reads, the other field named by `name`: `3 × x`, `half of x`.
    fn phrase(self, name: impl Fn(&str) -> String) -> String {
        match self {
            Limit::Value(n) => n.to_string(),
            Limit::Field {
                name: f,
                times,
                per,
            } => {
                let f = name(f);
                match (times, per) {
                    (1, 1) => f,
                    (1, 2) => format!("half of {f}"),
                    (1, 3) => format!("a third of {f}"),
                    (1, per) => format!("{f} / {per}"),
                    (times, 1) => format!("{times} × {f}"),
                    (times, per) => format!("{times} × {f} / {per}"),
                }
            }
        }
    }

    /// The limit's number, the other fields' values read through `number`.
    fn value(self, number: &impl Fn(&str) -> u64) -> u64 {
        match self {
            Limit::Value(n) => n,
            Limit::Field { name, times, per } => number(name).saturating_mul(times) / per,
        }
    }
}

/// One bound of a field: its limit, and whether the limit itself is allowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bound {
    limit: Limit,
    /// The value must differ from the limit (`<`, `>`).
    strict: bool,
}

/// What is known of one field beyond its type, meaning and default: its unit, its range, and the
/// rules of `validate.rs` that no range says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Knob {
    pub(crate) unit: Unit,
    pub(crate) min: Option<Bound>,
    pub(crate) max: Option<Bound>,
    /// The bounds apply to the byte length of the text (each text, for an array).
    pub(crate) length: bool,
    /// What 0 means, when it means something other than a count (`no limit`).
    zero: Option<&'static str>,
    /// The bounds apply only while this other field of the table is not 0.
    pub(crate) only_while: Option<&'static str>,
    /// Why the bounds are what they are, said after a refusal.
    why: Option<&'static str>,
    /// A rule no bound says, checked by hand in `validate.rs`, as the docs state it.
    rule: Option<&'static str>,
    /// What an unset optional field means, for the default column.
    unset: Option<Unset>,
    /// Not a field of the file (`#[serde(skip)]`): no row in the docs.
    pub(crate) internal: bool,
}

/// What an optional field left unset means.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Unset {
    /// Said in words.
    Text(&'static str),
    /// `times` × another field of the table, as the code derives it.
    Times(&'static str, u64),
}

impl Knob {
    /// A field counted in `unit`, with no bounds yet.
    pub(crate) const fn of(unit: Unit) -> Self {
        Self {
            unit,
            min: None,
            max: None,
            length: false,
            zero: None,
            only_while: None,
            why: None,
            rule: None,
            unset: None,
            internal: false,
        }
    }

    /// A field that is no quantity, or a plain count.
    pub(crate) const fn plain() -> Self {
        Self::of(Unit::None)
    }

    /// Milliseconds.
    pub(crate) const fn ms() -> Self {
        Self::of(Unit::Ms)
    }

    /// Seconds.
    pub(crate) const fn secs() -> Self {
        Self::of(Unit::Secs)
    }

    /// Bytes.
    pub(crate) const fn bytes() -> Self {
        Self::of(Unit::Bytes)
    }

    /// A count of `what` (`messages/s`, `groups`).
    pub(crate) const fn count(what: &'static str) -> Self {
        Self::of(Unit::Of(what))
    }

    /// Not in the file: filled in by the loader.
    pub(crate) const fn internal() -> Self {
        Self {
            internal: true,
            ..Self::plain()
        }
    }

    /// `min ..= max`.
    pub(crate) const fn range(self, min: u64, max: u64) -> Self {
        self.min(min).max(max)
    }

    /// At least `min`.
    pub(crate) const fn min(self, min: u64) -> Self {
        self.with_min(Limit::Value(min), false)
    }

    /// At most `max`.
    pub(crate) const fn max(self, max: u64) -> Self {
        self.with_max(Limit::Value(max), false)
    }

    /// At least `times` × the field `name` of the same table.
    pub(crate) const fn min_times(self, name: &'static str, times: u64) -> Self {
        self.with_min(
            Limit::Field {
                name,
                times,
                per: 1,
            },
            false,
        )
    }

    /// Below the field `name` of the same table.
    pub(crate) const fn below(self, name: &'static str) -> Self {
        self.with_max(
            Limit::Field {
                name,
                times: 1,
                per: 1,
            },
            true,
        )
    }

    /// At most the field `name` of the same table divided by `per` (half, a third).
    pub(crate) const fn max_share(self, name: &'static str, per: u64) -> Self {
        self.with_max(
            Limit::Field {
                name,
                times: 1,
                per,
            },
            false,
        )
    }

    const fn with_min(self, limit: Limit, strict: bool) -> Self {
        let min = Some(Bound { limit, strict });
        Self { min, ..self }
    }

    const fn with_max(self, limit: Limit, strict: bool) -> Self {
        let max = Some(Bound { limit, strict });
        Self { max, ..self }
    }

    /// A text at least `min` bytes long.
    pub(crate) const fn min_bytes(self, min: u64) -> Self {
        Self {
            length: true,
            ..self.min(min)
        }
    }

    /// 0 means `meaning` (`no limit`).
    pub(crate) const fn zero(self, meaning: &'static str) -> Self {
        Self {
            zero: Some(meaning),
            ..self
        }
    }

    /// The bounds apply only while the field `name` of the same table is not 0.
    pub(crate) const fn only_while(self, name: &'static str) -> Self {
        Self {
            only_while: Some(name),
            ..self
        }
    }

    /// Why the bounds are what they are, said after a refusal.
    pub(crate) const fn why(self, why: &'static str) -> Self {
        Self {
            why: Some(why),
            ..self
        }
    }

    /// A rule `validate.rs` checks by hand, as the docs state it.
    pub(crate) const fn rule(self, rule: &'static str) -> Self {
        Self {
            rule: Some(rule),
            ..self
        }
    }

    /// What the field left unset means.
    pub(crate) const fn unset(self, meaning: &'static str) -> Self {
        Self {
            unset: Some(Unset::Text(meaning)),
            ..self
        }
    }

    /// Left unset, the field is `times` × the field `name` of the same table.
    pub(crate) const fn unset_times(self, name: &'static str, times: u64) -> Self {
        Self {
            unset: Some(Unset::Times(name, times)),
            ..self
        }
    }

    /// What the field left unset means, if the knob says.
    pub(crate) fn unset_meaning(&self) -> Option<Unset> {
        self.unset
    }

    /// The other fields of the table the knob reads.
    #[cfg(test)]
    pub(crate) fn siblings(&self) -> impl Iterator<Item = &'static str> {
        let field = |bound: Option<Bound>| match bound.map(|b| b.limit) {
            Some(Limit::Field { name, .. }) => Some(name),
            _ => None,
        };
        let unset = match self.unset {
            Some(Unset::Times(name, _)) => Some(name),
            _ => None,
        };
        [field(self.min), field(self.max), self.only_while, unset]
            .into_iter()
            .flatten()
    }

    /// The rule column of `docs/config.md`: `1 ..= 100000`, `≥ 10 and < \`x\``, then the rules
    /// no bound says. The bounds of an array apply to `each` of its items.
    pub(crate) fn rule_column(&self, each: bool) -> String {
        let name = |f: &str| format!("`{f}`");
        let number = |limit: Limit| match limit {
            Limit::Value(n) => self.unit.number(n),
            other => other.phrase(name),
        };
        let bytes = if self.length { " bytes" } else { "" };
        let mut parts: Vec<String> = Vec::new();
        let mut bounds = match (self.min, self.max) {
            (Some(min), Some(max))
                if !min.strict
                    && !max.strict
                    && matches!((min.limit, max.limit), (Limit::Value(_), Limit::Value(_))) =>
            {
                format!("{} ..= {}{bytes}", number(min.limit), number(max.limit))
            }
            (min, max) => {
                let min = min.map(|b| {
                    let op = if b.strict { ">" } else { "≥" };
                    format!("{op} {}{bytes}", number(b.limit))
                });
                let max = max.map(|b| {
                    let op = if b.strict { "<" } else { "≤" };
                    format!("{op} {}{bytes}", number(b.limit))
                });
                [min, max]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" and ")
            }
        };
        if let Some(switch) = self.only_while {
            bounds.push_str(&format!(" when `{switch}` > 0"));
        }
        if !bounds.trim().is_empty() {
            parts.push(if each {
                format!("each {bounds}")
            } else {
                bounds
            });
        }
        if let Some(zero) = self.zero {
            parts.push(format!("0 for {zero}"));
        }
        parts.extend(self.rule.map(str::to_string));
        parts.join("; ")
    }

    /// The bounds, the other fields' values read through `number` and named under `path`.
    pub(crate) fn resolve(&self, path: &str, number: &impl Fn(&str) -> u64) -> Range {
        let resolve = |bound: Bound| Resolved {
            value: bound.limit.value(number),
            strict: bound.strict,
            of: match bound.limit {
                Limit::Value(_) => None,
                field => Some(field.phrase(|f| format!("{path}.{f}"))),
            },
        };
        Range {
            min: self.min.map(resolve),
            max: self.max.map(resolve),
            unit: if self.length { Unit::None } else { self.unit },
            noun: if self.length { " bytes" } else { "" },
            zero: self.zero,
            why: self.why,
        }
    }
}

/// The bounds one number must lie within, resolved: what [`check_range`] checks and words.
#[derive(Debug, Clone)]
pub(crate) struct Range {
    min: Option<Resolved>,
    max: Option<Resolved>,
    unit: Unit,
    /// Said after the last number: ` bytes`, ` characters`.
    noun: &'static str,
    zero: Option<&'static str>,
    why: Option<&'static str>,
}

#[derive(Debug, Clone)]
struct Resolved {
    value: u64,
    strict: bool,
    /// The other field it derives from, named: `3 × raft.heartbeat_interval_ms`.
    of: Option<String>,
}

impl Range {
    /// At most `max` `noun`s (` characters`), for a rule that `validate.rs` checks by hand.
    pub(crate) fn at_most(max: u64, noun: &'static str) -> Self {
        Self {
            min: None,
            max: Some(Resolved {
                value: max,
                strict: false,
                of: None,
            }),
            unit: Unit::None,
            noun,
            zero: None,
            why: None,
        }
    }

    /// Why the bounds are what they are, said after a refusal.
    pub(crate) fn why(self, why: &'static str) -> Self {
        Self {
            why: Some(why),
            ..self
        }
    }

    fn contains(&self, value: u64) -> bool {
        let above = |b: &Resolved| value > b.value || (!b.strict && value == b.value);
        let below = |b: &Resolved| value < b.value || (!b.strict && value == b.value);
        self.min.as_ref().is_none_or(above) && self.max.as_ref().is_none_or(below)
    }

    /// What a refused value must be: `must be between 1 and 64`, `must be at least 10 and below
    /// raft.election_timeout_min_ms (250)`.
    fn requirement(&self) -> String {
        let number = |b: &Resolved| match &b.of {
            Some(of) => format!("{of} ({})", self.unit.number(b.value)),
            None => format!("{}{}", self.unit.number(b.value), self.noun),
        };
        let bounds = match (&self.min, &self.max) {
            (Some(min), Some(max))
                if !min.strict && !max.strict && min.of.is_none() && max.of.is_none() =>
            {
                let min = self.unit.number(min.value);
                format!("between {min} and {}", number(max))
            }
            (min, max) => {
                let min = min.as_ref().map(|b| {
                    let word = if b.strict { "above" } else { "at least" };
                    format!("{word} {}", number(b))
                });
                let max = max.as_ref().map(|b| {
                    let word = if b.strict { "below" } else { "at most" };
                    format!("{word} {}", number(b))
                });
                [min, max]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" and ")
            }
        };
        let zero = self
            .zero
            .map(|z| format!(" (0 for {z})"))
            .unwrap_or_default();
        let why = self.why.map(|w| format!(": {w}")).unwrap_or_default();
        format!("must be {bounds}{zero}{why}")
    }
}

/// The one check of a number against its bounds, so that every refusal of a range is worded
/// alike and names `field`.
pub(crate) fn check_range(field: &str, value: u64, range: &Range) -> Result<(), ConfigError> {
    if range.contains(value) {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        field: field.to_string(),
        reason: range.requirement(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(value: u64, range: &Range) -> String {
        match check_range("x.y", value, range) {
            Err(ConfigError::Invalid { field, reason }) => {
                assert_eq!(field, "x.y");
                reason
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn refusals_give_the_whole_range_with_reading_aids() {
        let none = |_: &str| 0;
        let range = Knob::bytes().range(1024, 64 << 20).resolve("s", &none);
        assert!(check_range("x.y", 1024, &range).is_ok());
        assert_eq!(
            refusal(100, &range),
            "must be between 1024 (1 KiB) and 67108864 (64 MiB)"
        );
        let week = Knob::secs().range(1, 604_800).resolve("s", &none);
        assert_eq!(refusal(0, &week), "must be between 1 and 604800 (a week)");
        let off = Knob::count("messages/s").max(1_000_000).zero("no limit");
        let off = off.resolve("s", &none);
        assert!(check_range("x.y", 0, &off).is_ok());
        assert_eq!(
            refusal(1_000_001, &off),
            "must be at most 1000000 (0 for no limit)"
        );
        let long = Knob::plain().min_bytes(16).resolve("s", &none);
        assert_eq!(refusal(3, &long), "must be at least 16 bytes");
        let name = Range::at_most(64, " characters").why("it is part of a topic name");
        assert_eq!(
            refusal(65, &name),
            "must be at most 64 characters: it is part of a topic name"
        );
    }

    #[test]
    fn bounds_on_other_fields_name_them_with_their_value() {
        let number = |f: &str| if f == "ttl" { 3000 } else { 50 };
        let renew = Knob::ms()
            .min(1)
            .max_share("ttl", 2)
            .resolve("spear", &number);
        assert!(check_range("x.y", 1500, &renew).is_ok());
        assert_eq!(
            refusal(1501, &renew),
            "must be at least 1 and at most half of spear.ttl (1500)"
        );
        let below = Knob::ms()
            .min_times("beat", 3)
            .below("ttl")
            .resolve("r", &number);
        assert!(check_range("x.y", 150, &below).is_ok());
        assert!(check_range("x.y", 3000, &below).is_err());
        assert_eq!(
            refusal(149, &below),
            "must be at least 3 × r.beat (150) and below r.ttl (3000)"
        );
    }

    #[test]
    fn the_rule_column_states_bounds_and_rules() {
        let fixed = Knob::bytes().range(1 << 20, 1 << 36);
        assert_eq!(
            fixed.rule_column(false),
            "1048576 (1 MiB) ..= 68719476736 (64 GiB)"
        );
        let related = Knob::ms().min(10).below("election_timeout_min_ms");
        assert_eq!(
            related.rule_column(false),
            "≥ 10 and < `election_timeout_min_ms`"
        );
        let switched = Knob::plain().range(1, 5).only_while("rate");
        assert_eq!(switched.rule_column(false), "1 ..= 5 when `rate` > 0");
        let zero = Knob::plain().max(9).zero("no limit").rule("per address");
        assert_eq!(zero.rule_column(false), "≤ 9; 0 for no limit; per address");
        assert_eq!(
            Knob::plain().min_bytes(16).rule("≠ `x`").rule_column(false),
            "≥ 16 bytes; ≠ `x`"
        );
        assert_eq!(Knob::plain().rule_column(false), "");
    }
}
