//! RESP2, the Redis serialization protocol, as pure functions over byte
//! buffers: commands are encoded as arrays of bulk strings, replies are
//! decoded one value at a time from whatever has arrived. The engine's
//! stream registry speaks it to a Redis server; keeping it sans-IO lets the
//! parser be property- and fuzz-tested on its own.
//!
//! The decoder trusts nothing it reads: lengths, nesting and line sizes are
//! bounded so a broken or hostile server costs a typed error, never a panic
//! or an unbounded allocation.

use std::fmt;

/// Largest bulk string accepted: registry values are a few hundred bytes.
pub const MAX_BULK: usize = 16 * 1024 * 1024;
/// Most elements accepted in one array.
pub const MAX_ARRAY: usize = 1024 * 1024;
/// Deepest nesting of arrays accepted.
pub const MAX_DEPTH: usize = 8;
/// Longest simple line (status, error, integer, length) accepted.
pub const MAX_LINE: usize = 64 * 1024;

/// One RESP2 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK`: a status line.
    Simple(String),
    /// `-ERR ...`: the server refused the command.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$n` bulk string; `None` is the nil reply (`$-1`).
    Bulk(Option<Vec<u8>>),
    /// `*n` array; `None` is the nil array (`*-1`).
    Array(Option<Vec<Value>>),
}

/// Why a reply could not be decoded; the connection cannot be trusted after
/// any of these and should be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespError {
    /// The first byte of a value is not one of `+ - : $ *`.
    UnknownType(u8),
    /// A length or integer line is not a decimal number in range.
    BadNumber,
    /// A bulk string is not followed by CRLF.
    MissingCrlf,
    /// A length, line or nesting depth over the limits above.
    TooLarge(&'static str),
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::UnknownType(b) => write!(f, "RESP: unknown value type byte 0x{b:02x}"),
            RespError::BadNumber => f.write_str("RESP: malformed number"),
            RespError::MissingCrlf => f.write_str("RESP: bulk string not terminated by CRLF"),
            RespError::TooLarge(what) => write!(f, "RESP: {what} over the limit"),
        }
    }
}

impl std::error::Error for RespError {}

/// Appends a command (`SET key value ...`) as an array of bulk strings, the
/// form every Redis server accepts.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        put_bulk(a.as_ref(), out);
    }
}

fn put_bulk(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// Appends any value in its wire form (what a server sends); for fake
/// servers in tests and for checking the decoder against the encoder.
pub fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Simple(s) => {
            out.push(b'+');
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Value::Error(s) => {
            out.push(b'-');
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Value::Integer(i) => out.extend_from_slice(format!(":{i}\r\n").as_bytes()),
        Value::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
        Value::Bulk(Some(b)) => put_bulk(b, out),
        Value::Array(None) => out.extend_from_slice(b"*-1\r\n"),
        Value::Array(Some(items)) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for i in items {
                encode_value(i, out);
            }
        }
    }
}

/// Decodes the first complete value in `buf`: `Ok(Some((value, bytes
/// used)))`, `Ok(None)` when more bytes are needed, or an error when the
/// bytes cannot be RESP2.
pub fn decode(buf: &[u8]) -> Result<Option<(Value, usize)>, RespError> {
    decode_at(buf, 0, 0)
}

fn decode_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Value, usize)>, RespError> {
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    if !matches!(kind, b'+' | b'-' | b':' | b'$' | b'*') {
        return Err(RespError::UnknownType(kind));
    }
    let Some((line, next)) = line(buf, at + 1)? else {
        return Ok(None);
    };
    match kind {
        b'+' => Ok(Some((Value::Simple(text(line)), next))),
        b'-' => Ok(Some((Value::Error(text(line)), next))),
        b':' => Ok(Some((Value::Integer(number(line)?), next))),
        b'$' => {
            let Some(n) = length(line, MAX_BULK, "bulk length")? else {
                return Ok(Some((Value::Bulk(None), next)));
            };
            let end = next + n;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(RespError::MissingCrlf);
            }
            Ok(Some((Value::Bulk(Some(buf[next..end].to_vec())), end + 2)))
        }
        _ => {
            let Some(n) = length(line, MAX_ARRAY, "array length")? else {
                return Ok(Some((Value::Array(None), next)));
            };
            if depth >= MAX_DEPTH {
                return Err(RespError::TooLarge("array nesting"));
            }
            // every element takes at least 3 bytes: never reserve for
            // elements that have not arrived
            let mut items = Vec::with_capacity(n.min((buf.len() - next) / 3));
            let mut pos = next;
            for _ in 0..n {
                let Some((v, after)) = decode_at(buf, pos, depth + 1)? else {
                    return Ok(None);
                };
                items.push(v);
                pos = after;
            }
            Ok(Some((Value::Array(Some(items)), pos)))
        }
    }
}

/// The line starting at `from` (without CRLF) and where the next one
/// starts; `None` until its CRLF has arrived.
fn line(buf: &[u8], from: usize) -> Result<Option<(&[u8], usize)>, RespError> {
    let rest = buf.get(from..).unwrap_or_default();
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(i) if i > MAX_LINE => Err(RespError::TooLarge("line")),
        Some(i) => Ok(Some((&rest[..i], from + i + 2))),
        None if rest.len() > MAX_LINE => Err(RespError::TooLarge("line")),
        None => Ok(None),
    }
}

fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

fn number(line: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RespError::BadNumber)
}

/// A length line: `None` for the nil form `-1`.
fn length(line: &[u8], max: usize, what: &'static str) -> Result<Option<usize>, RespError> {
    match number(line)? {
        -1 => Ok(None),
        n if n < 0 => Err(RespError::BadNumber),
        n => match usize::try_from(n) {
            Ok(n) if n <= max => Ok(Some(n)),
            _ => Err(RespError::TooLarge(what)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(Some(s.as_bytes().to_vec()))
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&["SET", "k", "v\r\n", "PX", "3000"], &mut out);
        assert_eq!(
            out,
            b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$2\r\nPX\r\n$4\r\n3000\r\n"
        );
    }

    #[test]
    fn replies_decode() {
        let cases: [(&[u8], Value); 8] = [
            (b"+OK\r\n", Value::Simple("OK".into())),
            (b"-ERR wrong\r\n", Value::Error("ERR wrong".into())),
            (b":-42\r\n", Value::Integer(-42)),
            (b"$-1\r\n", Value::Bulk(None)),
            (b"$0\r\n\r\n", bulk("")),
            (b"$5\r\nhe\r\no\r\n", bulk("he\r\no")),
            (b"*-1\r\n", Value::Array(None)),
            (
                b"*3\r\n:1\r\n*1\r\n$1\r\nx\r\n$-1\r\n",
                Value::Array(Some(vec![
                    Value::Integer(1),
                    Value::Array(Some(vec![bulk("x")])),
                    Value::Bulk(None),
                ])),
            ),
        ];
        for (wire, want) in cases {
            assert_eq!(decode(wire), Ok(Some((want, wire.len()))), "{wire:?}");
        }
        // two pipelined replies: the first is taken, its length told
        assert_eq!(
            decode(b"+OK\r\n:1\r\n"),
            Ok(Some((Value::Simple("OK".into()), 5)))
        );
    }

    #[test]
    fn partial_replies_wait_for_more() {
        for wire in [
            &b""[..],
            b"+O",
            b"+OK\r",
            b"$5\r\nhel",
            b"$5\r\nhello\r",
            b"*2\r\n:1\r\n",
        ] {
            assert_eq!(decode(wire), Ok(None), "{wire:?}");
        }
    }

    #[test]
    fn broken_replies_are_typed_errors() {
        assert_eq!(decode(b"?x\r\n"), Err(RespError::UnknownType(b'?')));
        assert_eq!(decode(b":12a\r\n"), Err(RespError::BadNumber));
        assert_eq!(decode(b"$-2\r\n"), Err(RespError::BadNumber));
        assert_eq!(decode(b"$3\r\nabcd\r\n"), Err(RespError::MissingCrlf));
        assert_eq!(
            decode(b"$99999999999\r\n"),
            Err(RespError::TooLarge("bulk length"))
        );
        assert_eq!(
            decode(b"*9999999999\r\n"),
            Err(RespError::TooLarge("array length"))
        );
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1) + ":1\r\n";
        assert_eq!(
            decode(deep.as_bytes()),
            Err(RespError::TooLarge("array nesting"))
        );
        let long = vec![b'+'; MAX_LINE + 2];
        assert_eq!(decode(&long), Err(RespError::TooLarge("line")));
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            "[ -~]{0,20}".prop_map(Value::Simple),
            "[ -~]{0,20}".prop_map(Value::Error),
            any::<i64>().prop_map(Value::Integer),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))
                .prop_map(Value::Bulk),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            proptest::option::of(proptest::collection::vec(inner, 0..6)).prop_map(Value::Array)
        })
    }

    proptest! {
        #[test]
        fn every_value_round_trips_and_every_prefix_waits(v in value()) {
            let mut wire = Vec::new();
            encode_value(&v, &mut wire);
            prop_assert_eq!(decode(&wire), Ok(Some((v.clone(), wire.len()))));
            for cut in 0..wire.len() {
                prop_assert_eq!(decode(&wire[..cut]), Ok(None));
            }
        }

        #[test]
        fn commands_decode_as_bulk_arrays(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30), 1..6)) {
            let mut wire = Vec::new();
            encode_command(&args, &mut wire);
            let want = Value::Array(Some(args.into_iter().map(|a| Value::Bulk(Some(a))).collect()));
            prop_assert_eq!(decode(&wire), Ok(Some((want, wire.len()))));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(Some((_, used))) = decode(&bytes) {
                prop_assert!(used <= bytes.len());
            }
        }
    }
}
