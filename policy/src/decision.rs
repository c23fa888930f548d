//! The decision function: one hook's facts and the policy in, a verdict with its reason out.
//!
//! Order of precedence: an explicit `[[deny]]` entry, then an `[[allow]]` entry, then the
//! built-in baseline, then the defaults (path lines allowed unless others can write to their
//! target; code, `sitecustomize` and `usercustomize` denied). Unknown code is never allowed by
//! default.

use crate::baseline::match_baseline;
use crate::hook::{HookFacts, HookKind, Signal};
use crate::model::{
    name_matches, normalise_distribution_name, EnvGrant, Policy, Rule, RuleOrigin, RunMode,
    UnknownCode, WritablePaths,
};

/// Whether a hook may take effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It takes effect as CPython would give it.
    Allowed,
    /// It does not take effect; the start goes on as if it had done nothing.
    Denied,
}

impl Verdict {
    /// The stable name used in reports.
    pub fn code(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Denied => "denied",
        }
    }
}

/// A verdict and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The verdict.
    pub verdict: Verdict,
    /// The diagnostic code of the reason.
    pub reason: &'static str,
    /// A sentence saying why.
    pub message: String,
    /// For allowed code: how it runs.
    pub mode: Option<RunMode>,
    /// For allowed code: the environment variables it may read.
    pub env: EnvGrant,
    /// The policy entry that decided, if one did.
    pub rule: Option<RuleOrigin>,
}

impl Decision {
    fn denied(reason: &'static str, message: String, rule: Option<RuleOrigin>) -> Decision {
        Decision {
            verdict: Verdict::Denied,
            reason,
            message,
            mode: None,
            env: EnvGrant::default(),
            rule,
        }
    }

    /// A hook the policy sends to the sandbox, before its evaluation: denied until the
    /// evaluation's verdict replaces this one, so that a hook never evaluated never runs.
    fn awaiting_evaluation(env: EnvGrant, rule: Option<RuleOrigin>) -> Decision {
        Decision {
            verdict: Verdict::Denied,
            reason: "unevaluated-hook",
            message: "The policy sends this hook to the sandbox, and it was not evaluated"
                .to_owned(),
            mode: Some(RunMode::Sandbox),
            env,
            rule,
        }
    }

    /// Whether this decision waits for a sandbox evaluation.
    pub fn awaits_evaluation(&self) -> bool {
        self.reason == "unevaluated-hook"
    }

    fn allowed(
        reason: &'static str,
        message: String,
        env: EnvGrant,
        rule: Option<RuleOrigin>,
    ) -> Decision {
        Decision {
            verdict: Verdict::Allowed,
            reason,
            message,
            mode: Some(RunMode::Native),
            env,
            rule,
        }
    }
}

fn rule_matches(rule: &Rule, hook: &HookFacts<'_>) -> bool {
    let file = rule
        .file
        .as_deref()
        .is_none_or(|pattern| name_matches(pattern, hook.file_name));
    // A file whose bytes differ from its RECORD is not that distribution's file any more.
    let owner = rule.owner.as_deref().is_none_or(|owner| {
        hook.owner
            .is_some_and(|o| normalise_distribution_name(&o.name) == owner)
            && !hook.signals.contains(&Signal::HashMismatch)
    });
    let hash = rule
        .sha256
        .as_deref()
        .is_none_or(|hash| hash == hook.sha256);
    let kind = rule.kind.is_none_or(|kind| kind == hook.kind);
    file && owner && hash && kind
}

/// Decides one hook.
pub fn decide(hook: &HookFacts<'_>, policy: &Policy) -> Decision {
    if let Some(rule) = policy.deny.iter().find(|rule| rule_matches(rule, hook)) {
        let why = rule
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        return Decision::denied(
            "policy-deny",
            format!("A [[deny]] entry of the policy matches this hook{why}"),
            Some(rule.origin.clone()),
        );
    }
    if let Some(rule) = policy.allow.iter().find(|rule| rule_matches(rule, hook)) {
        if rule.mode == RunMode::Sandbox && hook.kind.runs_code() {
            return Decision::awaiting_evaluation(rule.env.clone(), Some(rule.origin.clone()));
        }
        return Decision::allowed(
            "policy-allow",
            "An [[allow]] entry of the policy matches this hook".to_owned(),
            rule.env.clone(),
            Some(rule.origin.clone()),
        );
    }
    if policy.baseline {
        if let Some(found) = match_baseline(hook) {
            return Decision::allowed(
                "baseline-hook",
                format!("The built-in baseline knows this hook as `{}`", found.name),
                found.env,
                None,
            );
        }
    }
    if hook.kind.runs_code() && policy.unknown_code == UnknownCode::Sandbox {
        return Decision::awaiting_evaluation(EnvGrant::default(), None);
    }
    match hook.kind {
        HookKind::PthPath => {
            let writable = hook.signals.contains(&Signal::WritablePath);
            if writable && policy.writable_paths == WritablePaths::Deny {
                Decision::denied(
                    "writable-path",
                    "The path entry is a directory that other users can write to".to_owned(),
                    None,
                )
            } else {
                Decision::allowed(
                    "path-entry",
                    "Path entries are allowed by default".to_owned(),
                    EnvGrant::default(),
                    None,
                )
            }
        }
        HookKind::PthCode => Decision::denied(
            "unknown-code-hook",
            "No policy entry or baseline hook allows this code line".to_owned(),
            None,
        ),
        HookKind::Sitecustomize | HookKind::Usercustomize => Decision::denied(
            "unknown-customize-module",
            format!(
                "No policy entry or baseline hook allows this `{}` module",
                hook.kind
            ),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hook::Owner;
    use crate::model::{parse_policy, PolicyFormat};
    use std::path::Path;

    fn policy(text: &str) -> Policy {
        parse_policy(text, Path::new("p.toml"), PolicyFormat::SitegateToml)
            .unwrap()
            .unwrap()
    }

    fn facts<'a>(
        kind: HookKind,
        file: &'a str,
        owner: Option<&'a Owner>,
        signals: &'a [Signal],
    ) -> HookFacts<'a> {
        HookFacts {
            kind,
            file_name: file,
            line_text: Some("import x"),
            sha256: "ab",
            owner,
            signals,
        }
    }

    #[test]
    fn decision_table() {
        let owner = Owner {
            name: "Demo_Pkg".into(),
            version: "1".into(),
        };
        let strict = policy(
            "[[allow]]\nowner = \"demo-pkg\"\nenv = [\"DEMO_*\"]\n[[deny]]\nfile = \"evil*.pth\"\n",
        );
        let empty = Policy::builtin();
        let table: Vec<(HookFacts, &Policy, Verdict, &str)> = vec![
            (
                facts(HookKind::PthCode, "a.pth", None, &[]),
                &empty,
                Verdict::Denied,
                "unknown-code-hook",
            ),
            (
                facts(HookKind::PthPath, "a.pth", None, &[]),
                &empty,
                Verdict::Allowed,
                "path-entry",
            ),
            (
                facts(HookKind::PthPath, "a.pth", None, &[Signal::WritablePath]),
                &empty,
                Verdict::Denied,
                "writable-path",
            ),
            (
                facts(HookKind::Sitecustomize, "sitecustomize.py", None, &[]),
                &empty,
                Verdict::Denied,
                "unknown-customize-module",
            ),
            (
                facts(HookKind::PthCode, "a.pth", Some(&owner), &[]),
                &strict,
                Verdict::Allowed,
                "policy-allow",
            ),
            (
                facts(HookKind::PthCode, "evil.pth", Some(&owner), &[]),
                &strict,
                Verdict::Denied,
                "policy-deny",
            ),
            (
                facts(HookKind::PthPath, "evil.pth", None, &[]),
                &strict,
                Verdict::Denied,
                "policy-deny",
            ),
        ];
        for (hook, policy, verdict, reason) in table {
            let decision = decide(&hook, policy);
            assert_eq!(
                (decision.verdict, decision.reason),
                (verdict, reason),
                "{hook:?}"
            );
        }
        let granted = decide(
            &facts(HookKind::PthCode, "a.pth", Some(&owner), &[]),
            &strict,
        );
        assert!(granted.env.covers("DEMO_TOKEN"));
        assert_eq!(granted.rule.unwrap().line, 1);
    }
}
