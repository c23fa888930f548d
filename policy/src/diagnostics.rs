//! The registry of diagnostic codes: every reason and signal sitegate reports, with the
//! sentence that heads its page in `docs/diagnostics.md`. Codes are stable kebab-case names,
//! also used as SARIF rule ids.

/// Whether a code is a verdict's reason, a signal, or a problem with a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiagnosticClass {
    /// Why a hook was allowed.
    AllowReason,
    /// Why a hook was denied.
    DenyReason,
    /// Something noticed beside the verdict.
    Signal,
}

/// One diagnostic code.
#[derive(Clone, Copy, Debug)]
pub struct Diagnostic {
    /// The stable code.
    pub code: &'static str,
    /// Its class.
    pub class: DiagnosticClass,
    /// One sentence: what it means.
    pub summary: &'static str,
}

/// Every code sitegate reports.
pub const DIAGNOSTICS: &[Diagnostic] = &[
    Diagnostic {
        code: "path-entry",
        class: DiagnosticClass::AllowReason,
        summary: "A path line whose target others cannot write to",
    },
    Diagnostic {
        code: "baseline-hook",
        class: DiagnosticClass::AllowReason,
        summary: "A hook of a well-known tool, matched exactly by the built-in baseline",
    },
    Diagnostic {
        code: "policy-allow",
        class: DiagnosticClass::AllowReason,
        summary: "An [[allow]] entry of the policy matches the hook",
    },
    Diagnostic {
        code: "policy-deny",
        class: DiagnosticClass::DenyReason,
        summary: "A [[deny]] entry of the policy matches the hook",
    },
    Diagnostic {
        code: "unknown-code-hook",
        class: DiagnosticClass::DenyReason,
        summary: "A code line that no policy entry or baseline hook allows",
    },
    Diagnostic {
        code: "unknown-customize-module",
        class: DiagnosticClass::DenyReason,
        summary:
            "A sitecustomize or usercustomize module that no policy entry or baseline hook allows",
    },
    Diagnostic {
        code: "unverified-baseline-hook",
        class: DiagnosticClass::DenyReason,
        summary: "A well-known hook line whose loaded module is not the one the baseline expects",
    },
    Diagnostic {
        code: "writable-path",
        class: DiagnosticClass::DenyReason,
        summary: "A path entry that other users can write to",
    },
    Diagnostic {
        code: "unreadable-hook-file",
        class: DiagnosticClass::DenyReason,
        summary: "A hook file that cannot be read; CPython skips it too",
    },
    Diagnostic {
        code: "undecodable-pth",
        class: DiagnosticClass::DenyReason,
        summary: "A .pth file that the interpreter cannot decode; CPython aborts its start on it",
    },
    Diagnostic {
        code: "oversized-hook-file",
        class: DiagnosticClass::DenyReason,
        summary: "A hook file larger than sitegate reads",
    },
    Diagnostic {
        code: "unverifiable-module",
        class: DiagnosticClass::DenyReason,
        summary: "A sitecustomize or usercustomize that is not Python source sitegate can pin",
    },
    Diagnostic {
        code: "sandbox-effects",
        class: DiagnosticClass::AllowReason,
        summary: "A hook that only appended to sys.path in the sandbox; its appends are applied",
    },
    Diagnostic {
        code: "unevaluated-hook",
        class: DiagnosticClass::DenyReason,
        summary: "A hook the policy sends to the sandbox that could not be evaluated",
    },
    Diagnostic {
        code: "capability-denied",
        class: DiagnosticClass::DenyReason,
        summary: "In the sandbox the hook tried something it was not granted",
    },
    Diagnostic {
        code: "needs-native",
        class: DiagnosticClass::DenyReason,
        summary: "The hook needs a native module the sandbox cannot load",
    },
    Diagnostic {
        code: "missing-module",
        class: DiagnosticClass::DenyReason,
        summary: "The hook imports a standard-library module the sandbox guest lacks",
    },
    Diagnostic {
        code: "untransplantable-hook",
        class: DiagnosticClass::DenyReason,
        summary: "The hook installed finders or import hooks, loaded modules or changed state",
    },
    Diagnostic {
        code: "hook-raised",
        class: DiagnosticClass::DenyReason,
        summary: "The hook raised an exception in the sandbox",
    },
    Diagnostic {
        code: "sandbox-timeout",
        class: DiagnosticClass::DenyReason,
        summary: "The hook reached the sandbox's CPU or wall-clock bound",
    },
    Diagnostic {
        code: "sandbox-memory-limit",
        class: DiagnosticClass::DenyReason,
        summary: "The hook reached the sandbox's memory cap",
    },
    Diagnostic {
        code: "sandbox-output-limit",
        class: DiagnosticClass::DenyReason,
        summary: "The hook wrote more than the sandbox's output cap",
    },
    Diagnostic {
        code: "sandbox-crash",
        class: DiagnosticClass::DenyReason,
        summary: "The sandbox guest failed while evaluating the hook",
    },
    Diagnostic {
        code: "unowned-hook",
        class: DiagnosticClass::Signal,
        summary: "No installed distribution's RECORD claims the hook file",
    },
    Diagnostic {
        code: "hash-mismatch",
        class: DiagnosticClass::Signal,
        summary: "The hook file's bytes differ from the hash in its RECORD",
    },
    Diagnostic {
        code: "hidden-file",
        class: DiagnosticClass::Signal,
        summary: "The hook file's name starts with a dot",
    },
    Diagnostic {
        code: "obfuscated-hook",
        class: DiagnosticClass::Signal,
        summary: "The code line uses exec, eval, compile, base64, marshal, zlib or codecs",
    },
];

/// Looks a code up.
pub fn diagnostic(code: &str) -> Option<&'static Diagnostic> {
    DIAGNOSTICS.iter().find(|d| d.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hook::Signal;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_kebab_case_and_cover_every_signal() {
        let mut seen = HashSet::new();
        for d in DIAGNOSTICS {
            assert!(seen.insert(d.code), "duplicate code {}", d.code);
            assert!(
                d.code.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{}",
                d.code
            );
        }
        for signal in [
            Signal::UnownedHook,
            Signal::HashMismatch,
            Signal::HiddenFile,
            Signal::ObfuscatedHook,
            Signal::WritablePath,
        ] {
            assert!(diagnostic(signal.code()).is_some(), "{}", signal.code());
        }
    }
}
