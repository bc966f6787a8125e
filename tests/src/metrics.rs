//! Reading a Prometheus text exposition in tests: one sample's value by its name and labels.

/// The value of the sample `name{labels}` (labels in any order, all of them given), if it is there.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        if metric != name {
            return None;
        }
        let rest = rest.strip_suffix('}')?;
        let mut found: Vec<(String, String)> = Vec::new();
        for pair in split_labels(rest) {
            let (k, v) = pair.split_once('=')?;
            found.push((k.to_owned(), v.trim_matches('"').to_owned()));
        }
        let wanted =
            labels.len() == found.len() && labels.iter().all(|(k, v)| found.iter().any(|(fk, fv)| fk == k && fv == v));
        wanted.then(|| value.parse().ok()).flatten()
    })
}

/// `sample`, or 0 when the series does not exist yet.
pub fn count(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or(0.0)
}

fn split_labels(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn samples_are_found_by_name_and_every_label() {
        let text = "# TYPE x counter\nx{a=\"1\",b=\"p,q\"} 3\nx{a=\"1\"} 5\ny 7\n";
        assert_eq!(super::sample(text, "x", &[("b", "p,q"), ("a", "1")]), Some(3.0));
        assert_eq!(super::sample(text, "x", &[("a", "1")]), Some(5.0));
        assert_eq!(super::sample(text, "y", &[]), Some(7.0));
        assert_eq!(super::sample(text, "x", &[("a", "2")]), None);
    }
}
