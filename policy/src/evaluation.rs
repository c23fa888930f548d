//! Verdicts from a sandbox evaluation: what a hook did in the sandbox in, a [`Decision`] out.
//!
//! The sandbox host reduces the guest's reply to [`Findings`]; this module owns the rules that
//! turn them into a verdict, so that they stay deterministic and testable without wasmtime. It
//! trusts the findings to be complete as evidence: a recorder the hook fooled can only make a
//! hook look worse, because the sandbox granted nothing the findings do not list.

use crate::decision::{Decision, Verdict};
use crate::model::{EnvGrant, RuleOrigin, RunMode};

/// How an evaluation ended, as far as a verdict needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvaluationOutcome {
    /// The hook ran to its end.
    Completed,
    /// The hook raised this exception type.
    Raised(String),
    /// An import failed only because the guest lacks this module.
    MissingModule(String),
    /// The hook needs this native module.
    NeedsNative(String),
    /// The CPU or wall-clock bound was reached.
    TimedOut,
    /// The memory cap was reached.
    OutOfMemory,
    /// The hook wrote more than the output cap.
    OutputLimit,
    /// The guest failed; the text says how.
    GuestError(String),
}

/// What the evaluation found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Findings {
    /// The outcome.
    pub outcome: EvaluationOutcome,
    /// What the hook tried that it was not granted, one readable line each.
    pub attempts: Vec<String>,
    /// Finders and import hooks it installed, and modules it loaded that are not part of the
    /// guest: state that cannot be carried over to the real interpreter.
    pub installed: Vec<String>,
    /// Whether it changed `sys.path`.
    pub changed_path: bool,
    /// Whether it wrote to stdout or stderr, which a start without running it does not show.
    pub wrote_output: bool,
}

fn denied(reason: &'static str, message: String, rule: Option<RuleOrigin>) -> Decision {
    Decision {
        verdict: Verdict::Denied,
        reason,
        message,
        mode: Some(RunMode::Sandbox),
        env: EnvGrant::default(),
        rule,
    }
}

/// The verdict on an evaluated hook. `granted` is what its policy entry granted, `rule` the
/// entry (none for unknown code evaluated under `unknown-code = "sandbox"`).
pub fn judge(findings: &Findings, granted: &EnvGrant, rule: Option<RuleOrigin>) -> Decision {
    let limit = |reason, what: &str| {
        denied(
            reason,
            format!("The hook was stopped in the sandbox: {what}"),
            rule.clone(),
        )
    };
    match &findings.outcome {
        EvaluationOutcome::TimedOut => {
            return limit(
                "sandbox-timeout",
                "it ran out of time (the `[sandbox]` limits `cpu-ms` and `wall-ms`)",
            )
        }
        EvaluationOutcome::OutOfMemory => {
            return limit(
                "sandbox-memory-limit",
                "it reached the memory cap (the `[sandbox]` limit `memory-mib`)",
            )
        }
        EvaluationOutcome::OutputLimit => {
            return limit(
                "sandbox-output-limit",
                "it wrote more than the output cap (the `[sandbox]` limit `output-kib`)",
            )
        }
        EvaluationOutcome::GuestError(error) => {
            return denied(
                "sandbox-crash",
                format!("The sandbox failed while evaluating the hook: {error}"),
                rule,
            )
        }
        _ => {}
    }
    if !findings.attempts.is_empty() {
        return denied(
            "capability-denied",
            format!(
                "In the sandbox the hook tried what it was not granted: {}",
                findings.attempts.join("; ")
            ),
            rule,
        );
    }
    match &findings.outcome {
        EvaluationOutcome::NeedsNative(module) => {
            return denied(
                "needs-native",
                format!("The hook needs the native module `{module}`, which the sandbox lacks"),
                rule,
            )
        }
        EvaluationOutcome::MissingModule(module) => {
            return denied(
                "missing-module",
                format!(
                    "The hook imports `{module}`, which the sandbox lacks, so what it would do is \
                     unknown"
                ),
                rule,
            )
        }
        EvaluationOutcome::Raised(kind) => {
            return denied(
                "hook-raised",
                format!("The hook raised `{kind}` in the sandbox"),
                rule,
            )
        }
        _ => {}
    }
    if !findings.installed.is_empty() {
        return denied(
            "untransplantable-hook",
            format!(
                "The hook changes more than `sys.path`, so its effects cannot be applied without \
                 running it: {}",
                findings.installed.join("; ")
            ),
            rule,
        );
    }
    let mut message = if findings.changed_path {
        "In the sandbox the hook only appended to `sys.path`; its appends are applied without \
         running it"
            .to_owned()
    } else {
        "In the sandbox the hook changed nothing that lasts; it is not run at start".to_owned()
    };
    if findings.wrote_output {
        message.push_str(" (what it printed is not shown at start)");
    }
    Decision {
        verdict: Verdict::Allowed,
        reason: "sandbox-effects",
        message,
        mode: Some(RunMode::Sandbox),
        env: granted.clone(),
        rule,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(outcome: EvaluationOutcome, attempts: &[&str], installed: &[&str]) -> Findings {
        Findings {
            outcome,
            attempts: attempts.iter().map(|a| a.to_string()).collect(),
            installed: installed.iter().map(|i| i.to_string()).collect(),
            changed_path: false,
            wrote_output: false,
        }
    }

    #[test]
    fn verdict_table() {
        use EvaluationOutcome as O;
        let table = [
            (
                findings(O::Completed, &[], &[]),
                Verdict::Allowed,
                "sandbox-effects",
            ),
            (
                findings(O::TimedOut, &["x"], &[]),
                Verdict::Denied,
                "sandbox-timeout",
            ),
            (
                findings(O::OutOfMemory, &[], &[]),
                Verdict::Denied,
                "sandbox-memory-limit",
            ),
            (
                findings(O::OutputLimit, &[], &[]),
                Verdict::Denied,
                "sandbox-output-limit",
            ),
            (
                findings(O::GuestError("t".into()), &[], &[]),
                Verdict::Denied,
                "sandbox-crash",
            ),
            (
                findings(O::Completed, &["env"], &[]),
                Verdict::Denied,
                "capability-denied",
            ),
            (
                findings(O::MissingModule("m".into()), &["env"], &[]),
                Verdict::Denied,
                "capability-denied",
            ),
            (
                findings(O::NeedsNative("ctypes".into()), &[], &[]),
                Verdict::Denied,
                "needs-native",
            ),
            (
                findings(O::MissingModule("m".into()), &[], &[]),
                Verdict::Denied,
                "missing-module",
            ),
            (
                findings(O::Raised("E".into()), &[], &[]),
                Verdict::Denied,
                "hook-raised",
            ),
            (
                findings(O::Completed, &[], &["f"]),
                Verdict::Denied,
                "untransplantable-hook",
            ),
        ];
        for (found, verdict, reason) in table {
            let decision = judge(&found, &EnvGrant::default(), None);
            assert_eq!(
                (decision.verdict, decision.reason),
                (verdict, reason),
                "{found:?}"
            );
            assert!(crate::diagnostics::diagnostic(reason).is_some(), "{reason}");
        }
    }
}
