//! Environment grants: an allowed native hook sees only the variables its policy entry grants,
//! while the program itself sees its whole environment, and what the hook sets stays set.

use sitegate_tests::{pythons, run, OutputText, Sandbox};

const HOOK: &str = "import os, posix, builtins; builtins._sitegate_seen = (os.environ.get('OPENAI_API_KEY'), \
os.getenv('AWS_SECRET_ACCESS_KEY'), posix.environ.get(b'AWS_SECRET_ACCESS_KEY'), len(os.environ)); os.environ['HOOK_SET'] = 'yes'\n";

const PROGRAM: &str = "import builtins, os; print(builtins._sitegate_seen[:3], builtins._sitegate_seen[3] <= 1); \
print(os.environ.get('AWS_SECRET_ACCESS_KEY'), os.environ.get('HOOK_SET'), os.environ.get('HOME') is not None)";

#[test]
fn an_allowed_hook_sees_only_its_granted_variables() {
    for python in pythons() {
        let sandbox = Sandbox::new();
        let venv = sandbox.venv(&python, "venv", false);
        venv.write("vendor_init.pth", HOOK);
        let policy = sandbox.path().join("policy.toml");
        std::fs::write(
            &policy,
            "[[allow]]\nfile = \"vendor_init.pth\"\nenv = [\"OPENAI_*\"]\n",
        )
        .unwrap();
        let output = run(sandbox
            .guarded(Some(&policy), &venv.python)
            .args(["-c", PROGRAM])
            .env("OPENAI_API_KEY", "sk-fake-openai")
            .env("AWS_SECRET_ACCESS_KEY", "fake-aws-secret"));
        assert_eq!(
            output.stdout_text(),
            "('sk-fake-openai', None, None) True\nfake-aws-secret yes True\n",
            "{}: {}",
            python.label,
            output.stderr_text()
        );
    }
}
