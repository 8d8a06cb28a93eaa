//! `restrictd rules test FILE...`: rule tests as data (see
//! `restrictd_domain::ruletest`), loaded from TOML, run in process, reported
//! as text or JUnit XML. `restrictd rules publish` runs them first.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use restrictd_domain::ruletest::{run_case, CaseResult, RuleSetSource, TestFile};
use restrictd_domain::{Model, ModelDef};

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Junit,
}

/// One file's results, or why it could not run.
pub struct FileResult {
    pub path: PathBuf,
    pub outcome: Result<Vec<CaseResult>, String>,
}

/// Every file's results.
pub struct Report {
    pub files: Vec<FileResult>,
    pub took: Duration,
}

impl Report {
    pub fn cases(&self) -> usize {
        self.files.iter().map(|f| f.outcome.as_ref().map_or(1, Vec::len)).sum()
    }

    pub fn failed(&self) -> usize {
        let failed = |f: &FileResult| f.outcome.as_ref().map_or(1, |c| c.iter().filter(|c| !c.passed()).count());
        self.files.iter().map(failed).sum()
    }

    pub fn passed(&self) -> bool {
        self.failed() == 0
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.text(),
            Format::Junit => self.junit(),
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let mut events = 0;
        for f in &self.files {
            let _ = writeln!(out, "{}", f.path.display());
            match &f.outcome {
                Err(e) => {
                    let _ = writeln!(out, "  FAIL  cannot run: {e}");
                }
                Ok(cases) => {
                    for c in cases {
                        events += c.events;
                        let _ = writeln!(out, "  {}  {}", if c.passed() { "ok  " } else { "FAIL" }, c.name);
                        for failure in &c.failures {
                            let _ = writeln!(out, "        {failure}");
                        }
                    }
                }
            }
        }
        let (cases, failed) = (self.cases(), self.failed());
        let ms = self.took.as_secs_f64() * 1000.0;
        let _ =
            writeln!(out, "{cases} cases: {} passed, {failed} failed ({events} events, {ms:.1} ms)", cases - failed);
        out
    }

    fn junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let secs = self.took.as_secs_f64();
        let _ = writeln!(
            out,
            "<testsuites name=\"restrictd rules test\" tests=\"{}\" failures=\"{}\" time=\"{secs:.3}\">",
            self.cases(),
            self.failed()
        );
        for f in &self.files {
            let file = xml(&f.path.display().to_string());
            let single;
            let cases = match &f.outcome {
                Ok(cases) => cases,
                Err(e) => {
                    let name = "cannot run".to_string();
                    single = [CaseResult { name, failures: vec![e.clone()], events: 0 }];
                    &single[..]
                }
            };
            let failures = cases.iter().filter(|c| !c.passed()).count();
            let _ = writeln!(out, "  <testsuite name=\"{file}\" tests=\"{}\" failures=\"{failures}\">", cases.len());
            for c in cases {
                let _ = write!(out, "    <testcase classname=\"{file}\" name=\"{}\"", xml(&c.name));
                if c.passed() {
                    out.push_str("/>\n");
                    continue;
                }
                let message = format!("{} expectation(s) failed", c.failures.len());
                let body = xml(&c.failures.join("\n"));
                let _ = writeln!(out, ">\n      <failure message=\"{message}\">{body}</failure>\n    </testcase>");
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

/// Text as XML character data or an attribute value.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The rule-set sections of a TOML file (a whole configuration file will do).
pub fn read_rule_set(path: &Path) -> anyhow::Result<ModelDef> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a rule set", path.display()))
}

/// Runs each file against its own rule set, or against `rule_set` when given
/// (publishing tests the set being published, whatever the files name).
pub fn run(files: &[PathBuf], rule_set: Option<&ModelDef>, accept_unknown_events: bool) -> Report {
    let started = Instant::now();
    let files = files
        .iter()
        .map(|path| FileResult { path: path.clone(), outcome: run_file(path, rule_set, accept_unknown_events) })
        .collect();
    Report { files, took: started.elapsed() }
}

fn run_file(path: &Path, rule_set: Option<&ModelDef>, accept_unknown: bool) -> Result<Vec<CaseResult>, String> {
    let file = load(path).map_err(|e| format!("{e:#}"))?;
    let def = match (rule_set, &file.rule_set) {
        (Some(def), _) => def.clone(),
        (None, Some(RuleSetSource::Inline(def))) => def.clone(),
        (None, Some(RuleSetSource::Path(p))) => {
            let p = path.parent().unwrap_or(Path::new(".")).join(p);
            read_rule_set(&p).map_err(|e| format!("rule_set: {e:#}"))?
        }
        (None, None) => return Err("no rule_set: name a rule-set file or write the rule set inline".into()),
    };
    let model = Model::compile(&def, accept_unknown).map_err(|e| format!("the rule set is invalid: {e}"))?;
    if file.cases.is_empty() {
        return Err("no [[case]]: a test file holds at least one case".into());
    }
    Ok(file.cases.iter().map(|c| run_case(&model, file.start.as_deref(), c)).collect())
}

/// A test file; TOML's own date-times are read as RFC 3339 text.
fn load(path: &Path) -> anyhow::Result<TestFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut value: toml::Value = toml::from_str(&text).context("not TOML")?;
    dates_as_text(&mut value);
    serde::Deserialize::deserialize(value).context("not a rule test file")
}

fn dates_as_text(value: &mut toml::Value) {
    match value {
        toml::Value::Datetime(d) => *value = toml::Value::String(d.to_string()),
        toml::Value::Array(items) => items.iter_mut().for_each(dates_as_text),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| dates_as_text(v)),
        _ => {}
    }
}

/// The rule tests found beside a rule-set file `DIR/NAME.toml`: every
/// `DIR/NAME.test.toml` and `DIR/NAME.*.test.toml`, in name order.
pub fn beside(rule_set: &Path) -> Vec<PathBuf> {
    let (Some(stem), dir) = (rule_set.file_stem().and_then(|s| s.to_str()), rule_set.parent()) else {
        return Vec::new();
    };
    let dir = match dir {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name == format!("{stem}.test.toml")
                || (name.starts_with(&format!("{stem}.")) && name.ends_with(".test.toml"))
        })
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_escapes_names_and_failures() {
        let case = CaseResult { name: "a < b & \"c\"".into(), failures: vec!["x > y".into()], events: 1 };
        let report = Report {
            files: vec![FileResult { path: "t.test.toml".into(), outcome: Ok(vec![case]) }],
            took: Duration::from_millis(2),
        };
        let xml = report.render(Format::Junit);
        assert!(xml.contains("name=\"a &lt; b &amp; &quot;c&quot;\""), "{xml}");
        assert!(xml.contains("<failure message=\"1 expectation(s) failed\">x &gt; y</failure>"), "{xml}");
        assert!(xml.contains("tests=\"1\" failures=\"1\""), "{xml}");
        assert!(!report.passed());
    }
}
