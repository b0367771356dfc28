//! A strict reader of Prometheus's text exposition format (0.0.4): every line must be a
//! `# HELP`, a `# TYPE` or a sample of a family whose `# TYPE` came first, with well-formed
//! names, quoted and escaped label values, and a number. A lenient parser would skip what it
//! does not understand; this one fails on it, so a malformed exposition fails the test.

use std::collections::BTreeMap;

/// A sample's labels, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// One scrape: each family's type, and every sample's value by name and labels.
#[derive(Debug, Default)]
pub struct Exposition {
    pub types: BTreeMap<String, String>,
    pub samples: BTreeMap<(String, Labels), f64>,
}

impl Exposition {
    /// The value of the sample `name` with exactly `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.get(&(name.to_string(), labels)).copied()
    }

    /// The value of the sample `name` without labels.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.get(name, &[])
    }

    /// Every sample named `name`, with its labels.
    pub fn all(&self, name: &str) -> Vec<(&Labels, f64)> {
        self.samples
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, l), v)| (l, *v))
            .collect()
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    is_name(s) && !s.contains(':')
}

/// The family a sample belongs to: histograms and summaries add suffixes to their samples.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        matches!(
            types.get(base).map(String::as_str),
            Some("histogram" | "summary")
        )
        .then_some(base)
    })
}

/// `{a="x",b="y"}` after a sample's name: the labels and the rest of the line.
fn labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut out = Labels::new();
    let Some(rest) = s.strip_prefix('{') else {
        return Ok((out, s));
    };
    s = rest;
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((out, rest));
        }
        let eq = s.find('=').ok_or("a label without `=`")?;
        let name = &s[..eq];
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        s = s[eq + 1..]
            .strip_prefix('"')
            .ok_or("a label value not quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("an unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("a bad escape {other:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if out.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        s = &s[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

fn number(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("not a number: {s:?}")),
    }
}

/// Parses `text`, failing on the first line that is not the format.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (keyword, name, tail) = (parts.next(), parts.next(), parts.next());
            let name = name
                .filter(|n| is_name(n))
                .ok_or_else(|| at("bad name".into()))?;
            match (keyword, tail) {
                (Some("HELP"), Some(_)) => {}
                (Some("TYPE"), Some(t)) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                        return Err(at(format!("unknown type {t}")));
                    }
                    if out.types.insert(name.to_string(), t.to_string()).is_some() {
                        return Err(at("a family typed twice".into()));
                    }
                }
                _ => return Err(at("a comment that is neither HELP nor TYPE".into())),
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| at("a sample without a value".into()))?;
        let name = &line[..name_end];
        if !is_name(name) {
            return Err(at("bad sample name".into()));
        }
        let family =
            family_of(name, &out.types).ok_or_else(|| at("a sample before its TYPE".into()))?;
        if out.types[family] == "counter" && !name.ends_with("_total") {
            return Err(at("a counter sample without `_total`".into()));
        }
        let (labels, rest) = labels(&line[name_end..]).map_err(at)?;
        let value = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value".into()))?;
        // A timestamp may follow the value; gru writes none.
        if value.contains(' ') {
            return Err(at("a timestamp, which gru never writes".into()));
        }
        let value = number(value).map_err(at)?;
        if out
            .samples
            .insert((name.to_string(), labels), value)
            .is_some()
        {
            return Err(at("a sample twice".into()));
        }
    }
    Ok(out)
}

#[test]
fn the_parser_reads_the_format_and_refuses_what_is_not() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{kind=\"x\\\"y\"} 3\n\
                # TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n";
    let e = parse(good).expect("good");
    assert_eq!(e.get("a_total", &[("kind", "x\"y")]), Some(3.0));
    assert_eq!(e.get("h_bucket", &[("le", "+Inf")]), Some(2.0));
    assert_eq!(e.value("h_count"), Some(2.0));
    for bad in [
        "a 1\n",                                  // no TYPE
        "# TYPE a gauge\na{k=v} 1\n",             // unquoted value
        "# TYPE a gauge\na{k=\"v\"}1\n",          // no space
        "# TYPE a gauge\na one\n",                // not a number
        "# TYPE a counter\na 1\n",                // counter without _total
        "# TYPE a gauge\n# TYPE a gauge\n",       // typed twice
        "# TYPE a gauge\na 1\na 2\n",             // a sample twice
        "# TYPE a widget\n",                      // unknown type
        "# EOF\n",                                // OpenMetrics, not 0.0.4
        "# TYPE a gauge\na{k=\"v\",k=\"w\"} 1\n", // label twice
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}
