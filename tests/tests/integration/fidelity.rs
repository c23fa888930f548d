//! Fidelity: a guarded start is an unguarded start minus the denied hooks. For every
//! interpreter present, in a real venv with setuptools' hook where the venv ships it, a path
//! hook and an allowed code hook, the program sees the same `sys.path`, `sys.meta_path`,
//! flags, argv, `__main__`, environment (but for the two documented variables), `site`
//! module, exit status and signals, under each interpreter option that touches `site`.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sitegate_tests::{pythons, run, OutputText, Python, Sandbox, Venv};

const PROBE: &str = r#"
import sys
modules_at_start = sorted(sys.modules)
import builtins, json, os, site, subprocess
print(json.dumps({
    "path": sys.path,
    "meta_path": [type(f).__module__ + "." + type(f).__qualname__ for f in sys.meta_path],
    "path_hooks": [repr(h).split(" at ")[0] for h in sys.path_hooks],
    "flags": list(sys.flags),
    "argv": sys.argv,
    "orig_argv": getattr(sys, "orig_argv", [None])[1:],
    "child_flags": subprocess._args_from_interpreter_flags(),
    "xoptions": sys._xoptions,
    "prefix": [sys.prefix, sys.exec_prefix, sys.base_prefix],
    "user_site": site.ENABLE_USER_SITE,
    "environ": sorted(k for k in os.environ if k not in ("LD_PRELOAD", "SITEGATE_PLAN")),
    "traces": [k for k in ("LD_PRELOAD", "SITEGATE_PLAN") if k in os.environ],
    "hook_runs": getattr(builtins, "_sitegate_probe_runs", 0),
    "site": [getattr(site, "__file__", None), getattr(site, "__cached__", None), sorted(vars(site))],
    # Up to 3.10 the guarded `site` keeps its frozen spec and loader (docs/launch.md).
    "site_loader": [type(site.__loader__).__name__, site.__spec__.origin] if sys.version_info >= (3, 11) else None,
    "modules_at_start": modules_at_start,
    "main": [__name__, getattr(sys.modules["__main__"], "__file__", None)],
    "exit": repr(getattr(builtins, "exit", None)),
}))
"#;

struct Setup {
    sandbox: Sandbox,
    venv: Venv,
    policy: std::path::PathBuf,
}

fn setup(python: &Python) -> Setup {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv(python, "venv", python.version <= (3, 11));
    let extra = sandbox.path().join("extra");
    std::fs::create_dir(&extra).unwrap();
    venv.write("extra.pth", format!("{}\n", extra.display()));
    venv.write(
        "counter.pth",
        "import builtins; builtins._sitegate_probe_runs = getattr(builtins, '_sitegate_probe_runs', 0) + 1\n",
    );
    let policy = sandbox.path().join("policy.toml");
    std::fs::write(&policy, "[[allow]]\nfile = \"counter.pth\"\n").unwrap();
    std::fs::write(sandbox.path().join("probe.py"), PROBE).unwrap();
    Setup {
        sandbox,
        venv,
        policy,
    }
}

fn both(
    setup: &Setup,
    arguments: &[&str],
    adjust: impl Fn(&mut Command),
) -> (std::process::Output, std::process::Output) {
    let mut plain = setup.sandbox.command(&setup.venv.python);
    plain.args(arguments);
    adjust(&mut plain);
    let mut guarded = setup.sandbox.sitegate();
    guarded
        .arg("--policy")
        .arg(&setup.policy)
        .args(["exec", "--"])
        .arg(&setup.venv.python)
        .args(arguments);
    adjust(&mut guarded);
    (run(&mut plain), run(&mut guarded))
}

fn probe_json(output: &std::process::Output, what: &str) -> Value {
    assert!(output.status.success(), "{what}: {}", output.stderr_text());
    serde_json::from_str(output.stdout_text().trim())
        .unwrap_or_else(|e| panic!("{what}: {e}: {}", output.stdout_text()))
}

#[test]
fn guarded_starts_match_unguarded_starts() {
    for python in pythons() {
        let setup = setup(&python);
        let mut cases: Vec<Vec<&str>> = vec![
            vec![],
            vec!["-I"],
            vec!["-E"],
            vec!["-s"],
            vec!["-S"],
            vec!["-b", "-X", "utf8"],
        ];
        if python.version >= (3, 11) {
            cases.push(vec!["-P"]);
        }
        for flags in cases {
            let mut arguments = flags.clone();
            arguments.extend(["probe.py", "one", "two"]);
            let (plain, guarded) = both(&setup, &arguments, |_| {});
            let what = format!("{} {flags:?}", python.label);
            let (mut plain_json, mut guarded_json) =
                (probe_json(&plain, &what), probe_json(&guarded, &what));
            // The documented traces (docs/launch.md) are in guarded starts only, `-S` included
            // (its children get the guard).
            let traces = |json: &mut Value| json.as_object_mut().unwrap().remove("traces").unwrap();
            assert_eq!(traces(&mut plain_json), serde_json::json!([]), "{what}");
            let expected = serde_json::json!(["LD_PRELOAD", "SITEGATE_PLAN"]);
            assert_eq!(traces(&mut guarded_json), expected, "{what}");
            assert_eq!(plain_json, guarded_json, "{what}");
            assert_eq!(plain.stderr_text(), guarded.stderr_text(), "{what}");
            if !flags.contains(&"-S") {
                let expected_runs = 2;
                assert_eq!(
                    guarded_json["hook_runs"], expected_runs,
                    "{what}: an allowed import line runs twice in a venv"
                );
            }
        }
        for arguments in [vec!["-c", PROBE, "x"], vec!["-m", "probe", "y"], vec!["-"]] {
            let what = format!("{} {:?}", python.label, &arguments[..1]);
            let stdin_mode = arguments == ["-"];
            let (plain, guarded) = both(&setup, &arguments, |command| {
                if stdin_mode {
                    command
                        .stdin(std::fs::File::open(setup.sandbox.path().join("probe.py")).unwrap());
                }
            });
            let strip = |output: &std::process::Output| {
                let mut json = probe_json(output, &what);
                json.as_object_mut().unwrap().remove("traces");
                json
            };
            assert_eq!(strip(&plain), strip(&guarded), "{what}");
        }
    }
}

#[test]
fn exit_status_signals_and_tracebacks_are_the_programs() {
    for python in pythons() {
        let setup = setup(&python);
        let (plain, guarded) = both(&setup, &["-c", "import sys; sys.exit(5)"], |_| {});
        assert_eq!(
            (plain.status.code(), guarded.status.code()),
            (Some(5), Some(5)),
            "{}",
            python.label
        );
        let kill = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)";
        let (plain, guarded) = both(&setup, &["-c", kill], |_| {});
        assert_eq!(plain.status.signal(), Some(15), "{}", python.label);
        assert_eq!(guarded.status.signal(), Some(15), "{}", python.label);
        let (plain, guarded) = both(&setup, &["-c", "def f():\n    1/0\nf()"], |_| {});
        assert_eq!(plain.status.code(), guarded.status.code());
        assert_eq!(
            plain.stderr_text(),
            guarded.stderr_text(),
            "{}: tracebacks differ",
            python.label
        );
    }
}

#[test]
fn the_repl_works_under_a_terminal() {
    for python in pythons() {
        let setup = setup(&python);
        let repl = |command_line: String| {
            let output = run(setup
                .sandbox
                .command("script")
                .args(["-qec", &command_line, "/dev/null"])
                .env("TERM", "dumb")
                .env("PYTHON_BASIC_REPL", "1")
                .stdin(std::fs::File::open(write_input(setup.sandbox.path())).unwrap()));
            output.stdout_text()
        };
        let sitegate = sitegate_tests::sitegate_binary();
        let guarded = repl(format!(
            "{} --policy {} exec -- {} -q",
            sitegate.display(),
            setup.policy.display(),
            setup.venv.python.display()
        ));
        assert!(guarded.contains("42"), "{}: {guarded}", python.label);
        assert!(
            guarded.contains("counter-runs-2"),
            "{}: {guarded}",
            python.label
        );
    }
}

fn write_input(dir: &Path) -> std::path::PathBuf {
    let input = dir.join("repl-input");
    std::fs::write(&input, "print(6 * 7)\nimport builtins; print('counter-runs-%d' % builtins._sitegate_probe_runs)\nexit()\n").unwrap();
    input
}
