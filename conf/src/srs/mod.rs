//! `ringcast import-srs`: SRS configuration files into ringcast's TOML.
//!
//! [`parse()`] reads SRS's syntax (pure, no I/O), [`load`] follows `include` through a
//! reader the caller gives, [`translate()`] maps the directives onto ringcast's schema,
//! and [`import`] does all three and checks that the result is a valid ringcast config,
//! naming the SRS directive when it is not.

mod error;
pub mod parse;
pub mod translate;

use std::path::{Path, PathBuf};

pub use error::{SrsError, SrsErrorKind};
pub use parse::{parse, Directive};
pub use translate::{translate, Notice, NoticeKind, Translation};

use crate::Config;

/// Reads one file for [`load`]: the file system for the command, a map in tests.
pub type Reader<'a> = &'a dyn Fn(&Path) -> std::io::Result<String>;

/// Deepest chain of includes followed; deeper is taken for a cycle through spellings of
/// one path that do not compare equal.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Reads an SRS config and every file it includes (each `include` path relative to the
/// directory of the file that names it), into one tree with each directive's own file.
pub fn load(path: &Path, read: Reader) -> Result<Vec<Directive>, SrsError> {
    let mut stack = Vec::new();
    load_file(path, read, &mut stack, None)
}

fn load_file(
    path: &Path,
    read: Reader,
    stack: &mut Vec<PathBuf>,
    from: Option<&Directive>,
) -> Result<Vec<Directive>, SrsError> {
    let located = |kind: SrsErrorKind| match from {
        Some(d) => SrsError {
            file: d.file.clone(),
            line: Some(d.line),
            kind,
        },
        None => SrsError {
            file: path.display().to_string(),
            line: None,
            kind,
        },
    };
    if stack.iter().any(|p| p == path) || stack.len() >= MAX_INCLUDE_DEPTH {
        return Err(located(SrsErrorKind::IncludeCycle {
            path: path.display().to_string(),
        }));
    }
    let text = read(path).map_err(|e| {
        located(SrsErrorKind::Unreadable {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    })?;
    let tree = parse(&text, &path.display().to_string())?;
    stack.push(path.to_path_buf());
    let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let expanded = expand(tree, &dir, read, stack);
    stack.pop();
    expanded
}

/// Replaces each `include` in `tree`, at any depth, by the directives of its files.
fn expand(
    tree: Vec<Directive>,
    dir: &Path,
    read: Reader,
    stack: &mut Vec<PathBuf>,
) -> Result<Vec<Directive>, SrsError> {
    let mut out = Vec::with_capacity(tree.len());
    for mut d in tree {
        if d.name == "include" {
            if d.args.is_empty() || d.block.is_some() {
                return Err(SrsError {
                    file: d.file.clone(),
                    line: Some(d.line),
                    kind: SrsErrorKind::EmptyInclude,
                });
            }
            for file in &d.args {
                out.extend(load_file(&dir.join(file), read, stack, Some(&d))?);
            }
            continue;
        }
        if let Some(children) = d.block.take() {
            d.block = Some(expand(children, dir, read, stack)?);
        }
        out.push(d);
    }
    Ok(out)
}

/// An SRS config as ringcast TOML, with what was not carried over.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The ringcast config, ready to write to a file; it passes `ringcast -t`.
    pub toml: String,
    /// Directives not carried over, in the order written.
    pub notices: Vec<Notice>,
}

/// Loads, translates and validates an SRS config.
pub fn import(path: &Path, read: Reader) -> Result<Imported, SrsError> {
    let tree = load(path, read)?;
    let translation = translate(&tree)?;
    let mut toml = format!(
        "# Translated by `ringcast import-srs` from {}.\n\
         # Directives that were not carried over are listed on its standard error.\n\n{}",
        path.display(),
        translation.doc
    );
    if !toml.ends_with('\n') {
        toml.push('\n');
    }
    if let Err(e) = Config::parse(&toml, "import-srs output") {
        // The deepest key the translation wrote that the error is about.
        let key = e.key.unwrap_or_default();
        let source = translation
            .sources
            .iter()
            .filter(|s| {
                key == s.key
                    || key
                        .strip_prefix(s.key.as_str())
                        .is_some_and(|rest| rest.starts_with(['.', '[']))
            })
            .max_by_key(|s| s.key.len());
        return Err(match source {
            Some(s) => SrsError {
                file: s.file.clone(),
                line: Some(s.line),
                kind: SrsErrorKind::Invalid {
                    directive: s.directive.clone(),
                    message: e.message,
                },
            },
            None => SrsError {
                file: path.display().to_string(),
                line: None,
                kind: SrsErrorKind::Invalid {
                    directive: key,
                    message: e.message,
                },
            },
        });
    }
    Ok(Imported {
        toml,
        notices: translation.notices,
    })
}

#[cfg(test)]
mod tests;
