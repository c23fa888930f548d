//! What a hook is, as far as a decision needs to know: its kind, where it lives, what its
//! file hashes to, who owns it and what the scan noticed about it. The scanner fills these in;
//! nothing here reads a file.

use std::fmt;

/// The kinds of startup hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookKind {
    /// A path line of a `.pth` file.
    PthPath,
    /// An `import` line of a `.pth` file: code that `site` executes.
    PthCode,
    /// The `sitecustomize` module.
    Sitecustomize,
    /// The `usercustomize` module.
    Usercustomize,
}

impl HookKind {
    /// The stable name used in reports and policies.
    pub fn code(self) -> &'static str {
        match self {
            HookKind::PthPath => "pth-path",
            HookKind::PthCode => "pth-code",
            HookKind::Sitecustomize => "sitecustomize",
            HookKind::Usercustomize => "usercustomize",
        }
    }

    /// Reads a stable name back.
    pub fn from_code(code: &str) -> Option<HookKind> {
        [
            HookKind::PthPath,
            HookKind::PthCode,
            HookKind::Sitecustomize,
            HookKind::Usercustomize,
        ]
        .into_iter()
        .find(|kind| kind.code() == code)
    }

    /// Whether this kind runs code (as opposed to adding a path).
    pub fn runs_code(self) -> bool {
        self != HookKind::PthPath
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A distribution that claims a file through its `RECORD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The name as the distribution spells it.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// What the scan noticed about a hook beyond its verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// No installed distribution's `RECORD` claims the file.
    UnownedHook,
    /// The file's bytes differ from the hash its `RECORD` lists.
    HashMismatch,
    /// The file's name starts with `.`.
    HiddenFile,
    /// The code line uses `exec`, `eval`, `compile`, `base64`, `marshal`, `zlib` or `codecs`.
    ObfuscatedHook,
    /// The path entry is a directory that users other than its owner can write to.
    WritablePath,
}

impl Signal {
    /// The stable diagnostic code.
    pub fn code(self) -> &'static str {
        match self {
            Signal::UnownedHook => "unowned-hook",
            Signal::HashMismatch => "hash-mismatch",
            Signal::HiddenFile => "hidden-file",
            Signal::ObfuscatedHook => "obfuscated-hook",
            Signal::WritablePath => "writable-path",
        }
    }
}

/// Words that, in a code line, suggest the line hides what it runs.
const OBFUSCATION_WORDS: [&str; 7] = [
    "exec", "eval", "compile", "base64", "marshal", "zlib", "codecs",
];

/// Whether a code line uses one of the words that hide what a line runs, as a whole word.
pub fn looks_obfuscated(line: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    line.split(|c: char| !is_word(c))
        .any(|word| OBFUSCATION_WORDS.contains(&word))
}

/// The facts a decision is made from.
#[derive(Clone, Debug)]
pub struct HookFacts<'a> {
    /// The kind of hook.
    pub kind: HookKind,
    /// The file's name (without its directory).
    pub file_name: &'a str,
    /// The exact text of the line, for `.pth` lines.
    pub line_text: Option<&'a str>,
    /// The SHA-256 of the whole file, lower-case hex.
    pub sha256: &'a str,
    /// The owning distribution, if any.
    pub owner: Option<&'a Owner>,
    /// What the scan noticed.
    pub signals: &'a [Signal],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obfuscation_is_matched_as_whole_words() {
        assert!(looks_obfuscated(
            "import base64; exec(base64.b64decode('...'))"
        ));
        assert!(looks_obfuscated("import os;eval(os.environ['X'])"));
        assert!(!looks_obfuscated("import _virtualenv"));
        assert!(!looks_obfuscated("import executor_tools"));
    }
}
