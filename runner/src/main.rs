//! The `sitegate` command: parses the command line, loads the policy, and runs `scan`,
//! `exec` or `trust`. Every failure before the interpreter starts is reported here, in one
//! format, with the documented exit status.

mod cache;
mod evaluation;
mod explain;
mod flags;
mod interpreter;
mod plan;
mod report;
mod sandbox;
mod scan;
mod settings;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use sitegate_policy::{OnViolation, Policy, Verdict};

use crate::flags::StartFlags;
use crate::scan::{FileState, StartContext};
use crate::settings::Trust;

const EXIT_STATUS_HELP: &str = "\
Exit status:
  scan   0 nothing denied, 1 something denied, 2 error
  exec   the program's own status; 3 when sitegate refuses or fails before the program starts
  trust  0 recorded, 2 error
  explain 0 nothing denied, 1 something denied, 2 error
  sandbox prepare 0 prepared, 2 error";

/// Launch CPython with only the startup hooks that were verified.
#[derive(Parser)]
#[command(name = "sitegate", version, after_help = EXIT_STATUS_HELP)]
struct Cli {
    /// More output on stderr (-v info, -vv debug); `SITEGATE_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// The policy file to use (trusted because it is named).
    #[arg(long, global = true, value_name = "FILE")]
    policy: Option<PathBuf>,

    /// Do not apply the built-in baseline of well-known hooks.
    #[arg(long, global = true)]
    no_baseline: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Report every startup hook of an interpreter and its verdict.
    Scan {
        /// The interpreter (a name on `PATH`, a path, or a console script).
        #[arg(long, default_value = "python3")]
        python: OsString,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Run a Python program with only the verified startup hooks.
    Exec {
        /// Refuse to start when any hook is denied (`on-violation = "fail"`).
        #[arg(long)]
        strict: bool,
        /// The program (a Python interpreter or a console script) and its arguments.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "PROGRAM"
        )]
        command: Vec<OsString>,
    },
    /// Evaluate hooks in the sandbox and report what they did.
    Explain {
        /// A hook file, optionally with a 1-based line (`PATH:LINE`).
        hook: String,
        /// The interpreter whose start the hook belongs to [default: the venv the hook file
        /// is in, else python3].
        #[arg(long)]
        python: Option<OsString>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Manage the WebAssembly sandbox.
    Sandbox {
        #[command(subcommand)]
        action: SandboxAction,
    },
    /// Trust a policy file found in a project (records its path and hash).
    Trust {
        /// The policy file; by default the one found from the working directory.
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SandboxAction {
    /// Compile the sandbox guest once into the cache.
    Prepare,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let (failure_status, result) = match &cli.command {
        Command::Scan { python, format } => (2, run_scan(&cli, python, *format)),
        Command::Exec { strict, command } => (3, run_exec(&cli, *strict, command)),
        Command::Trust { file } => (2, run_trust(file.as_deref().or(cli.policy.as_deref()))),
        Command::Explain {
            hook,
            python,
            format,
        } => (2, run_explain(&cli, hook, python, *format)),
        Command::Sandbox {
            action: SandboxAction::Prepare,
        } => (2, explain::prepare()),
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(error) => {
            let hint = error.downcast_ref::<Hinted>().map(|h| h.0.clone());
            report::error(&error, hint.as_deref());
            ExitCode::from(failure_status)
        }
    }
}

/// A hint attached to an error as context.
#[derive(Debug)]
struct Hinted(String);

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Hinted {}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "error",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SITEGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .init();
}

/// The policy in force: `--policy`, else a trusted one found from the working directory,
/// else the built-in defaults.
fn load_policy(cli: &Cli) -> Result<Policy> {
    let mut policy = match &cli.policy {
        Some(path) => {
            tracing::info!("policy `{}` (named with --policy)", path.display());
            settings::read_policy(path, settings::format_of(path))?.0
        }
        None => found_policy()?,
    };
    if cli.no_baseline {
        policy.baseline = false;
    }
    Ok(policy)
}

/// The nearest policy found from the working directory that the user trusts. Untrusted or
/// changed files are passed over with a warning (and not read as policies: an untrusted file
/// can neither allow nor break anything), so that one dropped into a subdirectory cannot
/// shadow a trusted one above it.
fn found_policy() -> Result<Policy> {
    for found in settings::find_policies(&std::env::current_dir()?) {
        let (text, sha256) = settings::read_policy_text(&found.path)?;
        let why = match settings::trust_of(&found.path, &sha256)? {
            Trust::Trusted => {
                tracing::info!("policy `{}` (trusted)", found.path.display());
                return Ok(settings::check_policy(&text, &found.path, found.format)?);
            }
            Trust::Changed => "changed since it was trusted",
            Trust::Unknown => "not trusted",
        };
        report::warning(
            "untrusted-policy",
            &format!("Ignoring policy `{}`: it is {why}", found.path.display()),
            Some(&format!(
                "review it, then run `sitegate trust {}`",
                found.path.display()
            )),
        );
    }
    Ok(Policy::builtin())
}

/// Scans one start and evaluates in the sandbox the hooks the policy sends there: the steps
/// `scan` and `exec` share.
fn scan_and_evaluate(
    interpreter: &interpreter::Interpreter,
    flags: StartFlags,
    policy: &Policy,
) -> Result<scan::Scan> {
    let mut scan = scan::scan(interpreter, &StartContext::from_environment(flags), policy)?;
    evaluation::evaluate_scan(
        &mut scan,
        interpreter,
        sandbox::Limits::from_policy(&policy.sandbox),
        &explain::ProgressBar::new(),
    );
    Ok(scan)
}

fn run_scan(cli: &Cli, python: &OsString, format: Format) -> Result<u8> {
    let policy = load_policy(cli)?;
    let target = interpreter::resolve(python)?;
    let interpreter = interpreter::inspect(&target.interpreter)?;
    let flags = StartFlags::parse(&target.shebang_arguments);
    let scan = scan_and_evaluate(&interpreter, flags, &policy)?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report::json_document(&interpreter, &scan))?
        ),
        Format::Table => report::table(&interpreter, &scan),
    }
    Ok(if scan.has_denials() { 1 } else { 0 })
}

fn run_exec(cli: &Cli, strict: bool, command: &[OsString]) -> Result<u8> {
    let (program, arguments) = command.split_first().context("no program given")?;
    let policy = load_policy(cli)?;
    let target = interpreter::resolve(program).map_err(|e| {
        e.context(Hinted(
            "`sitegate exec` runs a Python interpreter or a console script whose `#!` line \
             names one"
                .into(),
        ))
    })?;
    let interpreter = interpreter::inspect(&target.interpreter).map_err(|e| {
        e.context(Hinted(
            "`sitegate exec` runs CPython 3.8 to 3.14, or a console script whose `#!` line names it"
                .into(),
        ))
    })?;

    // The interpreter reads its options from the `#!` line first, then the command line (for
    // a console script the command line holds the script's own arguments).
    let flags = if target.program == target.interpreter {
        StartFlags::parse(arguments)
    } else {
        StartFlags::parse(&target.shebang_arguments)
    };
    // With `-S` the interpreter imports no `site`: nothing is enforced or reported for this
    // start, but the plan is still handed over for its children and for an explicit
    // `site.main()`.
    let quiet = flags.no_site;
    let scan = scan_and_evaluate(&interpreter, flags, &policy)?;
    if let Some(file) = (!quiet)
        .then_some(&scan.files)
        .into_iter()
        .flatten()
        .find(|f| matches!(f.state, FileState::Undecodable(_)))
    {
        let FileState::Undecodable(error) = &file.state else {
            unreachable!()
        };
        return Err(anyhow!(
            "`{}` cannot be decoded ({error}); CPython would abort its start on it",
            file.path.display()
        )
        .context(Hinted("remove the file or re-encode it as UTF-8".into())));
    }
    if quiet {
        let plan = plan::write_plan(&interpreter, &scan)?;
        return Err(start(&target, arguments, Some(&plan)));
    }
    report::denials(&scan, &interpreter.path);
    let denied = scan
        .hooks
        .iter()
        .any(|h| h.decision.verdict == Verdict::Denied)
        || scan
            .files
            .iter()
            .any(|f| matches!(f.state, FileState::Oversized(_)));
    if denied && (strict || policy.on_violation == OnViolation::Fail) {
        return Err(anyhow!(
            "Refusing to start: hooks were denied and `--strict` or `on-violation = \"fail\"` \
             is in force"
        )
        .context(Hinted(
            "allow the hooks above in the policy, or remove them, then start again".into(),
        )));
    }

    let plan = plan::write_plan(&interpreter, &scan)?;
    tracing::info!("plan `{}`", plan.display());
    Err(start(&target, arguments, Some(&plan)))
}

/// Replaces this process with the program; returns only the error if that fails. With a plan,
/// the interpreter gets the preloaded library and the plan in its environment.
fn start(
    target: &interpreter::Target,
    arguments: &[OsString],
    plan: Option<&std::path::Path>,
) -> anyhow::Error {
    let mut process = std::process::Command::new(&target.program);
    process.arg0(&target.argv0).args(arguments);
    if let Some(plan) = plan {
        let preload = match plan::preload_library() {
            Ok(preload) => preload,
            Err(error) => return error,
        };
        let mut preloads = preload.into_os_string();
        if let Some(existing) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
            preloads.push(":");
            preloads.push(existing);
        }
        process
            .env("LD_PRELOAD", preloads)
            .env("SITEGATE_PLAN", plan);
    }
    if let Some(dir) = &target.path_prepend {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::iter::once(dir.clone()).chain(std::env::split_paths(&path));
        match std::env::join_paths(dirs) {
            Ok(joined) => {
                process.env("PATH", joined);
            }
            Err(error) => {
                return anyhow!(error).context("cannot put the pyenv version first on `PATH`")
            }
        }
    }
    let error = process.exec();
    anyhow!(error).context(format!("cannot start `{}`", target.program.display()))
}

fn run_explain(cli: &Cli, hook: &str, python: &Option<OsString>, format: Format) -> Result<u8> {
    let policy = load_policy(cli)?;
    let python = match python {
        Some(python) => python.clone(),
        None => explain::venv_python(hook).unwrap_or_else(|| "python3".into()),
    };
    let target = interpreter::resolve(&python)?;
    let interpreter = interpreter::inspect(&target.interpreter)?;
    let flags = StartFlags::parse(&target.shebang_arguments);
    let scan = scan::scan(
        &interpreter,
        &StartContext::from_environment(flags),
        &policy,
    )?;
    let json = matches!(format, Format::Json);
    let limits = sandbox::Limits::from_policy(&policy.sandbox);
    explain::explain(&interpreter, scan, hook, limits, json)
}

fn run_trust(file: Option<&std::path::Path>) -> Result<u8> {
    let (path, format) = match file {
        Some(path) => (path.to_owned(), settings::format_of(path)),
        None => {
            let found = settings::find_policies(&std::env::current_dir()?)
                .into_iter()
                .next()
                .context(
                    "no `sitegate.toml` or `pyproject.toml` with `[tool.sitegate]` here or above",
                )?;
            (found.path, found.format)
        }
    };
    let (_, sha256) = settings::read_policy(&path, format)?;
    let recorded = settings::trust(&path, &sha256)?;
    eprintln!(
        "Trusted `{}` (sha256 {})",
        recorded.display(),
        &sha256[..16]
    );
    Ok(0)
}
