//! Everything sitegate says to people and programs: `error:`/`warning:` lines with their
//! `hint:`, the scan table, and the JSON document. Data goes to stdout, all else to stderr.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use sitegate_policy::{PolicyError, Verdict};

use crate::interpreter::Interpreter;
use crate::sandbox::Outcome;
use crate::scan::{FileState, Hook, Scan};
use crate::settings::PolicyLoadError;

/// Prints an error with its cause chain and an optional hint.
pub fn error(error: &anyhow::Error, hint: Option<&str>) {
    let mut out = std::io::stderr().lock();
    // Hints travel in the chain as context; they are shown once, last.
    let mut chain = error
        .chain()
        .map(|e| e.to_string())
        .filter(|text| Some(text.as_str()) != hint);
    let headline = chain.next().unwrap_or_default();
    let _ = writeln!(out, "error: {headline}");
    for cause in chain {
        let _ = writeln!(out, "  Caused by: {cause}");
    }
    let policy_error = error
        .chain()
        .find_map(|e| match e.downcast_ref::<PolicyLoadError>() {
            Some(PolicyLoadError::Invalid(policy)) => Some(policy),
            _ => e.downcast_ref::<PolicyError>(),
        });
    if let Some(policy) = policy_error {
        for problem in &policy.problems {
            let _ = writeln!(
                out,
                "  --> {}:{}:{}: {}",
                policy.file.display(),
                problem.line,
                problem.column,
                problem.message
            );
        }
    }
    if let Some(hint) = hint {
        let _ = writeln!(out, "hint: {hint}");
    }
}

/// Prints a warning and an optional hint.
pub fn warning(code: &str, message: &str, hint: Option<&str>) {
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "warning[{code}]: {message}");
    if let Some(hint) = hint {
        let _ = writeln!(out, "  hint: {hint}");
    }
}

fn location(hook: &Hook) -> String {
    match hook.line {
        Some(line) => format!("{}:{line}", hook.path.display()),
        None => hook.path.display().to_string(),
    }
}

fn owner_text(hook: &Hook) -> String {
    hook.owner.as_ref().map_or_else(
        || "none".to_owned(),
        |o| format!("{} {}", o.name, o.version),
    )
}

/// Prints one warning per denied hook and per file that could not be used.
/// `python` is the interpreter of the start, which `sitegate explain` needs to be told.
pub fn denials(scan: &Scan, python: &Path) {
    for hook in scan
        .hooks
        .iter()
        .filter(|h| h.decision.verdict == Verdict::Denied)
    {
        let file_name = hook
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let hint = denial_hint(hook, &file_name, python);
        let signals: Vec<&str> = hook.signals.iter().map(|s| s.code()).collect();
        let signals = if signals.is_empty() {
            String::new()
        } else {
            format!(" [{}]", signals.join(", "))
        };
        warning(
            hook.decision.reason,
            &format!(
                "Denied {} hook `{}` (owner: {}){signals}: {}",
                hook.kind,
                printable(&location(hook)),
                printable(&owner_text(hook)),
                printable(&hook.decision.message)
            ),
            hint.as_deref(),
        );
    }
    for file in &scan.files {
        if let Some((code, message, hint)) = file_problem(file) {
            warning(code, &message, hint);
        }
    }
}

/// What to do about a denied hook, by the reason it was denied.
fn denial_hint(hook: &Hook, file_name: &str, python: &Path) -> Option<String> {
    let allow = format!(
        "if you trust it, add to a trusted `sitegate.toml`: `[[allow]]` `file = \"{}\"` \
         `sha256 = \"{}\"`",
        printable(file_name),
        hook.sha256
    );
    // After an evaluation the sandbox's record is the evidence: an allow by hash would let a
    // hook that tried to reach secrets or the network run natively.
    let evaluated = hook.evaluation.is_some() && hook.decision.reason != "unevaluated-hook";
    match hook.decision.reason {
        "unverifiable-module" | "unreadable-hook-file" | "oversized-hook-file" => None,
        "policy-deny" => hook
            .decision
            .rule
            .as_ref()
            .map(|rule| format!("the `[[deny]]` entry at `{rule}` decides this")),
        _ if hook
            .signals
            .contains(&sitegate_policy::Signal::HashMismatch) =>
        {
            Some(format!(
                "the file differs from what {} installed; reinstall it rather than allow it",
                printable(&owner_text(hook))
            ))
        }
        _ if evaluated => {
            let explain = format!(
                "`sitegate explain {} --python {}` shows what it did in the sandbox",
                printable(&location(hook)),
                printable(&python.display().to_string())
            );
            Some(match hook.decision.reason {
                "sandbox-timeout" | "sandbox-memory-limit" | "sandbox-output-limit" => format!(
                    "{explain}; if it needs more, raise the limit in the policy's `[sandbox]` \
                     table"
                ),
                _ => format!("{explain}; allow it natively only if that is what you expect of it"),
            })
        }
        _ => Some(allow),
    }
}

/// A problem with a whole file, for people: code, message and hint.
fn file_problem(
    file: &crate::scan::PthFile,
) -> Option<(&'static str, String, Option<&'static str>)> {
    let path = printable(&file.path.display().to_string());
    match &file.state {
        FileState::Parsed(_) => None,
        FileState::Unreadable(why) => Some((
            "unreadable-hook-file",
            format!("Skipped `{path}`: {why}; CPython skips it too"),
            None,
        )),
        FileState::Oversized(size) => Some((
            "oversized-hook-file",
            format!("Denied `{path}` as a whole: it has {size} bytes, more than sitegate reads"),
            Some("a `.pth` file this large is not one a package ships; look at what wrote it"),
        )),
        FileState::Undecodable(error) => Some((
            "undecodable-pth",
            format!("`{path}` cannot be decoded: {error}; CPython aborts its start on this file"),
            Some("remove or re-encode the file as UTF-8"),
        )),
    }
}

/// Text with control characters escaped, so that a file name cannot rewrite the terminal.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The verdict as reports name it: `effects` for a hook allowed only for its `sys.path`
/// effects, measured in the sandbox.
pub fn verdict_code(hook: &Hook) -> &'static str {
    if hook.decision.reason == "sandbox-effects" {
        "effects"
    } else {
        hook.decision.verdict.code()
    }
}

/// An evaluation's outcome as data: `{"kind": "raised", "type_name": ...}`, with the kinds
/// named as in the WIT world (`completed`, `missing-module`, `timed-out`...).
pub fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Completed => json!({"kind": "completed"}),
        Outcome::Raised(raised) => json!({
            "kind": "raised",
            "type_name": raised.type_name,
            "message": raised.message,
            "traceback": raised.traceback,
        }),
        Outcome::MissingModule(module) => json!({"kind": "missing-module", "module": module}),
        Outcome::NeedsNative(module) => json!({"kind": "needs-native", "module": module}),
        Outcome::TimedOut => json!({"kind": "timed-out"}),
        Outcome::OutOfMemory => json!({"kind": "out-of-memory"}),
        Outcome::OutputLimit => json!({"kind": "output-limit"}),
        Outcome::GuestError(error) => json!({"kind": "guest-error", "message": error}),
    }
}

/// The JSON document of a scan.
pub fn json_document(interpreter: &Interpreter, scan: &Scan) -> Value {
    let facts = &interpreter.facts;
    let hooks: Vec<Value> = scan
        .hooks
        .iter()
        .map(|hook| {
            json!({
                "path": hook.path,
                "line": hook.line,
                "kind": hook.kind.code(),
                "verdict": verdict_code(hook),
                "reason": hook.decision.reason,
                "message": hook.decision.message,
                "sha256": hook.sha256,
                "owner": hook.owner.as_ref().map(|o| json!({"name": o.name, "version": o.version})),
                "signals": hook.signals.iter().map(|s| s.code()).collect::<Vec<_>>(),
                "text": hook.text,
                "target": hook.target.as_ref().map(|(t, _)| t),
                "target_exists": hook.target.as_ref().map(|(_, e)| e),
                "env": hook.decision.env.patterns(),
                "rule": hook.decision.rule.as_ref().map(|r| r.to_string()),
                "sandbox": hook.evaluation.as_ref().map(|evaluated| json!({
                    "mode": "sandbox",
                    "cached": evaluated.cached,
                    "outcome": outcome_json(&evaluated.reply.outcome),
                    "path_before": evaluated.path_before,
                    "effects": evaluated.reply.effects,
                    "trace": evaluated.reply.trace,
                })),
            })
        })
        .collect();
    let problems: Vec<Value> = scan
        .files
        .iter()
        .filter_map(|file| {
            let (code, message) = match &file.state {
                FileState::Parsed(_) => return None,
                FileState::Unreadable(why) => ("unreadable-hook-file", why.clone()),
                FileState::Oversized(size) => ("oversized-hook-file", format!("{size} bytes")),
                FileState::Undecodable(error) => ("undecodable-pth", error.to_string()),
            };
            Some(json!({"path": file.path, "code": code, "message": message}))
        })
        .collect();
    json!({
        "interpreter": {
            "path": interpreter.path,
            "executable": facts.executable,
            "version": format!("{}.{}.{}", facts.version[0], facts.version[1], facts.version[2]),
            "prefix": facts.prefix,
            "base_prefix": facts.base_prefix,
            "site_dirs": scan.site_dirs,
        },
        "hooks": hooks,
        "problems": problems,
        "sys_path": scan.predicted_path,
    })
}

/// The scan as a table for people.
pub fn table(interpreter: &Interpreter, scan: &Scan) {
    let mut out = std::io::stdout().lock();
    let facts = &interpreter.facts;
    let _ = writeln!(
        out,
        "Python {}.{}.{} at `{}`",
        facts.version[0],
        facts.version[1],
        facts.version[2],
        interpreter.path.display()
    );
    for dir in &scan.site_dirs {
        let _ = writeln!(out, "site directory `{}`", dir.display());
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<8} {:<14} {:<24} {:<20} LOCATION",
        "VERDICT", "KIND", "REASON", "OWNER"
    );
    for hook in &scan.hooks {
        let mut line = format!(
            "{:<8} {:<14} {:<24} {:<20} {}",
            verdict_code(hook),
            hook.kind.code(),
            hook.decision.reason,
            printable(&owner_text(hook)),
            printable(&location(hook))
        );
        if !hook.signals.is_empty() {
            let signals: Vec<_> = hook.signals.iter().map(|s| s.code()).collect();
            line.push_str(&format!(" [{}]", signals.join(", ")));
        }
        let _ = writeln!(out, "{line}");
    }
    for file in &scan.files {
        if let Some((code, message, _)) = file_problem(file) {
            let _ = writeln!(
                out,
                "{:<8} {:<14} {code:<24} {:<20} {message}",
                "problem", "file", ""
            );
        }
    }
    let denied = scan
        .hooks
        .iter()
        .filter(|h| h.decision.verdict == Verdict::Denied)
        .count();
    let _ = writeln!(out, "\n{} hook(s), {} denied", scan.hooks.len(), denied);
    // What the sandbox saw is the reason a reader needs; the code alone does not say it.
    let evaluated: Vec<&Hook> = scan
        .hooks
        .iter()
        .filter(|h| h.evaluation.is_some() && h.decision.verdict == Verdict::Denied)
        .collect();
    if !evaluated.is_empty() {
        let _ = writeln!(out, "\ndenied after evaluation in the sandbox:");
        for hook in evaluated {
            let _ = writeln!(
                out,
                "  {}: {}",
                printable(&location(hook)),
                printable(&hook.decision.message)
            );
        }
    }
}
