//! The start-up plan: what the guarded `site` may do, written where the interpreter reads it.
//!
//! The plan holds, for every `.pth` file the scan read, the exact bytes `site` will process:
//! the verified file with every line that was not allowed turned into a bare `#` (so line
//! numbers, error messages and CPython's own decoding and splitting are unchanged), and the
//! environment variables its allowed lines may see. It holds the verified source of an allowed
//! `sitecustomize`/`usercustomize`, or, for one allowed for its sandbox effects, the line that
//! makes them. A file changed after the scan changes nothing: `site` reads the plan's bytes,
//! not the file.
//!
//! Layout: the header line `SITEGATE-PLAN 1\n`; four little-endian `u32`: the target's major
//! and minor version, the size of the compiled `site` module and the size of the build string;
//! the build string (`sys.version`, compared whole by the preloaded library); the compiled
//! module; then the plan itself in Python's `marshal` format (readable by `marshal.loads` on
//! every version without importing anything).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sitegate_policy::grammar::LineFate;
use sitegate_policy::{EnvGrant, HookKind, LineKind, Verdict};

use crate::cache::{cache_dir, sha256_hex, write_atomically};
use crate::interpreter::Interpreter;
use crate::scan::{FileState, Hook, Scan};

/// The plan file's first line.
pub const MAGIC: &[u8] = b"SITEGATE-PLAN 1\n";

/// A value of Python's `marshal` format, limited to what the plan needs.
enum Marshal {
    None,
    Bytes(Vec<u8>),
    Str(String),
    Tuple(Vec<Marshal>),
    Dict(Vec<(Marshal, Marshal)>),
}

impl Marshal {
    fn write(&self, out: &mut Vec<u8>) {
        let length = |out: &mut Vec<u8>, n: usize| out.extend_from_slice(&(n as u32).to_le_bytes());
        match self {
            Marshal::None => out.push(b'N'),
            Marshal::Bytes(bytes) => {
                out.push(b's');
                length(out, bytes.len());
                out.extend_from_slice(bytes);
            }
            Marshal::Str(text) => {
                out.push(b'u');
                length(out, text.len());
                out.extend_from_slice(text.as_bytes());
            }
            Marshal::Tuple(items) => {
                out.push(b'(');
                length(out, items.len());
                items.iter().for_each(|item| item.write(out));
            }
            Marshal::Dict(pairs) => {
                out.push(b'{');
                for (key, value) in pairs {
                    key.write(out);
                    value.write(out);
                }
                out.push(b'0');
            }
        }
    }
}

fn grant(env: &EnvGrant) -> Marshal {
    let strings =
        |items: &[String]| Marshal::Tuple(items.iter().map(|s| Marshal::Str(s.clone())).collect());
    Marshal::Tuple(vec![strings(&env.names), strings(&env.prefixes)])
}

fn path_bytes(path: &Path) -> Marshal {
    use std::os::unix::ffi::OsStrExt;
    Marshal::Bytes(path.as_os_str().as_bytes().to_vec())
}

/// A Python string literal of ASCII characters only, so that it reads the same whatever codec
/// `site` decodes the line with.
fn python_str(text: &str) -> String {
    use std::fmt::Write;
    let mut literal = String::from("'");
    for c in text.chars() {
        match c {
            '\\' => literal.push_str("\\\\"),
            '\'' => literal.push_str("\\'"),
            ' '..='~' => literal.push(c),
            c if u32::from(c) <= 0xffff => {
                let _ = write!(literal, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(literal, "\\U{:08x}", u32::from(c));
            }
        }
    }
    literal.push('\'');
    literal
}

fn python_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|item| python_str(item)).collect();
    format!("[{}]", items.join(", "))
}

/// The entries a run appended to `sys.path`, the only change a hook allowed for its effects
/// may make (see `evaluation::path_attempts`); `None` for any other change.
fn appended<'a>(before: &[String], after: &'a [String]) -> Option<&'a [String]> {
    after.strip_prefix(before)
}

/// What replaces a hook allowed for its effects: a line calling the guard's `sitegate_effects`
/// (an attribute of the guarded `site.addpackage`) with every evaluated run of the hook as the
/// `sys.path` it started from and the entries it appended. The guard appends the entries of
/// the run whose `sys.path` is the real one, else those of the first run (see `guard.py`).
/// `None`, and so the line is neutralised, when a run is not an append.
fn effects_call(hook: &Hook) -> Option<String> {
    if hook.decision.reason != "sandbox-effects" {
        return None;
    }
    let evaluated = hook.evaluation.as_ref()?;
    let runs = evaluated
        .runs
        .iter()
        .map(|(before, after)| {
            let entries = appended(before, after)?;
            Some(format!(
                "({}, {})",
                python_list(before),
                python_list(entries)
            ))
        })
        .collect::<Option<Vec<String>>>()?;
    if runs.is_empty() {
        return None;
    }
    // `site` executes only lines that start with `import`.
    Some(format!(
        "import sys; sys.modules['site'].addpackage.sitegate_effects([{}])",
        runs.join(", ")
    ))
}

/// Builds the plan's `marshal` body from a scan.
fn plan_body(scan: &Scan) -> Vec<u8> {
    let mut files = Vec::new();
    for file in &scan.files {
        let value = match &file.state {
            FileState::Parsed(text) => {
                let hooks: Vec<_> = scan
                    .hooks
                    .iter()
                    .filter(|h| h.path == file.path && h.line.is_some())
                    .collect();
                // A hook allowed for its sandbox effects never runs: its line is replaced by
                // the recorded `sys.path` changes, applied at the same point of `site`'s walk.
                let runs = |number: usize| {
                    hooks.iter().any(|h| {
                        h.line == Some(number)
                            && h.decision.verdict == Verdict::Allowed
                            && h.decision.reason != "sandbox-effects"
                    })
                };
                let bytes = text.rewritten(|line| {
                    let hook = hooks.iter().find(|h| h.line == Some(line.number));
                    match hook.and_then(|h| effects_call(h)) {
                        Some(replacement) => LineFate::Replace(replacement),
                        None if runs(line.number) => LineFate::Keep,
                        None => LineFate::Neutralise,
                    }
                });
                let mut env: Option<EnvGrant> = None;
                for hook in hooks.iter().filter(|h| {
                    h.decision.verdict == Verdict::Allowed
                        && h.kind.runs_code()
                        && h.decision.reason != "sandbox-effects"
                }) {
                    env.get_or_insert_with(EnvGrant::default)
                        .extend(&hook.decision.env);
                }
                let allowed_code = text
                    .lines
                    .iter()
                    .any(|l| l.kind == LineKind::Code && runs(l.number));
                let env = if allowed_code {
                    grant(&env.unwrap_or_default())
                } else {
                    Marshal::None
                };
                Marshal::Tuple(vec![Marshal::Bytes(bytes), env])
            }
            FileState::Oversized(_) => {
                Marshal::Tuple(vec![Marshal::Bytes(Vec::new()), Marshal::None])
            }
            FileState::Unreadable(_) | FileState::Undecodable(_) => Marshal::None,
        };
        files.push((path_bytes(&file.path), value));
    }
    let mut modules = Vec::new();
    for module in &scan.modules {
        let Some(hook) = scan
            .hooks
            .iter()
            .find(|h| h.kind == module.kind && h.path == module.origin)
        else {
            continue;
        };
        if hook.decision.verdict != Verdict::Allowed {
            continue;
        }
        // A module allowed for its sandbox effects never runs either: `site` imports the
        // replay of its `sys.path` changes in its place.
        // TODO: the names the module defines are not carried over: code that later uses them
        // (`import sitecustomize; sitecustomize.helper()`) fails with an `AttributeError`.
        let (source, env) = match effects_call(hook) {
            Some(call) => (format!("{call}\n").into_bytes(), EnvGrant::default()),
            None => (module.source.clone(), hook.decision.env.clone()),
        };
        let value = Marshal::Tuple(vec![
            path_bytes(&module.origin),
            Marshal::Bytes(source),
            grant(&env),
        ]);
        modules.push((Marshal::Str(module.kind.code().to_owned()), value));
    }
    // A customize module found and denied was reported before the start: the guard skips it
    // without a second warning (one it finds that is not in the plan at all, it reports).
    for hook in &scan.hooks {
        let code = hook.kind.code();
        let customize = matches!(hook.kind, HookKind::Sitecustomize | HookKind::Usercustomize);
        let planned = modules
            .iter()
            .any(|(key, _)| matches!(key, Marshal::Str(k) if k == code));
        if customize && hook.decision.verdict != Verdict::Allowed && !planned {
            modules.push((Marshal::Str(code.to_owned()), Marshal::None));
        }
    }
    let plan = Marshal::Dict(vec![
        (Marshal::Str("files".into()), Marshal::Dict(files)),
        (Marshal::Str("modules".into()), Marshal::Dict(modules)),
    ]);
    let mut out = Vec::new();
    plan.write(&mut out);
    out
}

// TODO: plans are never removed; every changed environment adds one file of roughly the size of
// the compiled `site` plus its hook files, so the cache grows until pruned by hand.
/// Writes the plan for a start into the cache (content-addressed, so an unchanged start
/// reuses the same file) and returns its path.
pub fn write_plan(interpreter: &Interpreter, scan: &Scan) -> Result<PathBuf> {
    let code = std::fs::read(&interpreter.site_code).context("cannot read the compiled `site`")?;
    let [major, minor, _] = interpreter.facts.version;
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&major.to_le_bytes());
    bytes.extend_from_slice(&minor.to_le_bytes());
    let build = interpreter.facts.build.as_bytes();
    bytes.extend_from_slice(&(code.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&(build.len() as u32).to_le_bytes());
    bytes.extend_from_slice(build);
    bytes.extend_from_slice(&code);
    bytes.extend_from_slice(&plan_body(scan));
    let path = cache_dir()?
        .join("plans")
        .join(format!("{}.plan", sha256_hex(&bytes)));
    if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
        write_atomically(&path, &bytes)?;
    }
    Ok(path)
}

/// The preloaded library, built with the binary.
const PRELOAD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libsitegate_preload.so"));

/// Writes the preloaded library into the cache if it is not there with the same bytes, and
/// checks that the dynamic loader will load it from there.
pub fn preload_library() -> Result<PathBuf> {
    let path = cache_dir()?
        .join("preload")
        .join(format!("{}.so", &sha256_hex(PRELOAD)[..16]));
    // `LD_PRELOAD` splits at spaces and colons: such a path would load something else, or
    // nothing, and leave the interpreter unguarded.
    if path.to_string_lossy().contains([' ', ':', '\t', '\n']) {
        bail!(
            "the cache path `{}` contains a space or colon, which `LD_PRELOAD` cannot carry; \
             set `SITEGATE_CACHE_DIR` to a path without them",
            path.display()
        );
    }
    if std::fs::read(&path).ok().as_deref() != Some(PRELOAD) {
        write_atomically(&path, PRELOAD)?;
    }
    if mounted_noexec(&path) {
        bail!(
            "the cache `{}` is on a file system mounted `noexec`, where the dynamic loader \
             cannot load sitegate's library; set `SITEGATE_CACHE_DIR` to another file system",
            path.display()
        );
    }
    Ok(path)
}

fn mounted_noexec(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return true;
    };
    let mut info = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `info` is large enough for the
    // structure `statvfs` fills; it is read only when the call succeeds.
    let status = unsafe { libc::statvfs(c_path.as_ptr(), info.as_mut_ptr()) };
    // SAFETY: `statvfs` returned 0, so it filled `info`.
    status == 0 && unsafe { info.assume_init() }.f_flag & libc::ST_NOEXEC != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn python_literals_are_ascii_and_exact() {
        assert_eq!(python_str("a'b\\c"), r"'a\'b\\c'");
        assert_eq!(python_str("é\n😀"), r"'\u00e9\u000a\U0001f600'");
        assert_eq!(python_list(&strings(&["x", "y"])), "['x', 'y']");
    }

    #[test]
    fn only_appends_have_a_replay() {
        let before = strings(&["a", "b", "c"]);
        let after = strings(&["a", "b", "c", "x", "y"]);
        assert_eq!(appended(&before, &after), Some(&after[3..]));
        assert_eq!(appended(&before, &before), Some(&before[3..]));
        // A front insertion, a removal, an insertion in the middle, a move: none is an append.
        for other in [
            strings(&["x", "a", "c", "y"]),
            strings(&["a", "c"]),
            strings(&["a", "x", "b", "c"]),
            strings(&["b", "c", "a"]),
        ] {
            assert_eq!(appended(&before, &other), None, "{other:?}");
        }
    }
}
