//! sitegate's policy library: the `.pth` line grammar of each CPython version, the policy and
//! baseline models, and the decision function that turns a hook's facts into a verdict.
//!
//! It performs no process or network I/O and reads no files: callers hand it bytes and text.
//! Everything in it is deterministic, so it can be fuzzed and checked against CPython itself.

#![deny(missing_docs)]

pub mod baseline;
pub mod decision;
pub mod diagnostics;
pub mod evaluation;
pub mod grammar;
pub mod hook;
pub mod model;

pub use decision::{decide, Decision, Verdict};
pub use evaluation::{judge, EvaluationOutcome, Findings};
pub use grammar::{Grammar, LineKind, LocaleCodec, PthText, PythonVersion};
pub use hook::{HookFacts, HookKind, Owner, Signal};
pub use model::{
    parse_policy, EnvGrant, OnViolation, Policy, PolicyError, PolicyFormat, RunMode, SandboxLimits,
    UnknownCode,
};
