//! The interpreter options on a command line, as far as they change start-up hooks.
//!
//! CPython reads options up to the first argument that is not one (a script, `-c`, `-m`,
//! `-`); short options combine (`-Es`), and `-W`/`-X` take a value. sitegate reads the same
//! way so that it predicts the `sys.path`, user site and environment handling the user asked
//! for. It does not change the command line.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// The options that matter to `site`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartFlags {
    /// `-I`.
    pub isolated: bool,
    /// `-E` (or `-I`).
    pub ignore_environment: bool,
    /// `-s` (or `-I`).
    pub no_user_site: bool,
    /// `-S`.
    pub no_site: bool,
    /// `-X utf8` (`Some(true)`) or `-X utf8=0` (`Some(false)`).
    pub utf8_mode: Option<bool>,
}

impl StartFlags {
    /// Reads the options at the front of an interpreter's arguments (after its own name).
    pub fn parse(arguments: &[OsString]) -> StartFlags {
        let mut flags = StartFlags::default();
        let mut arguments = arguments.iter();
        while let Some(argument) = arguments.next() {
            let bytes = argument.as_bytes();
            if bytes == b"--check-hash-based-pycs" {
                arguments.next();
                continue;
            }
            if bytes.starts_with(b"--") || bytes.len() < 2 || bytes[0] != b'-' {
                break;
            }
            for (index, option) in bytes[1..].iter().enumerate() {
                match option {
                    b'I' => {
                        flags.isolated = true;
                        flags.ignore_environment = true;
                        flags.no_user_site = true;
                    }
                    b'E' => flags.ignore_environment = true,
                    b's' => flags.no_user_site = true,
                    b'S' => flags.no_site = true,
                    b'c' | b'm' => return flags,
                    b'W' | b'X' => {
                        let value = if index + 2 == bytes.len() {
                            arguments
                                .next()
                                .map(|v| v.as_bytes().to_vec())
                                .unwrap_or_default()
                        } else {
                            bytes[index + 2..].to_vec()
                        };
                        if *option == b'X' && (value == b"utf8" || value == b"utf8=1") {
                            flags.utf8_mode = Some(true);
                        } else if *option == b'X' && value == b"utf8=0" {
                            flags.utf8_mode = Some(false);
                        }
                        break;
                    }
                    _ => {}
                }
            }
        }
        flags
    }

    /// Whether an environment variable the interpreter reads itself takes effect.
    pub fn reads_environment(self) -> bool {
        !self.ignore_environment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> StartFlags {
        StartFlags::parse(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn options_table() {
        assert_eq!(
            parse(&["-I", "x.py"]),
            StartFlags {
                isolated: true,
                ignore_environment: true,
                no_user_site: true,
                no_site: false,
                utf8_mode: None,
            }
        );
        assert_eq!(
            parse(&["-Es", "-c", "-S"]),
            StartFlags {
                ignore_environment: true,
                no_user_site: true,
                ..Default::default()
            }
        );
        assert_eq!(
            parse(&["-X", "dev", "-S"]),
            StartFlags {
                no_site: true,
                ..Default::default()
            }
        );
        assert_eq!(
            parse(&["-Xdev", "-S"]),
            StartFlags {
                no_site: true,
                ..Default::default()
            }
        );
        assert_eq!(parse(&["-m", "-S"]), StartFlags::default());
        assert_eq!(parse(&["app.py", "-S"]), StartFlags::default());
        assert_eq!(parse(&["-", "-S"]), StartFlags::default());
        assert_eq!(
            parse(&["-Wignore", "-s"]),
            StartFlags {
                no_user_site: true,
                ..Default::default()
            }
        );
    }
}
