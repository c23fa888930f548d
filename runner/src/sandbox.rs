//! The WebAssembly sandbox host: runs one startup hook in the guest CPython under wasmtime and
//! returns the guest's structured reply.
//!
//! It owns the engine configuration, the precompiled guest in the cache, and the capabilities
//! of each evaluation. Every evaluation gets a fresh store and instance; the store's WASI
//! context holds only what [`Grants`] lists: the granted environment variables, the hook's site
//! directory preopened read-only at its real path, no stdin, stdout and stderr captured in
//! memory up to a cap, no sockets and no name lookup. A memory cap (a `ResourceLimiter`), an
//! epoch deadline for the CPU and a wall-clock deadline bound the run. The guest is called
//! asynchronously, so that at the wall-clock deadline the call, and the store with it, is
//! dropped even while the guest waits in a host call.
//!
//! What it trusts: the guest component it was built with (checked by hash before the
//! precompiled form is loaded, from a cache only this user can write to) and wasmtime's
//! isolation. It does not trust the guest's reply to
//! be complete: the host decides `timed-out`, `out-of-memory` and `output-limit` itself.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sitegate_policy::EnvGrant;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::cache::{blake3_hex_of, cache_dir, open_private_file, sha256_hex, write_atomically};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "sitegate:sandbox/hook-sandbox",
    // Called asynchronously, so that the wall-clock deadline can drop a guest blocked in a host
    // call (see `Sandbox::evaluate`).
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize],
});

pub use exports::sitegate::sandbox::evaluation::{
    Effects, EnvironmentVariable, HookKind as GuestHookKind, InterpreterFacts, Outcome, Reply,
    Request, Trace,
};

// The defaults below are also the policy's (`sitegate_policy::SandboxLimits`); a test checks
// that they agree.

/// The default memory cap of one evaluation: 256 MiB of linear memory.
pub const DEFAULT_MEMORY_BYTES: usize = 256 << 20;
/// The default CPU bound, enforced by epoch interruption: 2 seconds of running guest code.
pub const DEFAULT_CPU: Duration = Duration::from_secs(2);
/// The default wall-clock deadline, for time the guest spends blocked in a host call.
pub const DEFAULT_WALL: Duration = Duration::from_secs(5);
/// The default time one start may spend on evaluations not in the cache.
pub const DEFAULT_START: Duration = Duration::from_secs(30);
/// The default cap on captured stdout and on captured stderr: 64 KiB each.
pub const DEFAULT_OUTPUT_BYTES: usize = 64 << 10;

/// How often the epoch advances; the CPU bound is counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The bounds of one evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    /// Linear memory the guest may grow to.
    pub memory_bytes: usize,
    /// Time the guest may run (epoch interruption).
    pub cpu: Duration,
    /// Time the evaluation may take in all.
    pub wall: Duration,
    /// Bytes kept of stdout and of stderr each.
    pub output_bytes: usize,
    /// Time one start may spend on evaluations not in the cache. Not part of an evaluation's
    /// identity, so not of the cache key.
    #[serde(skip)]
    pub start: Duration,
}

impl Limits {
    /// The limits a policy's `[sandbox]` table sets.
    pub fn from_policy(limits: &sitegate_policy::SandboxLimits) -> Limits {
        Limits {
            memory_bytes: (limits.memory_mib as usize) << 20,
            cpu: Duration::from_millis(limits.cpu_ms.into()),
            wall: Duration::from_millis(limits.wall_ms.into()),
            output_bytes: (limits.output_kib as usize) << 10,
            start: Duration::from_millis(limits.start_ms.into()),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            cpu: DEFAULT_CPU,
            wall: DEFAULT_WALL,
            output_bytes: DEFAULT_OUTPUT_BYTES,
            start: DEFAULT_START,
        }
    }
}

/// What one evaluation may use. [`Grants::none`] grants nothing: no environment variable and no
/// directory. [`Grants::for_hook`] is the one place a policy entry becomes grants.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Grants {
    /// The grant patterns, as the policy wrote them (`NAME`, `PREFIX_*`).
    pub environment_patterns: Vec<String>,
    /// The granted variables that are set, with their values.
    pub environment: Vec<(String, String)>,
    /// The directory preopened read-only at its own path.
    pub read_only_dir: Option<PathBuf>,
}

impl Grants {
    /// Nothing at all.
    pub fn none() -> Grants {
        Grants::default()
    }

    /// Preopens a directory read-only at its own path.
    pub fn read_only_dir(mut self, dir: &Path) -> Grants {
        self.read_only_dir = Some(dir.to_owned());
        self
    }

    /// Grants the environment variables an [`EnvGrant`] covers, with their values taken from
    /// `environment` (sitegate's own environment); variables it does not cover are dropped.
    pub fn environment(
        mut self,
        grant: &EnvGrant,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Grants {
        let mut values: Vec<(String, String)> = environment
            .into_iter()
            .filter(|(name, _)| grant.covers(name))
            .collect();
        values.sort();
        self.environment_patterns = grant.patterns();
        self.environment = values;
        self
    }

    /// The grants of one hook: the one place a policy entry becomes grants. Its site
    /// directory, read-only, and the environment variables its entry grants.
    pub fn for_hook(
        site_dir: &Path,
        grant: &EnvGrant,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Grants {
        Grants::none()
            .read_only_dir(site_dir)
            .environment(grant, environment)
    }
}

/// The state of one store.
struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
}

impl Drop for GuestState {
    fn drop(&mut self) {
        // The store owns this state: the line shows that an evaluation's store, with its
        // instance and WASI context, is gone, also when the guest was cut off by the deadline.
        tracing::info!("dropped the store of an evaluation");
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The memory cap, remembering whether it refused a growth (so that a trap after it reads as
/// `out-of-memory`, not as a crash).
struct MemoryCap {
    limit: usize,
    refused: bool,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// The engine configuration. Part of the precompiled guest's cache key: a component compiled
/// under another configuration is never loaded.
fn engine_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    config
}

/// Where the guest component is: `SITEGATE_SANDBOX_GUEST`, else `target/sandbox/guest.wasm`
/// beside the directory that holds the `sitegate` binary (where the set-up command builds it).
pub fn guest_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("SITEGATE_SANDBOX_GUEST").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("cannot find the `sitegate` binary")?;
    let profile_dir = exe.parent().context("the binary has a directory")?;
    let target = profile_dir.parent().unwrap_or(profile_dir);
    Ok(target.join("sandbox").join("guest.wasm"))
}

/// The guest component's identity, as recorded by [`prepare`]: its SHA-256, where the
/// precompiled form is, and the precompiled form's BLAKE3, which loading checks. BLAKE3 because
/// the 38 MB file is hashed on every load: it hashes it several times faster than SHA-256 here.
/// A record written before this field existed does not parse, and is written again.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PreparedGuest {
    guest: PathBuf,
    guest_size: u64,
    guest_modified_ns: u128,
    guest_sha256: String,
    compiled: PathBuf,
    compiled_blake3: String,
}

fn modified_ns(metadata: &fs::Metadata) -> u128 {
    metadata
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// The cache key of the precompiled guest: the guest's hash, wasmtime's version and the
/// engine's compatibility hash (target, features, tunables).
fn compiled_key(engine: &Engine, guest_sha256: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let material = format!(
        "{guest_sha256}\nsitegate {}\n{:016x}",
        env!("CARGO_PKG_VERSION"),
        hasher.finish()
    );
    sha256_hex(material.as_bytes())
}

fn sandbox_cache_dir() -> Result<PathBuf> {
    Ok(cache_dir()?.join("sandbox"))
}

fn prepared_record_path(guest: &Path) -> Result<PathBuf> {
    let name = sha256_hex(guest.as_os_str().as_encoded_bytes());
    Ok(sandbox_cache_dir()?.join(format!("guest-{}.json", &name[..16])))
}

/// Reports progress while the guest is prepared.
pub trait Progress {
    /// A new step starts.
    fn step(&self, message: &str);
}

/// Precompiles the guest into the cache unless a matching precompiled form is already there.
/// Returns the guest's SHA-256.
pub fn prepare(progress: &dyn Progress) -> Result<String> {
    let engine = Engine::new(&engine_config())?;
    prepare_with(&engine, progress).map(|prepared| prepared.guest_sha256)
}

fn prepare_with(engine: &Engine, progress: &dyn Progress) -> Result<PreparedGuest> {
    let guest = guest_path()?;
    progress.step("Hashing the guest");
    let bytes = fs::read(&guest).with_context(|| {
        format!(
            "cannot read the sandbox guest `{}`; build it with `runner/sandbox/build-guest.sh`",
            guest.display()
        )
    })?;
    let metadata = fs::metadata(&guest)?;
    let guest_sha256 = sha256_hex(&bytes);
    let compiled =
        sandbox_cache_dir()?.join(format!("{}.cwasm", compiled_key(engine, &guest_sha256)));

    if let Ok(existing) = open_private_file(&compiled) {
        let record = PreparedGuest {
            guest: guest.clone(),
            guest_size: metadata.len(),
            guest_modified_ns: modified_ns(&metadata),
            guest_sha256,
            compiled: compiled.clone(),
            compiled_blake3: blake3_hex_of(&existing)?,
        };
        write_atomically(
            &prepared_record_path(&guest)?,
            &serde_json::to_vec(&record)?,
        )?;
        return Ok(record);
    }

    progress.step("Compiling the guest (once)");
    let serialized = engine
        .precompile_component(&bytes)
        .map_err(|e| anyhow::Error::from(e).context("cannot compile the sandbox guest"))?;
    progress.step("Storing the compiled guest");
    write_atomically(&compiled, &serialized)?;
    let record = PreparedGuest {
        guest: guest.clone(),
        guest_size: metadata.len(),
        guest_modified_ns: modified_ns(&metadata),
        guest_sha256,
        compiled,
        compiled_blake3: blake3_hex_of(serialized.as_slice())?,
    };
    write_atomically(
        &prepared_record_path(&guest)?,
        &serde_json::to_vec(&record)?,
    )?;
    Ok(record)
}

/// The guest's SHA-256 without reading the guest, when [`prepare`] recorded it and the file's
/// size and modification time are unchanged; `None` otherwise.
pub fn recorded_guest_sha256() -> Option<String> {
    recorded_guest().map(|record| record.guest_sha256)
}

/// What [`prepare`] recorded, when the guest's size and modification time still match it.
fn recorded_guest() -> Option<PreparedGuest> {
    let guest = guest_path().ok()?;
    let metadata = fs::metadata(&guest).ok()?;
    let record: PreparedGuest =
        serde_json::from_slice(&fs::read(prepared_record_path(&guest).ok()?).ok()?).ok()?;
    (record.guest_size == metadata.len() && record.guest_modified_ns == modified_ns(&metadata))
        .then_some(record)
}

/// The time each step of loading the guest took, for the log.
struct Phases {
    last: Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl Default for Phases {
    fn default() -> Phases {
        Phases {
            last: Instant::now(),
            steps: Vec::new(),
        }
    }
}

impl Phases {
    /// Ends the step called `name`; the next one starts now.
    fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.steps.push((name, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, (name, took)) in self.steps.iter().enumerate() {
            let separator = if index == 0 { "" } else { ", " };
            write!(
                formatter,
                "{separator}{name} {:.1} ms",
                took.as_secs_f64() * 1000.0
            )?;
        }
        Ok(())
    }
}

/// A loaded guest, ready to evaluate hooks.
pub struct Sandbox {
    engine: Engine,
    guest: HookSandboxPre<GuestState>,
    guest_sha256: String,
    ticking: Arc<AtomicBool>,
    /// Drives the asynchronous call to the guest and the wall-clock deadline. `None` only
    /// while it is shut down in `drop`.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Sandbox {
    /// Loads the precompiled guest, preparing it first when needed.
    pub fn load(progress: &dyn Progress) -> Result<Sandbox> {
        let started = Instant::now();
        let mut phases = Phases::default();
        let engine = Engine::new(&engine_config())?;
        phases.mark("engine");

        // The recorded guest hash saves reading the guest on every load; the precompiled file
        // is hashed below either way.
        let prepared = match recorded_guest() {
            Some(record) if record.compiled.is_file() => record,
            _ => prepare_with(&engine, progress)?,
        };
        phases.mark("record or prepare");

        // The file is opened once: its bytes are hashed through this descriptor, and wasmtime
        // maps the same file through `/proc/self/fd`, so a file renamed over the path in between
        // (a concurrent `prepare`) is not the one loaded.
        let file = open_private_file(&prepared.compiled)?;
        let verified = blake3_hex_of(&file)
            .with_context(|| format!("cannot read `{}`", prepared.compiled.display()))?
            == prepared.compiled_blake3;
        phases.mark("hash");
        if !verified {
            bail!(
                "the precompiled guest `{}` changed since sitegate wrote it",
                prepared.compiled.display()
            );
        }

        // SAFETY: `Component::deserialize_file` trusts the file to be machine code that wasmtime
        // produced for this engine, and to stay unchanged while the component lives (it maps the
        // file; pages are read lazily). This file is such code: `prepare_with` wrote it with
        // `precompile_component` under the same engine configuration (its name is keyed by the
        // guest's hash, wasmtime's version and the engine's compatibility hash), and the bytes
        // behind the open descriptor hashed above to the value recorded with it, so a stale,
        // truncated or foreign file is refused before it is loaded. It stays unchanged: sitegate
        // never writes a cache file in place (it renames a new file over it, which leaves this
        // one intact), and `open_private_file` checked that the file and its directory belong
        // to this user and that no one else can write to them. A process that could still
        // change it runs as this user, and could as well change the hooks sitegate guards.
        let loaded = Path::new("/proc/self/fd").join(file.as_raw_fd().to_string());
        let component = unsafe { Component::deserialize_file(&engine, &loaded) }.map_err(|e| {
            anyhow::Error::from(e).context(format!(
                "cannot load the precompiled sandbox guest `{}`",
                prepared.compiled.display()
            ))
        })?;
        drop(file);
        phases.mark("deserialise");

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        let guest = HookSandboxPre::new(linker.instantiate_pre(&component)?)?;
        phases.mark("link");

        // One thread advances the epoch for the CPU bound of every evaluation.
        let ticking = Arc::new(AtomicBool::new(true));
        let ticker_engine = engine.clone();
        let ticker_flag = Arc::clone(&ticking);
        std::thread::spawn(move || {
            while ticker_flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                ticker_engine.increment_epoch();
            }
        });

        // A runtime on the calling thread: evaluations run one after the other, and a guest
        // blocked in a host call (a sleep) waits on its timers, so the deadline can end it.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .context("cannot start the sandbox's runtime")?;

        tracing::info!(
            "loaded the sandbox guest in {:.1} ms ({})",
            started.elapsed().as_secs_f64() * 1000.0,
            phases
        );
        Ok(Sandbox {
            engine,
            guest,
            guest_sha256: prepared.guest_sha256,
            ticking,
            runtime: Some(runtime),
        })
    }

    /// The guest's SHA-256.
    pub fn guest_sha256(&self) -> &str {
        &self.guest_sha256
    }

    /// Evaluates one hook in a fresh instance. Failures of the hook, its bounds and the guest
    /// are outcomes in the reply; an error means the host could not set the evaluation up.
    pub fn evaluate(&self, request: Request, grants: &Grants, limits: Limits) -> Result<Reply> {
        let stdout = MemoryOutputPipe::new(limits.output_bytes);
        let stderr = MemoryOutputPipe::new(limits.output_bytes);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for (name, value) in &grants.environment {
            wasi.env(name, value);
        }
        if let Some(dir) = &grants.read_only_dir {
            let guest_path = dir
                .to_str()
                .with_context(|| format!("`{}` is not UTF-8", dir.display()))?;
            wasi.preopened_dir(dir, guest_path, FsPerms::ReadOnly)
                .map_err(|e| {
                    anyhow::Error::from(e).context(format!("cannot open `{}`", dir.display()))
                })?;
        }
        let mut store = Store::new(
            &self.engine,
            GuestState {
                wasi: wasi.build(),
                table: ResourceTable::new(),
                memory: MemoryCap {
                    limit: limits.memory_bytes,
                    refused: false,
                },
            },
        );
        store.limiter(|state| &mut state.memory);

        // The CPU bound: every tick of the epoch that finds the guest running counts against
        // the budget and yields to the runtime, so that the wall-clock deadline is checked
        // while the guest computes too; once the budget is spent the guest traps.
        let budget = (limits.cpu.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        let mut spent = 0;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            spent += 1;
            if spent >= budget {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });

        // At the wall-clock deadline the future of the call is dropped, and with it the store
        // it owns, whatever the guest is doing. wasmtime 48 names this the way to end a guest
        // blocked in a host call: epochs only interrupt running guest code, and a guest waiting
        // in an async WASI function (a sleep in `wasi:io/poll`) is cancelled by a timeout on
        // the future (`Config::epoch_interruption`, "Interaction with blocking host calls").
        // Dropping an unfinished `call_async` drops wasmtime's `FiberFuture`, whose `Drop`
        // disposes of the fiber: it resumes the guest with a "future dropped" error that unwinds
        // it, and the pending host future, the sleep, is dropped with it
        // (`crates/wasmtime/src/runtime/fiber.rs`). The fiber's stack goes back to the engine
        // and the store, its instance and its WASI context are freed when `call` is dropped.
        let guest = &self.guest;
        let call = async move {
            let result = async {
                let instance = guest.instantiate_async(&mut store).await?;
                instance
                    .sitegate_sandbox_evaluation()
                    .call_evaluate(&mut store, &request)
                    .await
            }
            .await;
            (result, store.data().memory.refused)
        };
        let runtime = self.runtime.as_ref().context("the sandbox is shut down")?;
        let started = Instant::now();
        let finished = runtime.block_on(async { tokio::time::timeout(limits.wall, call).await });
        tracing::info!(
            "evaluated a hook in {:.1} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
        let captured =
            |pipe: &MemoryOutputPipe| String::from_utf8_lossy(&pipe.contents()).into_owned();
        let Ok((result, memory_refused)) = finished else {
            return Ok(host_reply(
                Outcome::TimedOut,
                captured(&stdout),
                captured(&stderr),
            ));
        };
        match result {
            Ok(reply) => Ok(reply),
            Err(error) => {
                let full = |pipe: &MemoryOutputPipe| pipe.contents().len() >= limits.output_bytes;
                let outcome = match error.downcast_ref::<wasmtime::Trap>() {
                    Some(wasmtime::Trap::Interrupt) => Outcome::TimedOut,
                    _ if memory_refused => Outcome::OutOfMemory,
                    _ if full(&stdout) || full(&stderr) => Outcome::OutputLimit,
                    _ => Outcome::GuestError(format!("{error:#}")),
                };
                Ok(host_reply(outcome, captured(&stdout), captured(&stderr)))
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
        // Without waiting for work the runtime handed to its blocking threads: it cannot be
        // cancelled and must not hold sitegate.
        // TODO: a guest that opens a named pipe in its site directory leaves one of those
        // threads blocked in `open` after its deadline, until sitegate exits or replaces itself
        // with the interpreter; many such hooks in one scan would each keep one.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A reply the host writes when the guest could not: the outcome and the captured output.
fn host_reply(outcome: Outcome, stdout: String, stderr: String) -> Reply {
    let truncated = matches!(outcome, Outcome::OutputLimit);
    Reply {
        outcome,
        effects: Effects {
            path_added: Vec::new(),
            path_removed: Vec::new(),
            meta_path_added: Vec::new(),
            path_hooks_added: Vec::new(),
            environment_set: Vec::new(),
            environment_removed: Vec::new(),
            modules_loaded: Vec::new(),
            path_after: Vec::new(),
            state_changed: Vec::new(),
        },
        trace: Trace {
            environment_lookups: Vec::new(),
            connections: Vec::new(),
            name_lookups: Vec::new(),
            files_opened: Vec::new(),
            processes: Vec::new(),
            native_loads: Vec::new(),
            imports: Vec::new(),
            dynamic_code: Vec::new(),
            stdout,
            stderr,
            output_truncated: truncated,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_defaults_are_the_host_defaults() {
        let from_policy = Limits::from_policy(&sitegate_policy::SandboxLimits::default());
        assert_eq!(from_policy, Limits::default());
    }

    #[test]
    fn grants_start_empty_and_follow_the_entry() {
        assert_eq!(Grants::none(), Grants::default());
        let grant = EnvGrant {
            names: vec!["EXACT".into()],
            prefixes: vec!["OPENAI_".into()],
        };
        let environment = [
            ("OPENAI_API_KEY", "a"),
            ("EXACT", "b"),
            ("EXACTLY", "c"),
            ("AWS_SECRET_ACCESS_KEY", "d"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
        let grants = Grants::for_hook(Path::new("/site"), &grant, environment);
        let names: Vec<&str> = grants.environment.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["EXACT", "OPENAI_API_KEY"]);
        assert_eq!(grants.read_only_dir.as_deref(), Some(Path::new("/site")));
    }
}
