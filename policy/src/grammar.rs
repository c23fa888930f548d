//! The `.pth` line grammar, per CPython version.
//!
//! This module owns the answer to one question: given the bytes of a `.pth` file and the
//! version of the interpreter that will read it, which lines does `site.addpackage` see, and
//! what does it do with each? It reproduces the target's own rules: how the file is decoded
//! (locale codec, UTF-8, UTF-8 with BOM), how it is split into lines (universal newlines or
//! `str.splitlines`), and how each line is classified (comment, blank, code, path). It trusts
//! nothing about the bytes: every input, however malformed, gets an answer or a typed error.
//!
//! It performs no I/O. The differential tests check it against every interpreter on the
//! machine.

use std::fmt;
use std::ops::Range;

/// A CPython version, as `sys.version_info` reports its first three fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PythonVersion {
    /// The major version, always 3 for the versions sitegate supports.
    pub major: u32,
    /// The minor version.
    pub minor: u32,
    /// The patch release.
    pub micro: u32,
}

impl PythonVersion {
    /// The oldest version sitegate supports.
    pub const OLDEST_SUPPORTED: PythonVersion = PythonVersion::new(3, 8, 0);

    /// The newest minor version sitegate supports (any patch release of it).
    pub const NEWEST_SUPPORTED_MINOR: u32 = 14;

    /// Makes a version from its three fields.
    pub const fn new(major: u32, minor: u32, micro: u32) -> Self {
        PythonVersion {
            major,
            minor,
            micro,
        }
    }

    /// Whether sitegate knows this version's `site` rules.
    pub fn is_supported(self) -> bool {
        self.major == 3 && self.minor >= 8 && self.minor <= Self::NEWEST_SUPPORTED_MINOR
    }

    /// The first patch release of a minor version (`minor`, `micro`) or any later minor.
    fn at_least(self, fixed_in: &[(u32, u32)], from_minor: u32) -> bool {
        if self.minor >= from_minor {
            return true;
        }
        fixed_in
            .iter()
            .any(|&(minor, micro)| self.minor == minor && self.micro >= micro)
    }
}

impl fmt::Display for PythonVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// How `site` turns a `.pth` file's bytes into text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoding {
    /// The locale's codec, streamed through `io.TextIOWrapper` (up to 3.12.3). A BOM stays
    /// part of the first line.
    Locale,
    /// Strict UTF-8 first, the locale's codec if that fails (3.12.4 and later 3.12 releases).
    Utf8ThenLocale,
    /// UTF-8 with an optional BOM first, the locale's codec if that fails (3.13 and later).
    Utf8SigThenLocale,
}

/// How `site` splits the decoded text into lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Splitting {
    /// Iterating a text stream: `\n`, `\r\n` and a lone `\r` end a line.
    UniversalNewlines,
    /// `str.splitlines()`: the above plus `\x0b \x0c \x1c \x1d \x1e \x85 U+2028 U+2029`.
    StrSplitlines,
}

/// The rules one interpreter version applies to `.pth` files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grammar {
    /// The version these rules belong to.
    pub version: PythonVersion,
    /// Whether file names starting with `.` are skipped (3.13, and backported to 3.8.19,
    /// 3.9.19, 3.10.14, 3.11.8 and 3.12.2).
    pub skips_hidden_names: bool,
    /// How the bytes are decoded.
    pub decoding: Decoding,
    /// How the text is split.
    pub splitting: Splitting,
    /// Whether a whitespace-only line is skipped (3.10 and later); before that it is a path
    /// line naming the site directory itself.
    pub skips_blank_lines: bool,
}

impl Grammar {
    /// The rules of one CPython version. The caller checks [`PythonVersion::is_supported`].
    pub fn for_version(version: PythonVersion) -> Grammar {
        let skips_hidden_names =
            version.at_least(&[(8, 19), (9, 19), (10, 14), (11, 8), (12, 2)], 13);
        let (decoding, splitting) = if version.minor >= 13 {
            (Decoding::Utf8SigThenLocale, Splitting::StrSplitlines)
        } else if version.at_least(&[(12, 4)], 13) {
            (Decoding::Utf8ThenLocale, Splitting::StrSplitlines)
        } else {
            (Decoding::Locale, Splitting::UniversalNewlines)
        };
        Grammar {
            version,
            skips_hidden_names,
            decoding,
            splitting,
            skips_blank_lines: version.minor >= 10,
        }
    }

    /// Whether `site.addsitedir` would read a directory entry of this name as a `.pth` file.
    pub fn reads_file_name(&self, name: &str) -> bool {
        name.ends_with(".pth") && !(self.skips_hidden_names && name.starts_with('.'))
    }

    /// Decodes, splits and classifies the bytes of one `.pth` file.
    pub fn parse(&self, bytes: &[u8], locale: LocaleCodec) -> Result<PthText, DecodeError> {
        let (text, bom, codec) = self.decode(bytes, locale)?;
        let lines = split_lines(&text, self.splitting)
            .into_iter()
            .enumerate()
            .map(|(index, (content, terminator))| {
                let kind = self.classify(&text[content.clone()]);
                PthLine {
                    number: index + 1,
                    content,
                    terminator,
                    kind,
                }
            })
            .collect();
        Ok(PthText {
            text,
            bom,
            codec,
            lines,
        })
    }

    /// Decodes as `site` does; also says whether a BOM was removed and which codec succeeded.
    fn decode(
        &self,
        bytes: &[u8],
        locale: LocaleCodec,
    ) -> Result<(String, bool, LocaleCodec), DecodeError> {
        const BOM: &[u8] = b"\xef\xbb\xbf";
        let utf8 = |bytes: &[u8]| std::str::from_utf8(bytes).map(str::to_owned).ok();
        let utf8_first = match self.decoding {
            Decoding::Locale => None,
            Decoding::Utf8ThenLocale => utf8(bytes).map(|t| (t, false)),
            Decoding::Utf8SigThenLocale => match bytes.strip_prefix(BOM) {
                Some(rest) => utf8(rest).map(|t| (t, true)),
                None => utf8(bytes).map(|t| (t, false)),
            },
        };
        match utf8_first {
            Some((text, bom)) => Ok((text, bom, LocaleCodec::Utf8)),
            None => locale.decode(bytes).map(|text| (text, false, locale)),
        }
    }

    /// Classifies one line (without its terminator) as `site.addpackage` does.
    pub fn classify(&self, line: &str) -> LineKind {
        if line.starts_with('#') {
            return LineKind::Comment;
        }
        if self.skips_blank_lines && line.chars().all(is_python_space) {
            return LineKind::Blank;
        }
        if line.starts_with("import ") || line.starts_with("import\t") {
            return LineKind::Code;
        }
        LineKind::Path
    }
}

/// The codec Python's locale gives `site` when UTF-8 is not tried or fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LocaleCodec {
    /// UTF-8 (the usual case: UTF-8 locales, and the C locale through coercion).
    Utf8,
    /// ASCII (`ANSI_X3.4-1968`).
    Ascii,
    /// ISO-8859-1 (every byte decodes).
    Latin1,
}

impl fmt::Display for LocaleCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LocaleCodec::Utf8 => "UTF-8",
            LocaleCodec::Ascii => "ASCII",
            LocaleCodec::Latin1 => "ISO-8859-1",
        })
    }
}

impl LocaleCodec {
    /// Maps a codec name as `locale.getpreferredencoding(False)` reports it.
    pub fn from_python_name(name: &str) -> Option<LocaleCodec> {
        let normal: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match normal.as_str() {
            "utf8" => Some(LocaleCodec::Utf8),
            "ascii" | "ansix341968" | "usascii" | "646" => Some(LocaleCodec::Ascii),
            "latin1" | "iso88591" | "l1" | "iso885911987" | "8859" | "cp819" => {
                Some(LocaleCodec::Latin1)
            }
            _ => None,
        }
    }

    fn decode(self, bytes: &[u8]) -> Result<String, DecodeError> {
        match self {
            LocaleCodec::Utf8 => std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|error| DecodeError {
                    offset: error.valid_up_to(),
                    codec: self,
                }),
            LocaleCodec::Ascii => match bytes.iter().position(|b| !b.is_ascii()) {
                Some(offset) => Err(DecodeError {
                    offset,
                    codec: self,
                }),
                None => Ok(bytes.iter().map(|&b| b as char).collect()),
            },
            LocaleCodec::Latin1 => Ok(bytes.iter().map(|&b| b as char).collect()),
        }
    }

    /// Encodes text that this codec decoded (and ASCII edits of it) back into bytes.
    fn encode(self, text: &str) -> Vec<u8> {
        match self {
            LocaleCodec::Utf8 => text.as_bytes().to_vec(),
            LocaleCodec::Ascii | LocaleCodec::Latin1 => text.chars().map(|c| c as u8).collect(),
        }
    }
}

/// A `.pth` file that no codec the interpreter tries can decode. CPython aborts its start-up
/// with `Fatal Python error: init_import_site` on such a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bytes at offset {offset} are not valid {codec}")]
pub struct DecodeError {
    /// The byte offset of the first undecodable byte, in the last codec tried.
    pub offset: usize,
    /// The last codec tried.
    pub codec: LocaleCodec,
}

/// What `site.addpackage` does with one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineKind {
    /// Starts with `#`: skipped.
    Comment,
    /// Only whitespace (3.10 and later): skipped.
    Blank,
    /// Starts with `import ` or `import<TAB>`: executed with `exec`.
    Code,
    /// Anything else: a directory joined to the site directory.
    Path,
}

/// One line of a decoded `.pth` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PthLine {
    /// The 1-based line number `site` reports.
    pub number: usize,
    /// Where the line's text sits in [`PthText::text`], without its terminator.
    pub content: Range<usize>,
    /// Where its terminator sits (empty for a last line without one).
    pub terminator: Range<usize>,
    /// What `site` does with it.
    pub kind: LineKind,
}

/// A decoded and classified `.pth` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PthText {
    /// The decoded text (without a BOM that the decoding removed).
    pub text: String,
    /// Whether the decoding removed a UTF-8 BOM.
    pub bom: bool,
    /// The codec that decoded the file (used to encode a rewritten file).
    pub codec: LocaleCodec,
    /// Every line, in order.
    pub lines: Vec<PthLine>,
}

impl PthText {
    /// The text of one line, without its terminator.
    pub fn line_text(&self, line: &PthLine) -> &str {
        &self.text[line.content.clone()]
    }

    /// The text a path line names: `site` strips trailing whitespace only.
    pub fn path_text(&self, line: &PthLine) -> &str {
        self.line_text(line).trim_end_matches(is_python_space)
    }

    /// Rebuilds the file's bytes with the lines that `keep` rejects replaced by a bare `#`, so
    /// that every line keeps its number and its terminator and `site` skips the replaced ones.
    /// Blank lines stay as they are.
    pub fn neutralised(&self, mut keep: impl FnMut(&PthLine) -> bool) -> Vec<u8> {
        self.rewritten(|line| {
            if keep(line) {
                LineFate::Keep
            } else {
                LineFate::Neutralise
            }
        })
    }

    /// Rebuilds the file's bytes deciding each line's fate: kept, replaced by a bare `#`, or
    /// replaced by other text (which must hold no line break). Blank lines stay as they are.
    pub fn rewritten(&self, mut fate: impl FnMut(&PthLine) -> LineFate) -> Vec<u8> {
        let mut text = String::with_capacity(self.text.len());
        for line in &self.lines {
            let decided = if line.kind == LineKind::Blank {
                LineFate::Keep
            } else {
                fate(line)
            };
            match decided {
                LineFate::Keep => text.push_str(&self.text[line.content.clone()]),
                LineFate::Neutralise if !line.content.is_empty() => text.push('#'),
                LineFate::Neutralise => {}
                LineFate::Replace(replacement) => {
                    debug_assert!(!replacement.contains(['\n', '\r']), "one line");
                    text.push_str(&replacement);
                }
            }
            text.push_str(&self.text[line.terminator.clone()]);
        }
        let mut bytes = Vec::with_capacity(text.len() + 3);
        if self.bom {
            bytes.extend_from_slice(b"\xef\xbb\xbf");
        }
        bytes.extend(self.codec.encode(&text));
        bytes
    }
}

/// What becomes of one line when a `.pth` file is rewritten for the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineFate {
    /// The line stays as it is.
    Keep,
    /// The line becomes a bare `#`, which `site` skips.
    Neutralise,
    /// The line becomes this text (one line, no break).
    Replace(String),
}

/// Python's `str.isspace` for one character.
pub fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

fn is_splitlines_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\x0b'
            | '\x0c'
            | '\x1c'
            | '\x1d'
            | '\x1e'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// Splits text into (content, terminator) ranges.
fn split_lines(text: &str, splitting: Splitting) -> Vec<(Range<usize>, Range<usize>)> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let breaks = match splitting {
            Splitting::UniversalNewlines => c == '\n' || c == '\r',
            Splitting::StrSplitlines => is_splitlines_break(c),
        };
        if !breaks {
            continue;
        }
        let mut end = at + c.len_utf8();
        if c == '\r' {
            if let Some(&(next_at, '\n')) = chars.peek() {
                end = next_at + 1;
                chars.next();
            }
        }
        lines.push((start..at, at..end));
        start = end;
    }
    if start < text.len() {
        lines.push((start..text.len(), text.len()..text.len()));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(version: (u32, u32, u32), bytes: &[u8]) -> Vec<(LineKind, String)> {
        let grammar = Grammar::for_version(PythonVersion::new(3, version.0, version.1 + version.2));
        let parsed = grammar.parse(bytes, LocaleCodec::Utf8).expect("decodes");
        parsed
            .lines
            .iter()
            .map(|l| (l.kind, parsed.line_text(l).to_owned()))
            .collect()
    }

    #[test]
    fn classification_table() {
        use LineKind::*;
        type Row = (
            &'static [u8],
            (u32, u32, u32),
            &'static [(LineKind, &'static str)],
        );
        let table: &[Row] = &[
            (b"import os\n", (8, 18, 0), &[(Code, "import os")]),
            (b"import\tos", (11, 7, 0), &[(Code, "import\tos")]),
            (b" import os", (13, 0, 0), &[(Path, " import os")]),
            (b"Import os", (13, 0, 0), &[(Path, "Import os")]),
            (b"importlib", (13, 0, 0), &[(Path, "importlib")]),
            (
                b"# c\n  # c",
                (12, 1, 0),
                &[(Comment, "# c"), (Path, "  # c")],
            ),
            (b"\n \t\n", (9, 18, 0), &[(Path, ""), (Path, " \t")]),
            (b"\n \t\n", (10, 13, 0), &[(Blank, ""), (Blank, " \t")]),
            (
                b"a\rimport x\r\nb",
                (8, 18, 0),
                &[(Path, "a"), (Code, "import x"), (Path, "b")],
            ),
            (b"a\x0cimport x", (12, 1, 0), &[(Path, "a\x0cimport x")]),
            (
                b"a\x0cimport x",
                (13, 0, 0),
                &[(Path, "a"), (Code, "import x")],
            ),
            (
                b"a\xe2\x80\xa8import x",
                (12, 4, 0),
                &[(Path, "a"), (Code, "import x")],
            ),
            (
                b"a\xe2\x80\xa8import x",
                (11, 7, 0),
                &[(Path, "a\u{2028}import x")],
            ),
            (
                b"\xef\xbb\xbfimport x",
                (12, 1, 0),
                &[(Path, "\u{feff}import x")],
            ),
            (b"\xef\xbb\xbfimport x", (13, 0, 0), &[(Code, "import x")]),
            (b"\x1c\x1f", (13, 0, 0), &[(Blank, ""), (Blank, "\x1f")]),
        ];
        for (bytes, version, expected) in table {
            let got = kinds(*version, bytes);
            let expected: Vec<_> = expected.iter().map(|(k, t)| (*k, t.to_string())).collect();
            assert_eq!(got, expected, "{bytes:?} on 3.{}.{}", version.0, version.1);
        }
    }

    #[test]
    fn hidden_names_follow_the_backports() {
        let hides = |minor, micro| {
            Grammar::for_version(PythonVersion::new(3, minor, micro)).reads_file_name(".x.pth")
        };
        assert!(hides(8, 18));
        assert!(!hides(8, 19));
        assert!(hides(12, 1));
        assert!(!hides(12, 2));
        assert!(!hides(13, 0));
        let grammar = Grammar::for_version(PythonVersion::new(3, 13, 0));
        assert!(grammar.reads_file_name("a.pth"));
        assert!(!grammar.reads_file_name("a.pth.bak"));
    }

    #[test]
    fn neutralising_reencodes_with_the_codec_that_decoded() {
        let utf8 = "\u{e9}t\u{e9}\nimport x\n".as_bytes();
        let modern = Grammar::for_version(PythonVersion::new(3, 13, 0));
        let parsed = modern.parse(utf8, LocaleCodec::Ascii).expect("UTF-8 first");
        assert_eq!(
            parsed.neutralised(|l| l.kind == LineKind::Path),
            b"\xc3\xa9t\xc3\xa9\n#\n".to_vec()
        );
        let old = Grammar::for_version(PythonVersion::new(3, 8, 18));
        let latin = old
            .parse(b"\xe9\nimport x\n", LocaleCodec::Latin1)
            .expect("latin-1");
        assert_eq!(
            latin.neutralised(|l| l.kind == LineKind::Path),
            b"\xe9\n#\n".to_vec()
        );
    }

    #[test]
    fn undecodable_bytes_are_an_error() {
        let grammar = Grammar::for_version(PythonVersion::new(3, 13, 0));
        let error = grammar
            .parse(b"ok\n\xff\xfe", LocaleCodec::Utf8)
            .unwrap_err();
        assert_eq!(error.offset, 3);
        let latin = grammar
            .parse(b"ok\n\xff", LocaleCodec::Latin1)
            .expect("latin-1");
        assert_eq!(latin.text, "ok\n\u{ff}");
    }

    #[test]
    fn neutralising_keeps_numbers_terminators_and_bom() {
        let grammar = Grammar::for_version(PythonVersion::new(3, 13, 0));
        let bytes = b"\xef\xbb\xbfimport evil\r\n# note\n\npath\x0cimport ok";
        let parsed = grammar.parse(bytes, LocaleCodec::Utf8).expect("decodes");
        let rebuilt = parsed.neutralised(|line| {
            line.kind == LineKind::Path || parsed.line_text(line) == "import ok"
        });
        assert_eq!(rebuilt, b"\xef\xbb\xbf#\r\n#\n\npath\x0cimport ok".to_vec());
        let again = grammar.parse(&rebuilt, LocaleCodec::Utf8).expect("decodes");
        assert_eq!(again.lines.len(), parsed.lines.len());
        assert_eq!(parsed.neutralised(|_| true), bytes.to_vec());
    }
}
