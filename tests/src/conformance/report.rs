//! What a run of the suite found, scenario by scenario.

use std::fmt;

/// The outcome of one scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every check held.
    Passed,
    /// A check failed; why.
    Failed(String),
    /// Not run, and why (the driver lacks the capability it tests).
    Skipped(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Passed => f.write_str("passed"),
            Outcome::Failed(why) => write!(f, "FAILED: {why}"),
            Outcome::Skipped(why) => write!(f, "skipped: {why}"),
        }
    }
}

/// The outcomes of a run, in scenario order.
#[derive(Debug, Clone)]
pub struct Report {
    driver: String,
    results: Vec<(&'static str, Outcome)>,
}

impl Report {
    pub(crate) fn new(driver: String) -> Self {
        Self {
            driver,
            results: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, scenario: &'static str, outcome: Outcome) {
        self.results.push((scenario, outcome));
    }

    /// The driver label the run was made for.
    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// Every scenario with its outcome.
    pub fn results(&self) -> &[(&'static str, Outcome)] {
        &self.results
    }

    /// The outcome of `scenario`, if it was run.
    pub fn outcome(&self, scenario: &str) -> Option<&Outcome> {
        self.results
            .iter()
            .find(|(s, _)| *s == scenario)
            .map(|(_, o)| o)
    }

    /// How many passed, failed and were skipped.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |f: fn(&Outcome) -> bool| self.results.iter().filter(|(_, o)| f(o)).count();
        (
            count(|o| *o == Outcome::Passed),
            count(|o| matches!(o, Outcome::Failed(_))),
            count(|o| matches!(o, Outcome::Skipped(_))),
        )
    }

    /// Whether no scenario failed.
    pub fn all_passed(&self) -> bool {
        self.counts().1 == 0
    }

    /// Prints one line per scenario,
    /// `conformance <driver> <scenario>: passed|FAILED: why|skipped: why`,
    /// and a closing `N passed, N failed, N skipped` line.
    pub fn print(&self) {
        print!("{self}");
    }

    /// Prints the report and panics if any scenario failed.
    pub fn assert_all_passed(&self) {
        self.print();
        let (_, failed, _) = self.counts();
        assert!(
            failed == 0,
            "conformance {}: {failed} scenario(s) failed",
            self.driver
        );
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (scenario, outcome) in &self.results {
            writeln!(f, "conformance {} {scenario}: {outcome}", self.driver)?;
        }
        let (passed, failed, skipped) = self.counts();
        writeln!(
            f,
            "conformance {}: {passed} passed, {failed} failed, {skipped} skipped",
            self.driver
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_totals() {
        let mut r = Report::new("d".to_string());
        r.push("create", Outcome::Passed);
        r.push(
            "snapshot",
            Outcome::Skipped("driver has no snapshots".to_string()),
        );
        r.push("grow", Outcome::Failed("too small".to_string()));
        let text = r.to_string();
        assert!(text.contains("conformance d create: passed\n"), "{text}");
        assert!(text.contains("conformance d snapshot: skipped: driver has no snapshots\n"));
        assert!(text.contains("conformance d grow: FAILED: too small\n"));
        assert!(text.ends_with("conformance d: 1 passed, 1 failed, 1 skipped\n"));
        assert!(!r.all_passed());
    }
}
