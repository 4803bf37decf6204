//! SRS's configuration syntax, read the way SRS reads it (`SrsConfDirective::read_token`,
//! itself nginx's): words separated by blanks, a directive ended by `;` or opening a
//! `{ … }` block, `#` comments to the end of the line, `"…"` and `'…'` quoting. As in
//! SRS, a directive sits on one line: a line break before its `;` or `{` is an error, so a
//! forgotten `;` is reported where it is rather than gluing two directives together.
//!
//! Sans-IO and pure: text in, a tree of directives with their lines out. `include` is
//! an ordinary directive here; [`super::load`] resolves it.

use super::error::{SrsError, SrsErrorKind};

/// One directive: `name arg…;` or `name arg… { children }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The first word, such as `listen` or `vhost`.
    pub name: String,
    /// The other words, unquoted.
    pub args: Vec<String>,
    /// The directives inside `{ … }`; `None` for a directive ended by `;`.
    pub block: Option<Vec<Directive>>,
    /// The file it is written in (a config spreads over files through `include`).
    pub file: String,
    /// 1-based line of its name.
    pub line: usize,
}

impl Directive {
    /// The directives of its block, none for a plain directive.
    pub fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or_default()
    }
}

/// A directive being read: its words so far and the line of the first.
struct Pending {
    words: Vec<String>,
    line: usize,
}

/// A block being read: the directive that opened it and what it holds so far.
struct Open {
    head: Directive,
    children: Vec<Directive>,
}

/// Parses SRS configuration text; `file` names it in the directives and in errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<Directive>, SrsError> {
    let err = |line: usize, kind: SrsErrorKind| SrsError {
        file: file.to_owned(),
        line: Some(line),
        kind,
    };
    let mut top: Vec<Directive> = Vec::new();
    let mut open: Vec<Open> = Vec::new();
    let mut pending: Option<Pending> = None;
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                if let Some(p) = &pending {
                    return Err(err(
                        p.line,
                        SrsErrorKind::Unterminated {
                            name: p.words.first().cloned().unwrap_or_default(),
                        },
                    ));
                }
                line += 1;
            }
            c if c.is_whitespace() => {}
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            ';' | '{' => {
                let Some(Pending {
                    mut words,
                    line: at,
                }) = pending.take()
                else {
                    return Err(err(line, SrsErrorKind::Empty(c)));
                };
                let name = words.remove(0);
                let directive = Directive {
                    name,
                    args: words,
                    block: None,
                    file: file.to_owned(),
                    line: at,
                };
                if c == '{' {
                    open.push(Open {
                        head: directive,
                        children: Vec::new(),
                    });
                } else {
                    open.last_mut()
                        .map_or(&mut top, |o| &mut o.children)
                        .push(directive);
                }
            }
            '}' => {
                if pending.is_some() {
                    return Err(err(line, SrsErrorKind::UnexpectedClose));
                }
                let Some(Open { mut head, children }) = open.pop() else {
                    return Err(err(line, SrsErrorKind::UnexpectedClose));
                };
                head.block = Some(children);
                open.last_mut()
                    .map_or(&mut top, |o| &mut o.children)
                    .push(head);
            }
            '"' | '\'' => {
                let mut word = String::new();
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\n') | None => {
                            return Err(err(line, SrsErrorKind::UnterminatedQuote))
                        }
                        Some(other) => word.push(other),
                    }
                }
                if let Some(&next) = chars.peek() {
                    if !(next.is_whitespace() || next == ';' || next == '{') {
                        return Err(err(line, SrsErrorKind::AfterQuote(next)));
                    }
                }
                // SRS drops empty words, quoted or not.
                push_word(&mut pending, word, line);
            }
            first => {
                let mut word = String::from(first);
                while let Some(c) = chars.next_if(|&c| !(c.is_whitespace() || c == ';' || c == '{'))
                {
                    word.push(c);
                }
                push_word(&mut pending, word, line);
            }
        }
    }
    if let Some(p) = pending {
        return Err(err(
            p.line,
            SrsErrorKind::Unterminated {
                name: p.words.first().cloned().unwrap_or_default(),
            },
        ));
    }
    if let Some(o) = open.last() {
        return Err(err(
            line,
            SrsErrorKind::UnclosedBlock {
                name: o.head.name.clone(),
                opened: o.head.line,
            },
        ));
    }
    Ok(top)
}

fn push_word(pending: &mut Option<Pending>, word: String, line: usize) {
    if word.is_empty() {
        return;
    }
    pending
        .get_or_insert_with(|| Pending {
            words: Vec::new(),
            line,
        })
        .words
        .push(word);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(text: &str) -> Vec<Directive> {
        parse(text, "t.conf").unwrap_or_else(|e| panic!("{e}"))
    }

    fn kind(text: &str) -> (Option<usize>, SrsErrorKind) {
        match parse(text, "t.conf") {
            Ok(tree) => panic!("expected an error, parsed {tree:?}"),
            Err(e) => {
                assert_eq!(e.file, "t.conf");
                (e.line, e.kind)
            }
        }
    }

    /// `name args` of each directive, children indented, for compact expectations.
    fn outline(tree: &[Directive]) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(tree: &[Directive], depth: usize, out: &mut Vec<String>) {
            for d in tree {
                let mut words = vec![d.name.clone()];
                words.extend(d.args.iter().cloned());
                let open = if d.block.is_some() { " {" } else { "" };
                out.push(format!(
                    "{}{}:{}{open}",
                    "  ".repeat(depth),
                    d.line,
                    words.join("|")
                ));
                walk(d.children(), depth + 1, out);
            }
        }
        walk(tree, 0, &mut out);
        out
    }

    #[test]
    fn directives_blocks_and_lines() {
        let text = "# SRS config\nlisten 1935;\nmax_connections 1000; daemon off;\n\
                    vhost __defaultVhost__ {\n    hls {\n        enabled on; # inline\n    }\n\
                    \n    http_hooks { }\n}\n";
        assert_eq!(
            outline(&ok(text)),
            [
                "2:listen|1935",
                "3:max_connections|1000",
                "3:daemon|off",
                "4:vhost|__defaultVhost__ {",
                "  5:hls {",
                "    6:enabled|on",
                "  9:http_hooks {",
            ]
        );
    }

    #[test]
    fn words_and_quotes() {
        let tree = ok("a \"x y\" 'p;q{' b#c \"\" d;\nb\t1\r;\ne{}\n");
        assert_eq!(tree[0].args, ["x y", "p;q{", "b#c", "d"]);
        assert_eq!(tree[1].args, ["1"]);
        assert_eq!(tree[2].name, "e");
        assert_eq!(tree[2].block.as_deref(), Some(&[][..]));
        // A word runs up to `;` or `{` without a blank.
        let tree = ok("on_publish http://h/a?x=1;vhost v{x y;}");
        assert_eq!(tree[0].args, ["http://h/a?x=1"]);
        assert_eq!(tree[1].args, ["v"]);
        assert_eq!(tree[1].children()[0].args, ["y"]);
        assert_eq!(tree[0].file, "t.conf");
    }

    #[test]
    fn empty_inputs() {
        assert!(ok("").is_empty());
        assert!(ok("# only a comment").is_empty());
        assert!(ok("\n\n   \t\n").is_empty());
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            kind("listen 1935\nmax_connections 10;"),
            (
                Some(1),
                SrsErrorKind::Unterminated {
                    name: "listen".into()
                }
            )
        );
        assert_eq!(
            kind("a;\nlisten 1935"),
            (
                Some(2),
                SrsErrorKind::Unterminated {
                    name: "listen".into()
                }
            )
        );
        assert_eq!(kind("a;\n;"), (Some(2), SrsErrorKind::Empty(';')));
        assert_eq!(kind("{ a; }"), (Some(1), SrsErrorKind::Empty('{')));
        assert_eq!(kind("a;\n}\n"), (Some(2), SrsErrorKind::UnexpectedClose));
        assert_eq!(
            kind("v {\n a b }"),
            (Some(2), SrsErrorKind::UnexpectedClose)
        );
        assert_eq!(
            kind("x;\nvhost v {\n  hls {\n  }\n"),
            (
                Some(5),
                SrsErrorKind::UnclosedBlock {
                    name: "vhost".into(),
                    opened: 2
                }
            )
        );
        assert_eq!(
            kind("a \"b\nc\";"),
            (Some(1), SrsErrorKind::UnterminatedQuote)
        );
        assert_eq!(kind("a 'b"), (Some(1), SrsErrorKind::UnterminatedQuote));
        assert_eq!(kind("a \"b\"c;"), (Some(1), SrsErrorKind::AfterQuote('c')));
    }

    #[test]
    fn errors_display_file_and_line() {
        let e = parse("listen 1935", "srs.conf").expect_err("unterminated");
        assert_eq!(
            e.to_string(),
            "srs.conf:1: directive 'listen' is not ended by ';' or '{' on its line"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = parse(&text, "p.conf");
        }

        #[test]
        fn config_like_text_never_panics(
            text in proptest::collection::vec(
                prop_oneof![
                    Just(" "), Just("\n"), Just(";"), Just("{"), Just("}"), Just("#"),
                    Just("\""), Just("'"), Just("vhost"), Just("on"), Just("\t"), Just("é"),
                ],
                0..64,
            )
        ) {
            let text = text.concat();
            if let Ok(tree) = parse(&text, "p.conf") {
                // What parses keeps its lines within the text.
                let lines = text.lines().count().max(1);
                fn check(tree: &[Directive], lines: usize) {
                    for d in tree {
                        assert!(d.line >= 1 && d.line <= lines, "{d:?}");
                        assert!(!d.name.is_empty());
                        check(d.children(), lines);
                    }
                }
                check(&tree, lines);
            }
        }
    }
}
