//! What can go wrong importing an SRS config, located at the file and line to fix.

use std::fmt;

/// An SRS config that cannot be imported: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrsError {
    /// The SRS file (the included one, for a mistake inside an include).
    pub file: String,
    /// 1-based line, when the mistake has one.
    pub line: Option<usize>,
    /// What is wrong.
    pub kind: SrsErrorKind,
}

/// Why an SRS config cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SrsErrorKind {
    /// `;` or `{` with no directive before it.
    Empty(char),
    /// `}` with no block open, or in the middle of a directive.
    UnexpectedClose,
    /// The file ends inside a block.
    UnclosedBlock { name: String, opened: usize },
    /// A directive not ended by `;` or `{` on its line.
    Unterminated { name: String },
    /// A quoted word not closed on its line.
    UnterminatedQuote,
    /// A closing quote followed by something other than a blank, `;` or `{`.
    AfterQuote(char),
    /// `include` naming no file.
    EmptyInclude,
    /// An included file that cannot be read.
    Unreadable { path: String, reason: String },
    /// A file that includes itself, directly or through others.
    IncludeCycle { path: String },
    /// A directive without the value it needs.
    MissingValue { directive: String },
    /// A directive whose value has the wrong form.
    BadValue {
        directive: String,
        value: String,
        expected: &'static str,
    },
    /// The translation fails ringcast's own validation (the key and its reason).
    Invalid { directive: String, message: String },
}

impl fmt::Display for SrsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        match &self.kind {
            SrsErrorKind::Empty(c) => write!(f, "unexpected '{c}' with no directive before it"),
            SrsErrorKind::UnexpectedClose => f.write_str("unexpected '}'"),
            SrsErrorKind::UnclosedBlock { name, opened } => write!(
                f,
                "unexpected end of file: the block '{name}' opened at line {opened} is not closed by '}}'"
            ),
            SrsErrorKind::Unterminated { name } => write!(
                f,
                "directive '{name}' is not ended by ';' or '{{' on its line"
            ),
            SrsErrorKind::UnterminatedQuote => f.write_str("quoted word not closed on its line"),
            SrsErrorKind::AfterQuote(c) => {
                write!(f, "unexpected '{c}' after a closing quote")
            }
            SrsErrorKind::EmptyInclude => f.write_str("directive 'include' names no file"),
            SrsErrorKind::Unreadable { path, reason } => {
                write!(f, "cannot read included file {path}: {reason}")
            }
            SrsErrorKind::IncludeCycle { path } => {
                write!(f, "{path} is included again while it is being read")
            }
            SrsErrorKind::MissingValue { directive } => {
                write!(f, "directive '{directive}' needs a value")
            }
            SrsErrorKind::BadValue {
                directive,
                value,
                expected,
            } => write!(f, "directive '{directive}': `{value}` is not {expected}"),
            SrsErrorKind::Invalid { directive, message } => {
                write!(f, "directive '{directive}': {message}")
            }
        }
    }
}

impl std::error::Error for SrsError {}
