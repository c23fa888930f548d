//! Hooks the policy sends to the sandbox: building each one's request, the evaluation cache,
//! and turning the guest's reply into findings and a verdict.
//!
//! It owns the evaluation cache. An entry is found by the hash of everything known before the
//! evaluation (guest, target version, the request, the grants and their values, the limits) and
//! holds the hash of every file the evaluation read (the hook's file and each module it
//! imported from the site directory); it is used only when every one of those files still
//! hashes the same, so a changed byte forces a fresh evaluation, and a start whose hooks are
//! unchanged does not load wasmtime at all.
//!
//! What it trusts: the reply as evidence of what the hook tried, never as proof of harmlessness:
//! a failed import, an exception or an attempt outside the grants denies the hook.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use sitegate_policy::{judge, Decision, EnvGrant, EvaluationOutcome, Findings, HookKind, Verdict};

use crate::cache::{cache_dir, sha256_hex, write_atomically};
use crate::interpreter::Interpreter;
use crate::sandbox::{
    self, EnvironmentVariable, Grants, GuestHookKind, InterpreterFacts, Limits, Outcome, Reply,
    Request, Sandbox,
};
use crate::scan::{Hook, PinnedModule, Scan};

/// One hook's evaluation, as reports show it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evaluated {
    /// The guest's reply (or the host's, when the guest could not answer).
    pub reply: Reply,
    /// The `sys.path` the guest started from.
    pub path_before: Vec<String>,
    /// How many entries at the front of `path_before` a hook may not change: up to the last
    /// of the interpreter's own (the standard library), which an entry put before them could
    /// shadow.
    #[serde(skip)]
    pub protected: usize,
    /// Every run of the hook in `site`'s walk as `sys.path` before and after it, for a hook
    /// allowed for its effects: the launch replays the run whose `before` it meets.
    #[serde(skip)]
    pub runs: Vec<(Vec<String>, Vec<String>)>,
    /// Whether it came from the cache.
    #[serde(skip)]
    pub cached: bool,
}

#[derive(Serialize, Deserialize)]
struct CacheEntry {
    /// Every file the evaluation read, with its SHA-256.
    read: Vec<(PathBuf, String)>,
    reply: Reply,
}

/// The site directory of a hook: the directory its file is in.
fn site_dir_of(hook: &Hook) -> Option<&Path> {
    hook.path.parent()
}

/// The request for one run of a hook, or `None` for hooks that run no code. `sys_path` is
/// `sys.path` as `site` has built it when the hook runs (see [`evaluate_walk`]).
pub fn request_for(
    hook: &Hook,
    interpreter: &Interpreter,
    modules: &[PinnedModule],
    sys_path: Vec<String>,
    limits: Limits,
) -> Option<Request> {
    let site_dir = site_dir_of(hook)?;
    let (kind, source) = match hook.kind {
        HookKind::PthCode => (GuestHookKind::PthLine, hook.text.clone()?),
        HookKind::Sitecustomize | HookKind::Usercustomize => {
            let module = modules.iter().find(|m| m.kind == hook.kind)?;
            let kind = if hook.kind == HookKind::Sitecustomize {
                GuestHookKind::Sitecustomize
            } else {
                GuestHookKind::Usercustomize
            };
            (kind, String::from_utf8_lossy(&module.source).into_owned())
        }
        HookKind::PthPath => return None,
    };
    let facts = &interpreter.facts;
    Some(Request {
        kind,
        site_dir: site_dir.to_string_lossy().into_owned(),
        file_name: hook.path.file_name()?.to_string_lossy().into_owned(),
        line: hook.line.unwrap_or(0) as u32,
        source,
        interpreter: InterpreterFacts {
            version: format!(
                "{}.{}.{}",
                facts.version[0], facts.version[1], facts.version[2]
            ),
            sys_path,
            prefix: facts.prefix.to_string_lossy().into_owned(),
            exec_prefix: facts.exec_prefix.to_string_lossy().into_owned(),
        },
        granted_environment: Vec::new(),
        environment: Vec::new(),
        output_cap: limits.output_bytes as u32,
    })
}

/// Puts the grants into a request.
fn with_grants(mut request: Request, grants: &Grants) -> Request {
    request.granted_environment = grants.environment_patterns.clone();
    request.environment = grants
        .environment
        .iter()
        .map(|(name, value)| EnvironmentVariable {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    request
}

/// Reduces a reply to what a verdict needs. Whether a looked-up variable was granted is decided
/// here from the grant, not taken from the guest, whose recorder the hook could have changed.
pub fn findings_of(evaluated: &Evaluated, site_dir: &Path, granted: &EnvGrant) -> Findings {
    let reply = &evaluated.reply;
    let outcome = match &reply.outcome {
        Outcome::Completed => EvaluationOutcome::Completed,
        Outcome::Raised(raised) => EvaluationOutcome::Raised(raised.type_name.clone()),
        Outcome::MissingModule(module) => EvaluationOutcome::MissingModule(module.clone()),
        Outcome::NeedsNative(module) => EvaluationOutcome::NeedsNative(module.clone()),
        Outcome::TimedOut => EvaluationOutcome::TimedOut,
        Outcome::OutOfMemory => EvaluationOutcome::OutOfMemory,
        Outcome::OutputLimit => EvaluationOutcome::OutputLimit,
        Outcome::GuestError(error) => EvaluationOutcome::GuestError(error.clone()),
    };
    let trace = &reply.trace;
    let mut attempts = Vec::new();
    for lookup in trace
        .environment_lookups
        .iter()
        .filter(|l| !granted.covers(&l.name))
    {
        attempts.push(format!("read environment variable `{}`", lookup.name));
    }
    for address in &trace.connections {
        attempts.push(format!("connect to `{address}`"));
    }
    for name in &trace.name_lookups {
        attempts.push(format!("look up the name `{name}`"));
    }
    for file in &trace.files_opened {
        let writes = file.mode != "r" && file.mode != "rb" && file.mode != "rt";
        if writes {
            attempts.push(format!("write `{}` (`{}`)", file.path, file.mode));
        } else if !inside(Path::new(&file.path), site_dir) {
            attempts.push(format!("read `{}` outside its site directory", file.path));
        }
    }
    for process in &trace.processes {
        attempts.push(format!("start a process ({process})"));
    }
    for load in &trace.native_loads {
        attempts.push(format!("load native code ({load})"));
    }
    attempts.extend(path_attempts(evaluated));
    for variable in &reply.effects.environment_set {
        attempts.push(format!("set environment variable `{}`", variable.name));
    }
    for name in &reply.effects.environment_removed {
        attempts.push(format!("remove environment variable `{name}`"));
    }

    let effects = &reply.effects;
    let mut installed = Vec::new();
    for object in &effects.meta_path_added {
        installed.push(format!(
            "`{}.{}` on `sys.meta_path`",
            object.module, object.type_name
        ));
    }
    for object in &effects.path_hooks_added {
        installed.push(format!(
            "`{}.{}` on `sys.path_hooks`",
            object.module, object.type_name
        ));
    }
    for module in &effects.modules_loaded {
        installed.push(format!("loaded module `{module}`"));
    }
    for state in &effects.state_changed {
        installed.push(format!("changed {state}"));
    }
    let wrote_output = !reply.trace.stdout.is_empty() || !reply.trace.stderr.is_empty();
    Findings {
        outcome,
        attempts,
        installed,
        changed_path: changed_path(evaluated),
        wrote_output,
    }
}

/// The most `sys.path` entries, bytes in one entry, and bytes in all entries a hook allowed for
/// its effects may leave: the plan carries them for every run, on every start.
const MAX_PATH_ENTRIES: usize = 1024;
const MAX_ENTRY_BYTES: usize = 4096;
const MAX_PATH_BYTES: usize = 256 << 10;

/// The length of the prefix of `sys.path` that ends with the interpreter's last own entry.
fn standard_prefix(path: &[String], interpreter: &Interpreter) -> usize {
    let own: Vec<String> = interpreter
        .facts
        .base_path
        .iter()
        .map(|entry| {
            crate::scan::python_abspath(entry)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    path.iter()
        .rposition(|entry| own.contains(entry))
        .map_or(0, |last| last + 1)
}

/// What a hook's `sys.path` changes would let it do that a path line could not. Only appends
/// are carried over: an entry put before entries already there, or the removal or move of
/// one, decides which directory a module comes from, so a directory of the hook's own would
/// shadow modules the program, the standard library or a native hook imports later. Appended
/// entries must be absolute, outside `/proc` and `/dev` (`/proc/self/cwd` is the working
/// directory), and not open to other users. The diff is the host's, from the `sys.path` it
/// sent and the one the guest returned: the guest's own list of additions can be fooled.
fn path_attempts(evaluated: &Evaluated) -> Vec<String> {
    let effects = &evaluated.reply.effects;
    if !changed_path(evaluated) {
        return Vec::new();
    }
    let (before, after) = (&evaluated.path_before, &effects.path_after);
    let total: usize = after.iter().map(String::len).sum();
    if after.len() > MAX_PATH_ENTRIES
        || after.iter().any(|entry| entry.len() > MAX_ENTRY_BYTES)
        || total > MAX_PATH_BYTES
    {
        return vec![format!(
            "grow `sys.path` past {MAX_PATH_ENTRIES} entries, {MAX_ENTRY_BYTES} bytes in an \
             entry or {} KiB in all",
            MAX_PATH_BYTES >> 10
        )];
    }
    if !after.starts_with(before) {
        let kept = evaluated.protected.min(before.len());
        let where_ = if after.len() < kept || after[..kept] != before[..kept] {
            "in front of or among the standard library's entries"
        } else {
            "before entries already on it"
        };
        return vec![format!(
            "change `sys.path` {where_} (insert, remove or move entries), where a directory \
             decides which module others import; only appends are applied without running a \
             hook"
        )];
    }
    let mut attempts = Vec::new();
    for entry in &after[before.len()..] {
        let path = Path::new(entry);
        if !entry.starts_with('/') {
            attempts.push(format!(
                "add the relative `sys.path` entry `{entry}`, which depends on the working \
                 directory"
            ));
        } else if inside(path, Path::new("/proc")) || inside(path, Path::new("/dev")) {
            attempts.push(format!(
                "add `{entry}` to `sys.path`, which names no fixed directory"
            ));
        } else if crate::scan::others_can_write(path) || crate::scan::owned_by_another_user(path) {
            attempts.push(format!(
                "add `{entry}`, which others can write to or own, to `sys.path`"
            ));
        }
    }
    attempts
}

/// Whether `path` names something inside `dir`, with `.` and `..` resolved as written (the
/// guest reports paths it was asked to open, which may climb out with `..`).
fn inside(path: &Path, dir: &Path) -> bool {
    path.is_absolute() && crate::scan::python_abspath(path).starts_with(dir)
}

/// Whether the hook changed `sys.path`, reorderings included.
pub fn changed_path(evaluated: &Evaluated) -> bool {
    let effects = &evaluated.reply.effects;
    !effects.path_added.is_empty()
        || !effects.path_removed.is_empty()
        || (!effects.path_after.is_empty() && effects.path_after != evaluated.path_before)
}

fn evaluation_cache_dir() -> Result<PathBuf> {
    Ok(cache_dir()?.join("evaluations"))
}

fn cache_key(
    guest_sha256: &str,
    request: &Request,
    grants: &Grants,
    limits: Limits,
    hook_sha256: &str,
) -> Result<String> {
    let material = serde_json::to_vec(&(guest_sha256, request, grants, limits, hook_sha256))?;
    Ok(sha256_hex(&material))
}

/// The SHA-256 of a regular file of at most the hook-file cap; `None` for anything else (a
/// FIFO would block, a device would not end).
fn file_sha256(path: &Path) -> Option<String> {
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_file() || metadata.len() > crate::scan::MAX_HOOK_FILE_BYTES {
        return None;
    }
    std::fs::read(path).ok().map(|bytes| sha256_hex(&bytes))
}

fn cached(key: &str) -> Option<Reply> {
    let path = evaluation_cache_dir().ok()?.join(format!("{key}.json"));
    let entry: CacheEntry = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let unchanged = entry
        .read
        .iter()
        .all(|(path, sha256)| file_sha256(path).as_deref() == Some(sha256.as_str()));
    unchanged.then_some(entry.reply)
}

fn store(key: &str, hook: &Hook, reply: &Reply, site_dir: &Path) -> Result<()> {
    let mut read = vec![(hook.path.clone(), hook.sha256.clone())];
    for file in &reply.trace.files_opened {
        // The guest's report names the files; only regular files really inside the site
        // directory (links resolved) are read to key the entry.
        let path = PathBuf::from(&file.path);
        let real = std::fs::canonicalize(&path).ok();
        let real_dir = std::fs::canonicalize(site_dir).ok();
        let within = matches!((&real, &real_dir), (Some(r), Some(d)) if r.starts_with(d));
        if within && inside(&path, site_dir) && !read.iter().any(|(p, _)| *p == path) {
            let sha256 = file_sha256(&path).unwrap_or_default();
            read.push((path, sha256));
        }
    }
    let entry = CacheEntry {
        read,
        reply: reply.clone(),
    };
    let path = evaluation_cache_dir()?.join(format!("{key}.json"));
    write_atomically(&path, &serde_json::to_vec(&entry)?)
}

/// Loads the sandbox at most once, and only when an evaluation is not in the cache.
pub struct LazySandbox<'a> {
    loaded: Option<Sandbox>,
    progress: &'a dyn sandbox::Progress,
}

impl<'a> LazySandbox<'a> {
    /// A sandbox that is loaded on first need.
    pub fn new(progress: &'a dyn sandbox::Progress) -> LazySandbox<'a> {
        LazySandbox {
            loaded: None,
            progress,
        }
    }

    fn get(&mut self) -> Result<&Sandbox> {
        if self.loaded.is_none() {
            self.loaded = Some(Sandbox::load(self.progress)?);
        }
        Ok(self.loaded.as_ref().expect("loaded above"))
    }
}

/// Evaluates one hook (from the cache when its inputs are unchanged).
pub fn evaluate_hook(
    hook: &Hook,
    request: Request,
    sandbox: &mut LazySandbox<'_>,
    limits: Limits,
) -> Result<Evaluated> {
    let site_dir = site_dir_of(hook).unwrap_or(Path::new("/")).to_owned();
    let grants = Grants::for_hook(&site_dir, &hook.decision.env, std::env::vars());
    let request = with_grants(request, &grants);
    // The guest makes the hook's directory importable as `site` would have.
    let mut path_before = request.interpreter.sys_path.clone();
    if !path_before.contains(&request.site_dir) {
        path_before.push(request.site_dir.clone());
    }
    let guest_sha256 = match sandbox::recorded_guest_sha256() {
        Some(sha256) => sha256,
        None => sandbox.get()?.guest_sha256().to_owned(),
    };
    let key = cache_key(&guest_sha256, &request, &grants, limits, &hook.sha256)?;
    if let Some(reply) = cached(&key) {
        return Ok(Evaluated {
            reply,
            path_before,
            protected: 0,
            runs: Vec::new(),
            cached: true,
        });
    }
    let reply = sandbox.get()?.evaluate(request, &grants, limits)?;
    if let Err(error) = store(&key, hook, &reply, &site_dir) {
        tracing::info!("cannot cache an evaluation: {error:#}");
    }
    Ok(Evaluated {
        reply,
        path_before,
        protected: 0,
        runs: Vec::new(),
        cached: false,
    })
}

/// Evaluates every hook of a scan that waits for the sandbox, and replaces its provisional
/// decision with the verdict. A hook that cannot be evaluated stays denied.
pub fn evaluate_scan(
    scan: &mut Scan,
    interpreter: &Interpreter,
    limits: Limits,
    progress: &dyn sandbox::Progress,
) {
    let mut sandbox = LazySandbox::new(progress);
    let result = evaluate_walk(scan, interpreter, limits, &mut sandbox, &|_| false);
    debug_assert!(result.is_ok(), "only selected hooks fail the walk");
}

/// Follows `site`'s walk over the scan's code hooks and evaluates, on the `sys.path` of each
/// run, every hook that waits for the sandbox and every hook `selected` picks. A hook allowed
/// for its effects changes the `sys.path` the next runs see, as it will in the launch; hooks
/// that run natively are assumed to leave it alone (the launch checks that, see `plan`).
///
/// A hook that waits for the sandbox gets the verdict of its runs (any denied run denies it);
/// one that cannot be evaluated stays denied, with the reason in its message. Only a failure
/// to evaluate a selected hook is an error.
pub fn evaluate_walk(
    scan: &mut Scan,
    interpreter: &Interpreter,
    limits: Limits,
    sandbox: &mut LazySandbox<'_>,
    selected: &dyn Fn(&Hook) -> bool,
) -> Result<()> {
    // The hooks change; what the walk reads of the scan does not, so it is borrowed, not
    // copied (this runs before every guarded start).
    let Scan {
        hooks,
        walk,
        predicted_path,
        modules,
        ..
    } = scan;
    let awaits: Vec<bool> = hooks
        .iter()
        .map(|h| h.decision.awaits_evaluation())
        .collect();
    if !awaits.contains(&true) && !hooks.iter().any(selected) {
        return Ok(());
    }
    let text = |path: &PathBuf| path.to_string_lossy().into_owned();
    // Evaluations not in the cache take time; past the start's budget, the hooks left wait
    // (denied) for a later start, which finds the ones done so far in the cache.
    let mut spent = std::time::Duration::ZERO;
    let mut sys_path: Vec<String> = Vec::new();
    let mut built = 0;
    for step in walk.iter() {
        sys_path.extend(predicted_path[built..step.path_length].iter().map(text));
        built = step.path_length;
        let hook = &mut hooks[step.hook];
        if !(awaits[step.hook] || selected(hook)) {
            continue;
        }
        // A hook denied on an earlier run is denied: its later runs change nothing.
        if hook.evaluation.is_some() && hook.decision.verdict == Verdict::Denied {
            continue;
        }
        if spent >= limits.start && !selected(hook) {
            // Not evaluated, so not allowed, even when an earlier run of it was.
            hook.decision = Decision {
                verdict: Verdict::Denied,
                reason: "unevaluated-hook",
                message: "This start spent its evaluation time (the `[sandbox]` limit \
                          `start-ms`) before this hook; a later start evaluates it"
                    .to_owned(),
                ..hook.decision.clone()
            };
            continue;
        }
        let started = std::time::Instant::now();
        let Some(request) = request_for(hook, interpreter, modules, sys_path.clone(), limits)
        else {
            continue;
        };
        let mut evaluated = match evaluate_hook(hook, request, sandbox, limits) {
            Ok(evaluated) => evaluated,
            Err(error) if !selected(hook) => {
                hook.decision.message =
                    format!("{}: {error:#}", hook.decision.message.trim_end_matches('.'));
                tracing::warn!("cannot evaluate `{}`: {error:#}", hook.path.display());
                continue;
            }
            Err(error) => return Err(error),
        };
        if !evaluated.cached {
            spent += started.elapsed();
        }
        evaluated.protected = standard_prefix(&evaluated.path_before, interpreter);
        let site_dir = site_dir_of(hook).unwrap_or(Path::new("/"));
        let findings = findings_of(&evaluated, site_dir, &hook.decision.env);
        let run = (
            evaluated.path_before.clone(),
            evaluated.reply.effects.path_after.clone(),
        );
        let first = hook.evaluation.is_none();
        let decision = if awaits[step.hook] {
            judge(&findings, &hook.decision.env, hook.decision.rule.clone())
        } else {
            hook.decision.clone()
        };
        let applies_effects =
            decision.verdict == Verdict::Allowed && decision.reason == "sandbox-effects";
        let denies_again = !first && decision.verdict == Verdict::Denied;
        if first || (denies_again && hook.decision.verdict == Verdict::Allowed) {
            let runs = hook.evaluation.take().map(|e| e.runs).unwrap_or_default();
            hook.decision = decision;
            hook.evaluation = Some(Box::new(Evaluated { runs, ..evaluated }));
        }
        if let Some(evaluation) = hook.evaluation.as_mut() {
            if !evaluation.runs.iter().any(|(before, _)| *before == run.0) {
                evaluation.runs.push(run.clone());
            }
        }
        if applies_effects {
            sys_path = run.1;
        }
        debug_assert!(
            hook.decision.verdict == Verdict::Denied || hook.evaluation.is_some(),
            "an unevaluated hook is never allowed"
        );
    }
    Ok(())
}
