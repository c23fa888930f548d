//! `sitegate explain` and `sitegate sandbox prepare`: the commands that put the sandbox in
//! front of a person, and the progress bar shown while the guest is compiled.
//!
//! It trusts the scan to have found the hooks and the sandbox to report what they did; it adds
//! nothing to either, it only selects, evaluates and presents.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use sitegate_policy::{judge, RunMode, Verdict};

use crate::evaluation::{changed_path, evaluate_walk, findings_of, Evaluated, LazySandbox};
use crate::interpreter::Interpreter;
use crate::report;
use crate::sandbox::{self, Limits, Outcome};
use crate::scan::{Hook, Scan};

/// A progress bar on stderr while the guest is prepared; silent when stderr is no terminal.
pub struct ProgressBar {
    bar: indicatif::ProgressBar,
}

impl ProgressBar {
    /// A spinner with the elapsed time, hidden until the first step.
    pub fn new() -> ProgressBar {
        let bar = indicatif::ProgressBar::hidden();
        ProgressBar { bar }
    }
}

impl sandbox::Progress for ProgressBar {
    fn step(&self, message: &str) {
        if self.bar.is_hidden() {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            {
                self.bar.set_style(style);
            }
            self.bar
                .enable_steady_tick(std::time::Duration::from_millis(100));
        }
        self.bar.set_message(message.to_owned());
    }
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// `sitegate sandbox prepare`.
pub fn prepare() -> Result<u8> {
    let started = std::time::Instant::now();
    let sha256 = sandbox::prepare(&ProgressBar::new())?;
    eprintln!(
        "Prepared the sandbox guest (sha256 {}) in {:.1} s",
        &sha256[..16],
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}

/// The interpreter of the venv a hook file is in: the nearest directory above it with a
/// `pyvenv.cfg` and a `bin/python`.
pub fn venv_python(target: &str) -> Option<std::ffi::OsString> {
    let (path, _) = parse_target(target).ok()?;
    let absolute = std::path::absolute(&path).ok()?;
    let python = absolute
        .ancestors()
        .skip(1)
        .find(|dir| dir.join("pyvenv.cfg").is_file() && dir.join("bin/python").exists())?
        .join("bin/python");
    tracing::info!(
        "`{}` is in the venv of `{}`",
        path.display(),
        python.display()
    );
    Some(python.into_os_string())
}

/// Why `PATH[:LINE]` selects no code hook of the scan, for the error.
fn not_selected(
    scan: &Scan,
    interpreter: &Interpreter,
    path: &Path,
    line: Option<usize>,
) -> String {
    let python = interpreter.path.display();
    if !path.exists() {
        return format!("`{}` does not exist", path.display());
    }
    let hooks: Vec<&Hook> = scan
        .hooks
        .iter()
        .filter(|h| same_file(&h.path, path))
        .collect();
    if hooks.is_empty() {
        return format!(
            "`{}` is not a `.pth` file or customize module that `{python}` reads at start; \
             name the interpreter whose site-packages it is in with `--python`",
            path.display()
        );
    }
    match line {
        Some(line) => match hooks.iter().find(|h| h.line == Some(line)) {
            Some(_) => format!(
                "line {line} of `{}` is a path line, which runs no code",
                path.display()
            ),
            None => format!(
                "`{}` has no line {line} that `site` reads (comments and blank lines are not \
                 hooks)",
                path.display()
            ),
        },
        None => format!("`{}` has no code line, only path lines", path.display()),
    }
}

/// Splits `PATH[:LINE]`.
fn parse_target(target: &str) -> Result<(PathBuf, Option<usize>)> {
    if let Some((path, line)) = target.rsplit_once(':') {
        if let Ok(line) = line.parse::<usize>() {
            return Ok((PathBuf::from(path), Some(line)));
        }
    }
    Ok((PathBuf::from(target), None))
}

/// Whether two paths name the same file, as written or once links are resolved.
fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(a), Ok(b)) if a == b
        )
}

fn selects(hook: &Hook, path: &Path, line: Option<usize>) -> bool {
    same_file(&hook.path, path)
        && hook.kind.runs_code()
        && line.is_none_or(|l| hook.line == Some(l))
}

/// `sitegate explain PATH[:LINE]`.
pub fn explain(
    interpreter: &Interpreter,
    mut scan: Scan,
    target: &str,
    limits: Limits,
    json: bool,
) -> Result<u8> {
    let (path, line) = parse_target(target)?;
    let progress = ProgressBar::new();
    let mut sandbox = LazySandbox::new(&progress);
    // The whole walk is followed: hooks before the selected ones that are allowed for their
    // effects change the `sys.path` the selected ones see.
    let chosen = |hook: &Hook| selects(hook, &path, line);
    evaluate_walk(&mut scan, interpreter, limits, &mut sandbox, &chosen)?;
    let selected: Vec<usize> = (0..scan.hooks.len())
        .filter(|&index| chosen(&scan.hooks[index]) && scan.hooks[index].evaluation.is_some())
        .collect();
    drop(progress);
    if selected.is_empty() {
        bail!("{}", not_selected(&scan, interpreter, &path, line));
    }
    scan.hooks = selected
        .into_iter()
        .map(|index| scan.hooks[index].clone())
        .collect();

    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::json_document(interpreter, &scan))?
        );
    } else {
        let mut out = std::io::stdout().lock();
        for hook in &scan.hooks {
            write_explanation(&mut out, hook)?;
        }
    }
    let denied = scan
        .hooks
        .iter()
        .any(|h| h.decision.verdict == Verdict::Denied);
    Ok(if denied { 1 } else { 0 })
}

fn write_list(out: &mut impl Write, title: &str, items: &[String]) -> std::io::Result<()> {
    if items.is_empty() {
        return writeln!(out, "  {title}: none");
    }
    writeln!(out, "  {title}:")?;
    for item in items {
        writeln!(out, "    - {item}")?;
    }
    Ok(())
}

fn write_explanation(out: &mut impl Write, hook: &Hook) -> Result<()> {
    let Some(evaluated) = &hook.evaluation else {
        return Ok(());
    };
    let reply = &evaluated.reply;
    let location = match hook.line {
        Some(line) => format!("{}:{line}", hook.path.display()),
        None => hook.path.display().to_string(),
    };
    writeln!(out, "Hook `{location}` ({})", hook.kind)?;
    if let Some(text) = &hook.text {
        writeln!(out, "  line: {text}")?;
    }
    let outcome = match &reply.outcome {
        Outcome::Completed => "completed".to_owned(),
        Outcome::Raised(raised) => format!("raised `{}`: {}", raised.type_name, raised.message),
        Outcome::MissingModule(module) => format!("missing module `{module}` in the sandbox"),
        Outcome::NeedsNative(module) => format!("needs the native module `{module}`"),
        Outcome::TimedOut => "timed out".to_owned(),
        Outcome::OutOfMemory => "out of memory".to_owned(),
        Outcome::OutputLimit => "output limit reached".to_owned(),
        Outcome::GuestError(error) => format!("guest error: {error}"),
    };
    writeln!(out, "  outcome: {outcome}")?;

    let trace = &reply.trace;
    let stopped = matches!(
        reply.outcome,
        Outcome::TimedOut | Outcome::OutOfMemory | Outcome::OutputLimit | Outcome::GuestError(_)
    );
    if stopped {
        // The host stopped the guest before it could report: there is no trace to show.
        writeln!(
            out,
            "  trace: none (the guest was stopped before it could report)"
        )?;
        if !trace.stdout.is_empty() || !trace.stderr.is_empty() {
            writeln!(out, "  stdout: {:?}", trace.stdout)?;
            writeln!(out, "  stderr: {:?}", trace.stderr)?;
        }
        return write_verdict(out, hook, evaluated);
    }
    let lookups: Vec<String> = trace
        .environment_lookups
        .iter()
        .map(|l| {
            let granted = if l.granted { "granted" } else { "not granted" };
            format!("`{}` ({granted})", l.name)
        })
        .collect();
    write_list(out, "environment looked up", &lookups)?;
    write_list(out, "connections tried", &trace.connections)?;
    write_list(out, "names looked up", &trace.name_lookups)?;
    let files: Vec<String> = trace
        .files_opened
        .iter()
        .map(|f| format!("`{}` ({})", f.path, f.mode))
        .collect();
    write_list(out, "files opened", &files)?;
    write_list(out, "processes", &trace.processes)?;
    write_list(out, "native loads", &trace.native_loads)?;
    write_list(out, "imports", &trace.imports)?;
    write_list(out, "dynamic code", &trace.dynamic_code)?;

    let effects = &reply.effects;
    let mut changes: Vec<String> = effects
        .path_added
        .iter()
        .map(|p| format!("`sys.path` gains `{}` at {}", p.entry, p.position))
        .collect();
    changes.extend(
        effects
            .path_removed
            .iter()
            .map(|p| format!("`sys.path` loses `{}` from {}", p.entry, p.position)),
    );
    changes.extend(
        effects
            .meta_path_added
            .iter()
            .map(|o| format!("`sys.meta_path` gains `{}.{}`", o.module, o.type_name)),
    );
    changes.extend(
        effects
            .path_hooks_added
            .iter()
            .map(|o| format!("`sys.path_hooks` gains `{}.{}`", o.module, o.type_name)),
    );
    changes.extend(
        effects
            .environment_set
            .iter()
            .map(|v| format!("sets environment variable `{}`", v.name)),
    );
    changes.extend(
        effects
            .state_changed
            .iter()
            .map(|state| format!("changes {state}")),
    );
    let reordered =
        effects.path_added.is_empty() && effects.path_removed.is_empty() && changed_path(evaluated);
    if reordered {
        changes.push("`sys.path` is reordered".to_owned());
    }
    write_list(out, "effects", &changes)?;
    if evaluated.runs.len() > 1 {
        writeln!(
            out,
            "  runs: {} (`site` reads this directory more than once); each run's change is \
             replayed on the `sys.path` it starts from",
            evaluated.runs.len()
        )?;
    }
    if !trace.stdout.is_empty() || !trace.stderr.is_empty() {
        writeln!(out, "  stdout: {:?}", trace.stdout)?;
        writeln!(out, "  stderr: {:?}", trace.stderr)?;
    }
    write_verdict(out, hook, evaluated)
}

/// The verdict, what the sandbox alone would decide, and the policy entry that would allow it.
fn write_verdict(out: &mut impl Write, hook: &Hook, evaluated: &Evaluated) -> Result<()> {
    writeln!(
        out,
        "  verdict: {} [{}]: {}",
        report::verdict_code(hook),
        hook.decision.reason,
        report::printable(&hook.decision.message)
    )?;
    if let Some(rule) = &hook.decision.rule {
        writeln!(out, "  decided by: {rule}")?;
    }
    let site_dir = hook.path.parent().unwrap_or(Path::new("/"));
    let sandboxed = if hook.decision.mode == Some(RunMode::Sandbox) {
        hook.decision.clone()
    } else {
        // The policy did not send this hook to the sandbox: say what the evaluation alone
        // would decide, with the same grants.
        let findings = findings_of(evaluated, site_dir, &hook.decision.env);
        let sandboxed = judge(&findings, &hook.decision.env, None);
        writeln!(
            out,
            "  with mode = \"sandbox\" it would be: {} [{}]: {}",
            if sandboxed.reason == "sandbox-effects" {
                "effects"
            } else {
                sandboxed.verdict.code()
            },
            sandboxed.reason,
            report::printable(&sandboxed.message)
        )?;
        sandboxed
    };
    let file_name = hook
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The entry that allows it: in the sandbox when the sandbox allows it; natively when only
    // running it can carry its effects over; otherwise no entry makes the sandbox allow it,
    // and running it natively is a decision to trust it, without handing it any variable.
    let (mode, heading) = match sandboxed.reason {
        "sandbox-effects" => ("sandbox", "to allow it, after review:".to_owned()),
        "untransplantable-hook" | "needs-native" | "missing-module" => (
            "native",
            "to allow it, after review (only natively):".to_owned(),
        ),
        reason => (
            "native",
            format!(
                "no entry makes the sandbox allow it ({reason}); to run it natively anyway, \
                 only if you trust it:"
            ),
        ),
    };
    writeln!(out, "  {heading}")?;
    writeln!(out, "    [[allow]]")?;
    writeln!(out, "    file = {}", toml::Value::String(file_name))?;
    writeln!(out, "    sha256 = \"{}\"", hook.sha256)?;
    writeln!(out, "    mode = \"{mode}\"")?;
    let granted: Vec<String> = hook
        .decision
        .env
        .names
        .iter()
        .map(|name| toml::Value::String(name.clone()).to_string())
        .chain(
            hook.decision
                .env
                .prefixes
                .iter()
                .map(|prefix| toml::Value::String(format!("{prefix}*")).to_string()),
        )
        .collect();
    if !granted.is_empty() {
        writeln!(out, "    env = [{}]", granted.join(", "))?;
    }
    writeln!(out)?;
    Ok(())
}
