//! The policy file: `sitegate.toml`, or `[tool.sitegate]` in `pyproject.toml`.
//!
//! This module owns the policy's shape and its strict reading. Unknown keys, wrong types and
//! rules that could never match are errors carrying the file's path and a 1-based line; every
//! problem of one file is collected and returned together. It trusts nothing in the file and
//! performs no I/O: the caller hands it the text and says where it came from.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::hook::HookKind;

/// What happens when a hook is denied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnViolation {
    /// The hook does not run; one warning per hook on stderr.
    #[default]
    Skip,
    /// sitegate refuses to start the program.
    Fail,
}

/// How an allowed hook may run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunMode {
    /// In the real interpreter, with only the granted environment variables visible.
    #[default]
    Native,
    /// Evaluated in the WebAssembly sandbox first; the verdict follows from what it did.
    Sandbox,
}

/// What a code hook that no entry or baseline hook allows gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownCode {
    /// Denied with `unknown-code-hook` (the default).
    #[default]
    Deny,
    /// Evaluated in the sandbox, with no grant; the verdict follows from what it did.
    Sandbox,
}

/// What a path line whose target others can write to gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WritablePaths {
    /// Denied with `writable-path` (the default).
    #[default]
    Deny,
    /// Allowed; the scan still reports the signal.
    Allow,
}

/// One `[[allow]]` or `[[deny]]` entry, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRule {
    file: Option<Spanned<String>>,
    owner: Option<Spanned<String>>,
    sha256: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    #[serde(default)]
    env: Vec<Spanned<String>>,
    reason: Option<String>,
}

/// The bounds of one sandbox evaluation, as the `[sandbox]` table sets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SandboxLimits {
    /// Linear memory the guest may grow to, in MiB.
    #[serde(default = "SandboxLimits::default_memory_mib")]
    pub memory_mib: u32,
    /// Milliseconds the guest may run (epoch interruption).
    #[serde(default = "SandboxLimits::default_cpu_ms")]
    pub cpu_ms: u32,
    /// Milliseconds the whole evaluation may take.
    #[serde(default = "SandboxLimits::default_wall_ms")]
    pub wall_ms: u32,
    /// KiB of stdout, and of stderr, kept.
    #[serde(default = "SandboxLimits::default_output_kib")]
    pub output_kib: u32,
    /// Milliseconds one start may spend evaluating hooks that are not in the cache; the rest
    /// wait for a later start.
    #[serde(default = "SandboxLimits::default_start_ms")]
    pub start_ms: u32,
}

impl SandboxLimits {
    fn default_memory_mib() -> u32 {
        256
    }
    fn default_cpu_ms() -> u32 {
        2000
    }
    fn default_wall_ms() -> u32 {
        5000
    }
    fn default_output_kib() -> u32 {
        64
    }
    fn default_start_ms() -> u32 {
        30_000
    }
}

impl Default for SandboxLimits {
    fn default() -> SandboxLimits {
        SandboxLimits {
            memory_mib: SandboxLimits::default_memory_mib(),
            cpu_ms: SandboxLimits::default_cpu_ms(),
            wall_ms: SandboxLimits::default_wall_ms(),
            output_kib: SandboxLimits::default_output_kib(),
            start_ms: SandboxLimits::default_start_ms(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPolicy {
    on_violation: Option<OnViolation>,
    baseline: Option<bool>,
    writable_paths: Option<WritablePaths>,
    unknown_code: Option<UnknownCode>,
    sandbox: Option<Spanned<SandboxLimits>>,
    #[serde(default)]
    allow: Vec<Spanned<RawRule>>,
    #[serde(default)]
    deny: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
struct RawPyproject {
    tool: Option<RawTool>,
}

#[derive(Deserialize)]
struct RawTool {
    sitegate: Option<RawPolicy>,
}

/// A grant of environment variables: exact names, or prefixes written `PREFIX_*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvGrant {
    /// Names granted exactly.
    pub names: Vec<String>,
    /// Prefixes: every variable starting with one is granted.
    pub prefixes: Vec<String>,
}

impl EnvGrant {
    /// Whether the grant covers a variable.
    pub fn covers(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name) || self.prefixes.iter().any(|p| name.starts_with(p))
    }

    /// Adds another grant to this one.
    pub fn extend(&mut self, other: &EnvGrant) {
        self.names.extend(other.names.iter().cloned());
        self.prefixes.extend(other.prefixes.iter().cloned());
    }

    /// The grant in the form a policy writes it.
    pub fn patterns(&self) -> Vec<String> {
        let prefixes = self.prefixes.iter().map(|p| format!("{p}*"));
        self.names.iter().cloned().chain(prefixes).collect()
    }
}

/// Where a rule was written: the policy file and the 1-based line of its table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleOrigin {
    /// The policy file.
    pub file: PathBuf,
    /// The 1-based line of the `[[allow]]` or `[[deny]]` header's first key.
    pub line: usize,
}

impl fmt::Display for RuleOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// An allow or deny rule: every field it sets must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// A file-name pattern (`*` and `?`), matched against the hook file's name.
    pub file: Option<String>,
    /// The owning distribution's normalised name.
    pub owner: Option<String>,
    /// The hook file's SHA-256, lower-case hex.
    pub sha256: Option<String>,
    /// The kind of hook.
    pub kind: Option<HookKind>,
    /// How an allowed hook runs.
    pub mode: RunMode,
    /// The environment variables the hook may read.
    pub env: EnvGrant,
    /// Why the rule exists, for people.
    pub reason: Option<String>,
    /// Where it was written.
    pub origin: RuleOrigin,
}

/// A policy, read and checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// What a denial does.
    pub on_violation: OnViolation,
    /// Whether the built-in baseline applies.
    pub baseline: bool,
    /// What path lines to others' writable directories get.
    pub writable_paths: WritablePaths,
    /// What unknown code lines get.
    pub unknown_code: UnknownCode,
    /// The bounds of each sandbox evaluation.
    pub sandbox: SandboxLimits,
    /// `[[allow]]` entries, in file order.
    pub allow: Vec<Rule>,
    /// `[[deny]]` entries, in file order.
    pub deny: Vec<Rule>,
    /// The file it was read from, if any.
    pub source: Option<PathBuf>,
}

impl Policy {
    /// The policy in force when no file is found: the defaults, baseline on.
    pub fn builtin() -> Policy {
        Policy {
            baseline: true,
            ..Policy::default()
        }
    }
}

/// One problem in a policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyProblem {
    /// The 1-based line.
    pub line: usize,
    /// The 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// A policy file that cannot be used, with every problem found in it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s) in policy `{}`", .problems.len(), .file.display())]
pub struct PolicyError {
    /// The policy file.
    pub file: PathBuf,
    /// The problems, in file order.
    pub problems: Vec<PolicyProblem>,
}

/// Where the policy text came from, which decides how it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyFormat {
    /// A `sitegate.toml`: the whole file is the policy.
    SitegateToml,
    /// A `pyproject.toml`: the policy is its `[tool.sitegate]` table, if any.
    Pyproject,
}

/// Reads a policy. `Ok(None)` is a `pyproject.toml` without a `[tool.sitegate]` table.
pub fn parse_policy(
    text: &str,
    file: &Path,
    format: PolicyFormat,
) -> Result<Option<Policy>, PolicyError> {
    let locate = |span: Option<Range<usize>>, message: String| {
        let (line, column) = span.map(|s| line_column(text, s.start)).unwrap_or((1, 1));
        PolicyError {
            file: file.to_owned(),
            problems: vec![PolicyProblem {
                line,
                column,
                message,
            }],
        }
    };
    let raw: RawPolicy = match format {
        PolicyFormat::SitegateToml => {
            toml::from_str(text).map_err(|e| locate(e.span(), e.message().to_owned()))?
        }
        PolicyFormat::Pyproject => {
            let project: RawPyproject =
                toml::from_str(text).map_err(|e| locate(e.span(), e.message().to_owned()))?;
            // Read straight from the document, so positions stay those of the file.
            match project.tool.and_then(|tool| tool.sitegate) {
                Some(policy) => policy,
                None => return Ok(None),
            }
        }
    };

    let mut problems = Vec::new();
    let sandbox = match raw.sandbox {
        Some(limits) => {
            let span = limits.span();
            let limits = limits.into_inner();
            let valid = limits.memory_mib >= 32
                && limits.memory_mib <= 4095
                && limits.cpu_ms > 0
                && limits.wall_ms >= limits.cpu_ms
                && limits.output_kib > 0
                && limits.start_ms >= limits.wall_ms;
            if !valid {
                let (line, column) = line_column(text, span.start);
                problems.push(PolicyProblem {
                    line,
                    column,
                    message: "[sandbox] needs `memory-mib` between 32 and 4095 (the guest is \
                              32-bit), `cpu-ms` above 0, `wall-ms` at least `cpu-ms`, \
                              `output-kib` above 0, and `start-ms` at least `wall-ms`"
                        .to_owned(),
                });
            }
            limits
        }
        None => SandboxLimits::default(),
    };
    let mut rules = |entries: Vec<Spanned<RawRule>>, section: &str| -> Vec<Rule> {
        entries
            .into_iter()
            .filter_map(|entry| check_rule(text, file, section, entry, &mut problems))
            .collect()
    };
    let allow = rules(raw.allow, "allow");
    let deny = rules(raw.deny, "deny");
    if !problems.is_empty() {
        problems.sort_by_key(|p: &PolicyProblem| (p.line, p.column));
        return Err(PolicyError {
            file: file.to_owned(),
            problems,
        });
    }
    Ok(Some(Policy {
        on_violation: raw.on_violation.unwrap_or_default(),
        baseline: raw.baseline.unwrap_or(true),
        writable_paths: raw.writable_paths.unwrap_or_default(),
        unknown_code: raw.unknown_code.unwrap_or_default(),
        sandbox,
        allow,
        deny,
        source: Some(file.to_owned()),
    }))
}

fn check_rule(
    text: &str,
    file: &Path,
    section: &str,
    entry: Spanned<RawRule>,
    problems: &mut Vec<PolicyProblem>,
) -> Option<Rule> {
    let span = entry.span();
    let raw = entry.into_inner();
    let before = problems.len();
    let mut problem = |span: Range<usize>, message: String| {
        let (line, column) = line_column(text, span.start);
        problems.push(PolicyProblem {
            line,
            column,
            message,
        });
    };

    if raw.file.is_none() && raw.owner.is_none() && raw.sha256.is_none() {
        problem(
            span.clone(),
            format!("a [[{section}]] entry needs at least one of `file`, `owner` or `sha256`"),
        );
    }
    if let Some(pattern) = &raw.file {
        if pattern.get_ref().is_empty() || pattern.get_ref().contains('/') {
            problem(
                pattern.span(),
                "`file` is a file-name pattern, without `/`".to_owned(),
            );
        }
    }
    if let Some(hash) = &raw.sha256 {
        let valid =
            hash.get_ref().len() == 64 && hash.get_ref().bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            problem(
                hash.span(),
                "`sha256` must be 64 hexadecimal digits".to_owned(),
            );
        }
    }
    let kind = raw.kind.as_ref().and_then(|kind| {
        let parsed = HookKind::from_code(kind.get_ref());
        if parsed.is_none() {
            problem(
                kind.span(),
                format!(
                    "unknown `kind` `{}`; expected `pth-path`, `pth-code`, `sitecustomize` or \
                     `usercustomize`",
                    kind.get_ref()
                ),
            );
        }
        parsed
    });
    let mode = match raw.mode.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
        None | Some(("native", _)) => RunMode::Native,
        Some(("sandbox", _)) => RunMode::Sandbox,
        Some((other, span)) => {
            problem(
                span,
                format!("unknown `mode` `{other}`; expected `native` or `sandbox`"),
            );
            RunMode::Native
        }
    };
    if section == "deny" && (raw.mode.is_some() || !raw.env.is_empty()) {
        problem(
            span.clone(),
            "a [[deny]] entry takes no `mode` or `env`".to_owned(),
        );
    }
    let mut env = EnvGrant::default();
    for grant in &raw.env {
        let value = grant.get_ref();
        let (name, prefix) = match value.strip_suffix('*') {
            Some(prefix) => (prefix, true),
            None => (value.as_str(), false),
        };
        let valid = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if !valid {
            problem(
                grant.span(),
                format!("`env` entry `{value}` is not a variable name or a `PREFIX_*` pattern"),
            );
        } else if prefix {
            env.prefixes.push(name.to_owned());
        } else {
            env.names.push(name.to_owned());
        }
    }
    if problems.len() > before {
        return None;
    }
    Some(Rule {
        file: raw.file.map(Spanned::into_inner),
        owner: raw.owner.map(|o| normalise_distribution_name(o.get_ref())),
        sha256: raw.sha256.map(|h| h.into_inner().to_ascii_lowercase()),
        kind,
        mode,
        env,
        reason: raw.reason,
        origin: RuleOrigin {
            file: file.to_owned(),
            line: line_column(text, span.start).0,
        },
    })
}

/// A distribution name normalised as PEP 503 does (lower case, runs of `-_.` as one `-`).
pub fn normalise_distribution_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            separator = true;
            continue;
        }
        if separator && !out.is_empty() {
            out.push('-');
        }
        separator = false;
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Matches a file name against a pattern of literal characters, `*` and `?`.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    n = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<Policy>, PolicyError> {
        parse_policy(text, Path::new("sitegate.toml"), PolicyFormat::SitegateToml)
    }

    #[test]
    fn sandbox_settings_are_read_and_checked() {
        let policy = parse("unknown-code = \"sandbox\"\n[sandbox]\ncpu-ms = 300\n")
            .unwrap()
            .unwrap();
        assert_eq!(policy.unknown_code, UnknownCode::Sandbox);
        assert_eq!(policy.sandbox.cpu_ms, 300);
        assert_eq!(
            policy.sandbox.memory_mib,
            SandboxLimits::default().memory_mib
        );
        let mode = parse("[[allow]]\nfile = \"a.pth\"\nmode = \"sandbox\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(mode.allow[0].mode, RunMode::Sandbox);

        for broken in [
            "[sandbox]\nmemory-mib = 8000\n",
            "[sandbox]\ncpu-ms = 3000\nwall-ms = 1000\n",
            "[sandbox]\nwall-ms = 5000\nstart-ms = 1000\n",
            "[sandbox]\ncpu = 1\n",
            "unknown-code = \"allow\"\n",
        ] {
            assert!(parse(broken).is_err(), "{broken}");
        }
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let error = parse("on-violation = \"skip\"\n\n[[allow]]\nfile = \"a.pth\"\nflie = 1\n")
            .unwrap_err();
        assert_eq!(error.problems.len(), 1);
        assert_eq!(error.problems[0].line, 5);
        assert!(
            error.problems[0].message.contains("flie"),
            "{:?}",
            error.problems
        );
    }

    #[test]
    fn every_problem_of_a_file_is_collected() {
        let text = "[[allow]]\nsha256 = \"abc\"\n\n[[allow]]\nfile = \"x.pth\"\nenv = [\"9X\"]\n\
                    \n[[deny]]\nreason = \"no matcher\"\n";
        let error = parse(text).unwrap_err();
        let lines: Vec<usize> = error.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![2, 6, 8]);
    }

    #[test]
    fn rules_read_back() {
        let policy = parse(
            "on-violation = \"fail\"\nbaseline = false\n[[allow]]\nfile = \"cov*.pth\"\n\
             owner = \"Pytest_Cov\"\nenv = [\"COV_CORE_*\", \"HOME\"]\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(policy.on_violation, OnViolation::Fail);
        assert!(!policy.baseline);
        let rule = &policy.allow[0];
        assert_eq!(rule.owner.as_deref(), Some("pytest-cov"));
        assert!(rule.env.covers("COV_CORE_SOURCE") && rule.env.covers("HOME"));
        assert!(!rule.env.covers("HOMEX"));
        assert_eq!(rule.origin.line, 3);
    }

    #[test]
    fn pyproject_without_a_table_is_no_policy() {
        let none = parse_policy(
            "[project]\nname = \"x\"\n",
            Path::new("p"),
            PolicyFormat::Pyproject,
        );
        assert_eq!(none, Ok(None));
        let entries = "[project]\nname = \"x\"\n\n[tool.other]\nanything = 1\n\n\
                       [[tool.sitegate.allow]]\nfile = \"a.pth\"\n\n[[tool.sitegate.deny]]\nfile = \"b.pth\"\n";
        let read = parse_policy(entries, Path::new("p"), PolicyFormat::Pyproject)
            .unwrap()
            .unwrap();
        assert_eq!(
            (read.allow.len(), read.deny.len(), read.allow[0].origin.line),
            (1, 1, 7)
        );
        let broken = "[tool.sitegate]\nbaseline = true\n\n[[tool.sitegate.allow]]\nflie = 1\n";
        let error = parse_policy(broken, Path::new("p"), PolicyFormat::Pyproject).unwrap_err();
        assert_eq!(error.problems[0].line, 5, "{:?}", error.problems);
        let some = parse_policy(
            "[tool.sitegate]\non-violation = \"fail\"\n",
            Path::new("p"),
            PolicyFormat::Pyproject,
        );
        assert_eq!(some.unwrap().unwrap().on_violation, OnViolation::Fail);
    }

    #[test]
    fn name_patterns() {
        let table = [
            ("*.pth", "a.pth", true),
            ("a?.pth", "ab.pth", true),
            ("a?.pth", "a.pth", false),
            ("__editable__.*", "__editable__.x-1.pth", true),
            ("x*y*z", "xaybz", true),
            ("x*y*z", "xaybza", false),
        ];
        for (pattern, name, expected) in table {
            assert_eq!(name_matches(pattern, name), expected, "{pattern} ~ {name}");
        }
    }
}
