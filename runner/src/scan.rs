//! The scan: every startup hook the interpreter would run, read, attributed and decided.
//!
//! Walks the site directories in the order `site.main()` hands them to `addsitedir`, reads
//! every `.pth` file the target version reads, in its order, classifies each line with that
//! version's grammar, predicts `sys.path` as `site` builds it (joining, existence check,
//! de-duplication), finds `sitecustomize` and `usercustomize` where the import system would,
//! attributes files to installed distributions through their `RECORD`, and decides each hook.
//!
//! Trust: it trusts nothing it reads. Directories are opened in exactly one place from an
//! ambient path ([`open_dir`]); every file below is read through that `cap_std::fs::Dir`, so
//! a symbolic link cannot silently lead the scanner out of the directory it was given: a link
//! out is resolved and entered again through [`open_dir`], as CPython would follow it. Files
//! larger than [`MAX_HOOK_FILE_BYTES`] are not read.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::Result;
use base64::Engine;
use cap_std::fs::Dir;
use sha2::{Digest, Sha256};
use sitegate_policy::baseline::{match_baseline, Requirement};
use sitegate_policy::grammar::DecodeError;
use sitegate_policy::hook::looks_obfuscated;
use sitegate_policy::model::normalise_distribution_name;
use sitegate_policy::{
    decide, Decision, Grammar, HookFacts, HookKind, LineKind, Owner, Policy, PthText, Signal,
    Verdict,
};

use crate::cache::hex;
use crate::flags::StartFlags;
use crate::interpreter::Interpreter;

/// The largest hook file sitegate reads. A larger `.pth` is denied as a whole.
pub const MAX_HOOK_FILE_BYTES: u64 = 8 << 20;

/// One startup hook and its verdict.
#[derive(Clone, Debug)]
pub struct Hook {
    /// The kind of hook.
    pub kind: HookKind,
    /// The file it lives in.
    pub path: PathBuf,
    /// The 1-based line, for `.pth` lines.
    pub line: Option<usize>,
    /// The line's text, for `.pth` lines.
    pub text: Option<String>,
    /// For path lines: the directory it names, and whether it exists.
    pub target: Option<(PathBuf, bool)>,
    /// SHA-256 of the whole file.
    pub sha256: String,
    /// The owning distribution.
    pub owner: Option<Owner>,
    /// What the scan noticed.
    pub signals: Vec<Signal>,
    /// The verdict and why.
    pub decision: Decision,
    /// What the sandbox saw, for hooks the policy sent there.
    pub evaluation: Option<Box<crate::evaluation::Evaluated>>,
}

/// What became of one `.pth` file.
#[derive(Clone, Debug)]
pub enum FileState {
    /// Read and parsed; its hooks are in [`Scan::hooks`].
    Parsed(PthText),
    /// CPython cannot open it either (a directory, a dangling link, no permission), or it
    /// leads outside its directory: skipped.
    Unreadable(String),
    /// CPython aborts its start on it.
    Undecodable(DecodeError),
    /// Larger than [`MAX_HOOK_FILE_BYTES`]: denied as a whole.
    Oversized(u64),
}

/// One `.pth` file.
#[derive(Clone, Debug)]
pub struct PthFile {
    /// The path `site` computes for it (`os.path.join(sitedir, name)`, made absolute).
    pub path: PathBuf,
    /// What became of it.
    pub state: FileState,
}

/// A `sitecustomize`/`usercustomize` module that sitegate pinned: allowed, or sent to the
/// sandbox, which evaluates these verified bytes.
#[derive(Clone, Debug)]
pub struct PinnedModule {
    /// Which one.
    pub kind: HookKind,
    /// Its file.
    pub origin: PathBuf,
    /// Its source, as verified.
    pub source: Vec<u8>,
}

/// One run of a code hook in `site`'s walk. A directory handed to `site` twice (a venv's
/// site-packages on 3.8 to 3.14) runs its code lines twice, each time on the `sys.path` of
/// that moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The hook, an index into [`Scan::hooks`].
    pub hook: usize,
    /// How much of [`Scan::predicted_path`] `site` has built when the hook runs.
    pub path_length: usize,
}

/// The result of a scan.
#[derive(Clone, Debug)]
pub struct Scan {
    /// Site directories in the order they are processed (each once).
    pub site_dirs: Vec<PathBuf>,
    /// Every `.pth` file read, in processing order.
    pub files: Vec<PthFile>,
    /// Every hook, in processing order.
    pub hooks: Vec<Hook>,
    /// The sources of the customize modules allowed or sent to the sandbox, for the
    /// evaluation and the plan (which runs only those whose hook ends up allowed).
    pub modules: Vec<PinnedModule>,
    /// `sys.path` as predicted right after `site`, leaving out what code hooks change.
    pub predicted_path: Vec<PathBuf>,
    /// Every run of a code hook (`.pth` code lines, then the customize modules), in order.
    pub walk: Vec<Step>,
}

impl Scan {
    /// Whether anything was denied or could not be used.
    pub fn has_denials(&self) -> bool {
        self.hooks
            .iter()
            .any(|h| h.decision.verdict == Verdict::Denied)
            || self
                .files
                .iter()
                .any(|f| !matches!(f.state, FileState::Parsed(_)))
    }
}

/// Opens a directory from an ambient path: the scanner's only way in.
fn open_dir(path: &Path) -> std::io::Result<Dir> {
    Dir::open_ambient_dir(path, cap_std::ambient_authority())
}

/// Opens a file below a directory handle. A symbolic link that leads out of the directory is
/// followed the way the interpreter follows it, but only by resolving it and entering its
/// target's directory through [`open_dir`], so every read still goes through a handle.
fn open_file(dir: &Dir, dir_path: &Path, name: &Path) -> std::io::Result<cap_std::fs::File> {
    match dir.open(name) {
        Ok(file) => Ok(file),
        Err(error) => {
            let is_link = std::fs::symlink_metadata(dir_path.join(name))
                .is_ok_and(|m| m.file_type().is_symlink());
            if !is_link {
                return Err(error);
            }
            let target = std::fs::canonicalize(dir_path.join(name))?;
            let (parent, file_name) = match (target.parent(), target.file_name()) {
                (Some(parent), Some(file_name)) => (parent, file_name),
                _ => return Err(error),
            };
            tracing::info!(
                "following `{}` to `{}`",
                dir_path.join(name).display(),
                target.display()
            );
            open_dir(parent)?.open(file_name)
        }
    }
}

/// Python's `os.path.abspath` on POSIX: lexical, no symbolic links resolved.
pub fn python_abspath(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let double_slash = joined.as_os_str().as_bytes().starts_with(b"//")
        && !joined.as_os_str().as_bytes().starts_with(b"///");
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in joined.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let mut out = OsString::from(if double_slash { "//" } else { "/" });
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            out.push("/");
        }
        out.push(part);
    }
    PathBuf::from(out)
}

/// Sort key equal to Python's order of `str` file names (code points, undecodable bytes as
/// surrogate escapes).
fn python_name_order(name: &[u8]) -> Vec<u32> {
    let mut key = Vec::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        key.extend(chunk.valid().chars().map(|c| c as u32));
        key.extend(chunk.invalid().iter().map(|&b| 0xdc00 + b as u32));
    }
    key
}

/// A distribution's claims on files: absolute path to owner and `RECORD` hash.
#[derive(Default)]
struct RecordIndex {
    claims: HashMap<PathBuf, (Owner, Option<String>)>,
    /// Every distribution seen: its owner, site directory and `RECORD` (relative to it).
    records: Vec<(Owner, PathBuf, PathBuf)>,
}

impl RecordIndex {
    // TODO: only `*.dist-info/RECORD` is read; distributions installed as `*.egg-info` (common
    // in Debian's dist-packages) list their files in `installed-files.txt`, so their hooks are
    // reported as `unowned-hook`.
    fn add_site_dir(&mut self, site_dir: &Path, dir: &Dir) {
        let Ok(entries) = dir.entries() else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".dist-info")) else {
                continue;
            };
            let Some((dist, version)) = stem.rsplit_once('-') else {
                continue;
            };
            let owner = Owner {
                name: dist.to_owned(),
                version: version.to_owned(),
            };
            let mut record = String::new();
            let readable = dir
                .open(Path::new(&name).join("RECORD"))
                .and_then(|f| f.take(MAX_HOOK_FILE_BYTES).read_to_string(&mut record));
            if readable.is_err() {
                continue;
            }
            let record_path = Path::new(&name).join("RECORD");
            self.records
                .push((owner.clone(), site_dir.to_owned(), record_path));
            // Only hook files matter; most rows are not, and are passed over before splitting.
            let rows = record
                .lines()
                .filter(|row| row.contains(".pth") || row.contains("customize.py"));
            for row in rows {
                let fields = split_csv_row(row);
                let Some(file) = fields.first() else { continue };
                let interesting = file.ends_with(".pth") || file.ends_with("customize.py");
                if !interesting {
                    continue;
                }
                let hash = fields
                    .get(1)
                    .and_then(|h| h.strip_prefix("sha256="))
                    .map(str::to_owned);
                let path = python_abspath(&site_dir.join(file));
                self.claims.insert(path, (owner.clone(), hash));
            }
        }
    }
}

/// Splits one CSV row (RFC 4180 quoting, as `csv.writer` writes `RECORD`).
fn split_csv_row(row: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("one field").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            _ => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// The environment of the start, as far as the scan needs it.
pub struct StartContext<'a> {
    /// The interpreter options.
    pub flags: StartFlags,
    /// `PYTHONPATH`, if set.
    pub pythonpath: Option<&'a std::ffi::OsStr>,
    /// `PYTHONNOUSERSITE`, if set and non-empty.
    pub no_user_site_variable: bool,
    /// `PYTHONUTF8`, if set and non-empty.
    pub utf8_variable: Option<String>,
}

impl StartContext<'_> {
    /// UTF-8 mode as the options and the environment set it, if they do.
    fn utf8_mode(&self) -> Option<bool> {
        self.flags.utf8_mode.or(
            match (self.flags.reads_environment(), &self.utf8_variable) {
                (true, Some(value)) => Some(value == "1"),
                _ => None,
            },
        )
    }
}

impl StartContext<'static> {
    /// The context of a start from this process's environment.
    pub fn from_environment(flags: StartFlags) -> StartContext<'static> {
        static PYTHONPATH: std::sync::OnceLock<Option<OsString>> = std::sync::OnceLock::new();
        let pythonpath =
            PYTHONPATH.get_or_init(|| std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()));
        StartContext {
            flags,
            pythonpath: pythonpath.as_deref(),
            no_user_site_variable: std::env::var_os("PYTHONNOUSERSITE")
                .is_some_and(|v| !v.is_empty()),
            utf8_variable: std::env::var("PYTHONUTF8").ok().filter(|v| !v.is_empty()),
        }
    }
}

struct Scanner<'a> {
    grammar: Grammar,
    extension_suffixes: Vec<String>,
    codec: sitegate_policy::LocaleCodec,
    policy: &'a Policy,
    records: RecordIndex,
    known: HashSet<PathBuf>,
    scan: Scan,
}

/// Scans the startup surface of one start.
pub fn scan(
    interpreter: &Interpreter,
    context: &StartContext<'_>,
    policy: &Policy,
) -> Result<Scan> {
    let facts = &interpreter.facts;
    let mut scanner = Scanner {
        grammar: Grammar::for_version(facts.python_version()),
        extension_suffixes: facts.extension_suffixes.clone(),
        codec: facts.locale_codec(context.utf8_mode())?,
        policy,
        records: RecordIndex::default(),
        known: HashSet::new(),
        scan: Scan {
            site_dirs: Vec::new(),
            files: Vec::new(),
            hooks: Vec::new(),
            modules: Vec::new(),
            predicted_path: Vec::new(),
            walk: Vec::new(),
        },
    };

    // `sys.path` before `site`: `PYTHONPATH` (unless ignored), then the interpreter's own;
    // `site.removeduppaths` makes each absolute and drops repeats.
    let mut initial: Vec<PathBuf> = Vec::new();
    if let (true, Some(pythonpath)) = (context.flags.reads_environment(), context.pythonpath) {
        initial.extend(std::env::split_paths(pythonpath).map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p
            }
        }));
    }
    initial.extend(facts.base_path.iter().cloned());
    for entry in initial {
        let absolute = python_abspath(&entry);
        if scanner.known.insert(absolute.clone()) {
            scanner.scan.predicted_path.push(absolute);
        }
    }

    let user_site_enabled = facts.user_site_allowed
        && !context.flags.no_user_site
        && !(context.flags.reads_environment() && context.no_user_site_variable)
        // SAFETY: these calls read the process's ids and have no preconditions.
        && unsafe { libc::getuid() == libc::geteuid() && libc::getgid() == libc::getegid() };
    let mut processed = HashSet::new();
    for call in &facts.site_calls {
        let dir = match call {
            Some(dir) => dir.clone(),
            None if user_site_enabled => facts.user_site.clone(),
            None => continue,
        };
        let dir = python_abspath(&dir);
        if !dir.is_dir() {
            continue;
        }
        if scanner.known.insert(dir.clone()) {
            scanner.scan.predicted_path.push(dir.clone());
        }
        // `site` reads a directory's files again when it is handed over twice (a venv's
        // site-packages on 3.8 to 3.14): path lines are then no-ops, and the plan's bytes serve
        // both readings.
        if processed.insert(dir.clone()) {
            scanner.scan.site_dirs.push(dir.clone());
            scanner.site_dir(&dir);
        } else {
            scanner.runs_again(&dir);
        }
    }

    let module_path = scanner.scan.predicted_path.clone();
    scanner.find_module(
        HookKind::Sitecustomize,
        &module_path,
        &facts.extension_suffixes,
    );
    if user_site_enabled {
        scanner.find_module(
            HookKind::Usercustomize,
            &module_path,
            &facts.extension_suffixes,
        );
    }
    let path_length = scanner.scan.predicted_path.len();
    for (index, hook) in scanner.scan.hooks.iter().enumerate() {
        if hook.line.is_none() {
            scanner.scan.walk.push(Step {
                hook: index,
                path_length,
            });
        }
    }
    Ok(scanner.scan)
}

impl Scanner<'_> {
    /// A directory's second reading: its path lines change nothing (their entries are known),
    /// its code lines run again.
    fn runs_again(&mut self, site_dir: &Path) {
        let path_length = self.scan.predicted_path.len();
        for (index, hook) in self.scan.hooks.iter().enumerate() {
            if hook.kind == HookKind::PthCode && hook.path.parent() == Some(site_dir) {
                self.scan.walk.push(Step {
                    hook: index,
                    path_length,
                });
            }
        }
    }

    fn site_dir(&mut self, site_dir: &Path) {
        let dir = match open_dir(site_dir) {
            Ok(dir) => dir,
            Err(error) => {
                tracing::warn!(
                    "cannot open site directory `{}`: {error}",
                    site_dir.display()
                );
                return;
            }
        };
        self.records.add_site_dir(site_dir, &dir);
        let Ok(entries) = dir.entries() else { return };
        let mut names: Vec<Vec<u8>> = entries
            .flatten()
            .map(|e| e.file_name().into_vec())
            .filter(|name| {
                std::str::from_utf8(name)
                    .map_or(name.ends_with(b".pth"), |n| self.grammar.reads_file_name(n))
            })
            .filter(|name| !(self.grammar.skips_hidden_names && name.starts_with(b".")))
            .collect();
        names.sort_by_cached_key(|name| python_name_order(name));
        for name in names {
            let name = OsString::from_vec(name);
            let path = python_abspath(&site_dir.join(&name));
            let state = self.read_pth(&dir, site_dir, Path::new(&name));
            let bytes_hash = match &state {
                Ok((_, hash)) => hash.clone(),
                Err(_) => String::new(),
            };
            let state = match state {
                Ok((text, _)) => {
                    self.pth_lines(site_dir, &path, &name, &text, &bytes_hash);
                    FileState::Parsed(text)
                }
                Err(state) => state,
            };
            self.scan.files.push(PthFile { path, state });
        }
    }

    fn read_pth(
        &self,
        dir: &Dir,
        dir_path: &Path,
        name: &Path,
    ) -> Result<(PthText, String), FileState> {
        let unreadable = |e: std::io::Error| FileState::Unreadable(e.to_string());
        // Checked before opening: opening a FIFO would block until a writer appears.
        let regular = std::fs::metadata(dir_path.join(name)).map_err(unreadable)?;
        if !regular.is_file() && !regular.is_dir() {
            return Err(FileState::Unreadable("it is not a regular file".to_owned()));
        }
        let file = open_file(dir, dir_path, name).map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        if meta.is_dir() {
            return Err(FileState::Unreadable("it is a directory".to_owned()));
        }
        // A FIFO or device would block or never end; CPython would hang on a FIFO too.
        if !meta.is_file() {
            return Err(FileState::Unreadable("it is not a regular file".to_owned()));
        }
        if meta.len() > MAX_HOOK_FILE_BYTES {
            return Err(FileState::Oversized(meta.len()));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_HOOK_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() as u64 > MAX_HOOK_FILE_BYTES {
            return Err(FileState::Oversized(bytes.len() as u64));
        }
        let hash = hex(&Sha256::digest(&bytes));
        let text = self
            .grammar
            .parse(&bytes, self.codec)
            .map_err(FileState::Undecodable)?;
        Ok((text, hash))
    }

    fn attribution(
        &self,
        path: &Path,
        sha256: &str,
        in_site_dir: bool,
    ) -> (Option<Owner>, Vec<Signal>) {
        let mut signals = Vec::new();
        let owner = match self.records.claims.get(path) {
            Some((owner, recorded)) => {
                let ours =
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hex_to_bytes(sha256));
                if recorded.as_deref().is_some_and(|r| r != ours) {
                    signals.push(Signal::HashMismatch);
                }
                Some(owner.clone())
            }
            None => {
                if in_site_dir {
                    signals.push(Signal::UnownedHook);
                }
                None
            }
        };
        let hidden = path
            .file_name()
            .is_some_and(|n| n.as_bytes().starts_with(b"."));
        if hidden {
            signals.push(Signal::HiddenFile);
        }
        (owner, signals)
    }

    fn pth_lines(
        &mut self,
        site_dir: &Path,
        path: &Path,
        name: &std::ffi::OsStr,
        text: &PthText,
        sha256: &str,
    ) {
        let (owner, file_signals) = self.attribution(path, sha256, true);
        let file_name = name.to_string_lossy();
        for line in &text.lines {
            let (kind, target) = match line.kind {
                LineKind::Comment | LineKind::Blank => continue,
                LineKind::Code => (HookKind::PthCode, None),
                LineKind::Path => {
                    let target = python_abspath(&site_dir.join(text.path_text(line)));
                    let exists = target.exists();
                    (HookKind::PthPath, Some((target, exists)))
                }
            };
            let line_text = text.line_text(line);
            let mut signals = file_signals.clone();
            if kind == HookKind::PthCode && looks_obfuscated(line_text) {
                signals.push(Signal::ObfuscatedHook);
            }
            // TODO: only world-writable directories are flagged; a group-writable directory whose
            // group has other members is as open, and is not reported yet.
            if let Some((target, _)) = &target {
                if others_can_write(target) {
                    signals.push(Signal::WritablePath);
                }
            }
            signals.sort();
            if kind == HookKind::PthCode {
                self.scan.walk.push(Step {
                    hook: self.scan.hooks.len(),
                    path_length: self.scan.predicted_path.len(),
                });
            }
            let facts = HookFacts {
                kind,
                file_name: &file_name,
                line_text: Some(line_text),
                sha256,
                owner: owner.as_ref(),
                signals: &signals,
            };
            let decision = self.verify_baseline(&facts, decide(&facts, self.policy), site_dir);
            if let (Some((target, true)), Verdict::Allowed) = (&target, decision.verdict) {
                if self.known.insert(target.clone()) {
                    self.scan.predicted_path.push(target.clone());
                }
            }
            self.scan.hooks.push(Hook {
                kind,
                path: path.to_owned(),
                line: Some(line.number),
                text: Some(line_text.to_owned()),
                target,
                sha256: sha256.to_owned(),
                owner: owner.clone(),
                signals,
                decision,
                evaluation: None,
            });
        }
    }

    /// Finds a module as `importlib`'s path finder would: in each `sys.path` directory, a
    /// package first, then extension modules, source, and bytecode.
    fn find_module(&mut self, kind: HookKind, search: &[PathBuf], extension_suffixes: &[String]) {
        let module = kind.code();
        for entry in search {
            let Ok(dir) = open_dir(entry) else { continue };
            let package = Path::new(module).join("__init__.py");
            let mut candidates: Vec<(PathBuf, bool)> = Vec::new();
            for suffix in extension_suffixes {
                candidates.push((Path::new(module).join(format!("__init__{suffix}")), false));
            }
            candidates.push((package, true));
            candidates.push((Path::new(module).join("__init__.pyc"), false));
            for suffix in extension_suffixes {
                candidates.push((PathBuf::from(format!("{module}{suffix}")), false));
            }
            candidates.push((PathBuf::from(format!("{module}.py")), true));
            candidates.push((PathBuf::from(format!("{module}.pyc")), false));
            for (candidate, is_source) in candidates {
                // A link out of the directory is followed as the interpreter follows it.
                let is_file = match dir.metadata(&candidate) {
                    Ok(meta) => meta.is_file(),
                    Err(_) => std::fs::metadata(entry.join(&candidate)).is_ok_and(|m| m.is_file()),
                };
                if !is_file {
                    continue;
                }
                self.module_hook(kind, entry, &dir, &candidate, is_source);
                return;
            }
        }
    }

    fn module_hook(
        &mut self,
        kind: HookKind,
        entry: &Path,
        dir: &Dir,
        candidate: &Path,
        is_source: bool,
    ) {
        let path = python_abspath(&entry.join(candidate));
        let mut bytes = Vec::new();
        let read = open_file(dir, entry, candidate)
            .and_then(|f| f.take(MAX_HOOK_FILE_BYTES + 1).read_to_end(&mut bytes));
        let sha256 = hex(&Sha256::digest(&bytes));
        let in_site_dir = self.scan.site_dirs.iter().any(|d| path.starts_with(d));
        let (owner, signals) = self.attribution(&path, &sha256, in_site_dir);
        let file_name = candidate
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let problem = match read {
            Err(error) => Some((
                "unreadable-hook-file",
                format!("The module cannot be read: {error}"),
            )),
            Ok(_) if bytes.len() as u64 > MAX_HOOK_FILE_BYTES => Some((
                "oversized-hook-file",
                format!("The module is larger than {MAX_HOOK_FILE_BYTES} bytes"),
            )),
            Ok(_) if !is_source => Some((
                "unverifiable-module",
                "The module is not Python source, so sitegate cannot pin what it runs".to_owned(),
            )),
            Ok(_) => None,
        };
        let decision = match problem {
            Some((reason, message)) => Decision {
                verdict: Verdict::Denied,
                reason,
                message,
                mode: None,
                env: Default::default(),
                rule: None,
            },
            None => {
                let facts = HookFacts {
                    kind,
                    file_name: &file_name,
                    line_text: None,
                    sha256: &sha256,
                    owner: owner.as_ref(),
                    signals: &signals,
                };
                self.verify_baseline(&facts, decide(&facts, self.policy), entry)
            }
        };
        // The source is pinned for a module allowed now or sent to the sandbox, which
        // evaluates exactly these bytes; the plan keeps only what ends up allowed.
        if decision.verdict == Verdict::Allowed || decision.awaits_evaluation() {
            self.scan.modules.push(PinnedModule {
                kind,
                origin: path.clone(),
                source: bytes,
            });
        }
        self.scan.hooks.push(Hook {
            kind,
            path,
            line: None,
            text: None,
            target: None,
            sha256,
            owner,
            signals,
            decision,
            evaluation: None,
        });
    }
}

/// Whether users other than the owner can put a directory at this path, or write into the
/// directory there: a world-writable directory, or (for a path that does not exist yet) a
/// world-writable nearest existing ancestor.
pub fn others_can_write(target: &Path) -> bool {
    nearest_existing(target).is_some_and(|meta| meta.is_dir() && meta.mode() & 0o002 != 0)
}

/// Whether `target`, or its nearest existing ancestor when it does not exist, belongs to a
/// user other than this one and root: that user decides what it holds.
pub fn owned_by_another_user(target: &Path) -> bool {
    // SAFETY: `geteuid` has no preconditions.
    let me = unsafe { libc::geteuid() };
    nearest_existing(target).is_some_and(|meta| meta.uid() != me && meta.uid() != 0)
}

/// The metadata of `target`, or of its nearest existing ancestor.
fn nearest_existing(target: &Path) -> Option<std::fs::Metadata> {
    target
        .ancestors()
        .find_map(|path| std::fs::metadata(path).ok())
}

impl Scanner<'_> {
    /// A baseline entry allows a well-known line only if the files that line loads are what the
    /// entry expects; otherwise the hook is denied with `unverified-baseline-hook`.
    fn verify_baseline(
        &self,
        facts: &HookFacts<'_>,
        decision: Decision,
        site_dir: &Path,
    ) -> Decision {
        if decision.reason != "baseline-hook" {
            return decision;
        }
        let Some(found) = match_baseline(facts) else {
            return decision;
        };
        match found
            .requires
            .iter()
            .find(|r| !self.requirement_holds(r, facts, site_dir))
        {
            None => decision,
            Some(failed) => Decision {
                verdict: Verdict::Denied,
                reason: "unverified-baseline-hook",
                message: format!(
                    "It looks like the baseline hook `{}`, but {failed}",
                    found.name
                ),
                mode: None,
                env: Default::default(),
                rule: None,
            },
        }
    }

    fn requirement_holds(
        &self,
        requirement: &Requirement,
        facts: &HookFacts<'_>,
        site_dir: &Path,
    ) -> bool {
        let file_hash = |file: &str| -> Option<Vec<u8>> {
            let dir = open_dir(site_dir).ok()?;
            let mut bytes = Vec::new();
            let file = open_file(&dir, site_dir, Path::new(file)).ok()?;
            file.take(MAX_HOOK_FILE_BYTES)
                .read_to_end(&mut bytes)
                .ok()?;
            Some(Sha256::digest(&bytes).to_vec())
        };
        match requirement {
            Requirement::Recorded { distribution, file } => {
                let Some(owner) = facts.owner else {
                    return false;
                };
                let owner_name = normalise_distribution_name(&owner.name);
                if facts.signals.contains(&Signal::HashMismatch)
                    || distribution.is_some_and(|d| d != owner_name)
                {
                    return false;
                }
                let Some(actual) = file_hash(file) else {
                    return false;
                };
                let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(actual);
                self.records
                    .records
                    .iter()
                    .filter(|(o, dir, _)| o == owner && dir == site_dir)
                    .any(|(_, dir, record)| {
                        let mut text = String::new();
                        let read = open_dir(dir)
                            .and_then(|d| d.open(record))
                            .and_then(|f| f.take(MAX_HOOK_FILE_BYTES).read_to_string(&mut text));
                        read.is_ok()
                            && text.lines().map(split_csv_row).any(|row| {
                                row.first().is_some_and(|f| f == file)
                                    && row.get(1).and_then(|h| h.strip_prefix("sha256="))
                                        == Some(expected.as_str())
                            })
                    })
            }
            Requirement::Pinned { file, sha256 } => {
                file_hash(file).is_some_and(|actual| sha256.contains(&hex(&actual).as_str()))
            }
            Requirement::Namespace { package } => {
                let Ok(dir) = open_dir(site_dir) else {
                    return false;
                };
                let code_of_its_own = |name: &str| dir.metadata(name).is_ok();
                let mut names = vec![
                    format!("{package}.py"),
                    format!("{package}.pyc"),
                    format!("{package}/__init__.py"),
                    format!("{package}/__init__.pyc"),
                ];
                for suffix in &self.extension_suffixes {
                    names.push(format!("{package}{suffix}"));
                    names.push(format!("{package}/__init__{suffix}"));
                }
                !names.iter().any(|name| code_of_its_own(name))
            }
            Requirement::AbsentOrUnder { module, dir } => {
                let found = self.scan.predicted_path.iter().find(|entry| {
                    let Ok(handle) = open_dir(entry) else {
                        return false;
                    };
                    let mut names = vec![
                        format!("{module}.py"),
                        format!("{module}.pyc"),
                        format!("{module}/__init__.py"),
                    ];
                    names.extend(
                        self.extension_suffixes
                            .iter()
                            .map(|s| format!("{module}{s}")),
                    );
                    names.iter().any(|name| handle.metadata(name).is_ok())
                });
                found.is_none_or(|entry| entry == Path::new(dir))
            }
        }
    }
}

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abspath_is_lexical_like_python() {
        assert_eq!(
            python_abspath(Path::new("/a/b/../c/./d/")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(
            python_abspath(Path::new("/a/b/../../..")),
            PathBuf::from("/")
        );
        assert_eq!(python_abspath(Path::new("//a//b")), PathBuf::from("//a/b"));
        assert_eq!(python_abspath(Path::new("///a")), PathBuf::from("/a"));
    }

    #[test]
    fn names_sort_by_code_point() {
        let mut names: Vec<&[u8]> = vec![
            b"a.pth",
            b"_a.pth",
            b"A.pth",
            "\u{e9}.pth".as_bytes(),
            b"\xff.pth",
        ];
        names.sort_by_key(|n| python_name_order(n));
        assert_eq!(
            names,
            vec![
                &b"A.pth"[..],
                b"_a.pth",
                b"a.pth",
                "\u{e9}.pth".as_bytes(),
                b"\xff.pth"
            ]
        );
    }

    #[test]
    fn record_rows() {
        assert_eq!(
            split_csv_row("a.pth,sha256=x,12"),
            vec!["a.pth", "sha256=x", "12"]
        );
        assert_eq!(split_csv_row("\"a,b.pth\",,"), vec!["a,b.pth", "", ""]);
    }
}
