//! AMF0, the value encoding RTMP uses for commands (`connect`, `publish`,
//! `onStatus`, ...) and for `onMetaData`.
//!
//! Only the markers that real RTMP peers send are modelled; the Flash-only
//! ones (movie clip, reference, record set, XML document, typed object,
//! AVM+ switch) are rejected with [`Amf0Error::Unsupported`] so a caller can
//! tell "valid but unsupported" from garbage. Decoding is defensive: nesting
//! is capped at [`MAX_DEPTH`] and counts read from the wire never drive
//! allocation, so hostile input costs at most its own length.

use std::fmt;

const MARKER_NUMBER: u8 = 0x00;
const MARKER_BOOLEAN: u8 = 0x01;
const MARKER_STRING: u8 = 0x02;
const MARKER_OBJECT: u8 = 0x03;
const MARKER_MOVIECLIP: u8 = 0x04;
const MARKER_NULL: u8 = 0x05;
const MARKER_UNDEFINED: u8 = 0x06;
const MARKER_REFERENCE: u8 = 0x07;
const MARKER_ECMA_ARRAY: u8 = 0x08;
const MARKER_OBJECT_END: u8 = 0x09;
const MARKER_STRICT_ARRAY: u8 = 0x0a;
const MARKER_DATE: u8 = 0x0b;
const MARKER_LONG_STRING: u8 = 0x0c;
const MARKER_UNSUPPORTED: u8 = 0x0d;
const MARKER_RECORDSET: u8 = 0x0e;
const MARKER_XML_DOCUMENT: u8 = 0x0f;
const MARKER_TYPED_OBJECT: u8 = 0x10;
const MARKER_AVMPLUS: u8 = 0x11;

/// Deepest nesting of objects and arrays accepted by [`decode`]; real
/// commands nest two or three levels, and the cap keeps recursion on hostile
/// input far from the stack limit.
pub const MAX_DEPTH: usize = 64;

/// Longest string that fits the 16-bit length of a short string (and of
/// every object key).
const SHORT_STRING_MAX: usize = u16::MAX as usize;

/// One AMF0 value.
///
/// Objects and ECMA arrays keep their properties as an ordered list rather
/// than a map: order is visible on the wire, duplicate keys occur in the
/// wild, and the lists are short enough that a linear [`get`](Self::get) is
/// cheaper than hashing.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the Unix epoch; `timezone` is reserved by the spec
    /// (should be 0) but is kept so re-encoding is byte-exact.
    Date {
        millis: f64,
        timezone: i16,
    },
    LongString(String),
}

/// Why a byte sequence is not a supported AMF0 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amf0Error {
    /// The buffer ended inside a value.
    UnexpectedEof,
    /// A type marker outside the AMF0 specification.
    UnknownMarker(u8),
    /// A string or key is not valid UTF-8.
    InvalidUtf8,
    /// Objects or arrays nest deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A marker the specification defines but RTMP does not use
    /// (movie clip, reference, unsupported, record set, XML document,
    /// typed object, AVM+).
    Unsupported(u8),
    /// An object-end marker where a value was expected.
    UnexpectedObjectEnd,
}

impl fmt::Display for Amf0Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amf0Error::UnexpectedEof => f.write_str("AMF0: unexpected end of data"),
            Amf0Error::UnknownMarker(m) => write!(f, "AMF0: unknown type marker 0x{m:02x}"),
            Amf0Error::InvalidUtf8 => f.write_str("AMF0: string is not valid UTF-8"),
            Amf0Error::TooDeep => write!(f, "AMF0: nesting deeper than {MAX_DEPTH}"),
            Amf0Error::Unsupported(m) => write!(f, "AMF0: unsupported type marker 0x{m:02x}"),
            Amf0Error::UnexpectedObjectEnd => {
                f.write_str("AMF0: object-end marker outside an object")
            }
        }
    }
}

impl std::error::Error for Amf0Error {}

impl Amf0Value {
    /// Property lookup on objects and ECMA arrays, which peers use
    /// interchangeably (e.g. `onMetaData` arrives as either); the first
    /// match wins when a key is duplicated.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        match self {
            Amf0Value::Object(pairs) | Amf0Value::EcmaArray(pairs) => {
                pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// Text of a string of either length class, since which one a peer
    /// picks depends only on the length.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// Builds an anonymous object, so command replies read like literals:
    /// `Amf0Value::object([("level", Amf0Value::string("status"))])`.
    pub fn object<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Amf0Value)>) -> Amf0Value {
        Amf0Value::Object(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Builds a string value in the length class the wire format requires,
    /// so callers never produce a short string that cannot be encoded.
    pub fn string(s: impl Into<String>) -> Amf0Value {
        let s = s.into();
        if s.len() > SHORT_STRING_MAX {
            Amf0Value::LongString(s)
        } else {
            Amf0Value::String(s)
        }
    }
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], Amf0Error> {
    if buf.len() < n {
        return Err(Amf0Error::UnexpectedEof);
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

fn take_array<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N], Amf0Error> {
    let mut out = [0u8; N];
    out.copy_from_slice(take(buf, N)?);
    Ok(out)
}

fn read_u8(buf: &mut &[u8]) -> Result<u8, Amf0Error> {
    Ok(take_array::<1>(buf)?[0])
}

fn read_u16(buf: &mut &[u8]) -> Result<u16, Amf0Error> {
    take_array(buf).map(u16::from_be_bytes)
}

fn read_u32(buf: &mut &[u8]) -> Result<u32, Amf0Error> {
    take_array(buf).map(u32::from_be_bytes)
}

fn read_f64(buf: &mut &[u8]) -> Result<f64, Amf0Error> {
    take_array(buf).map(f64::from_be_bytes)
}

fn read_utf8(buf: &mut &[u8], len: usize) -> Result<String, Amf0Error> {
    let bytes = take(buf, len)?;
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| Amf0Error::InvalidUtf8)
}

fn read_short_string(buf: &mut &[u8]) -> Result<String, Amf0Error> {
    let len = read_u16(buf)?;
    read_utf8(buf, usize::from(len))
}

fn read_long_string(buf: &mut &[u8]) -> Result<String, Amf0Error> {
    let len = read_u32(buf)?;
    let len = usize::try_from(len).map_err(|_| Amf0Error::UnexpectedEof)?;
    read_utf8(buf, len)
}

/// Reads `key value` pairs up to the `00 00 09` terminator.
///
/// With `lenient_end` (ECMA arrays) the end of the buffer also terminates
/// the list, because several encoders omit the terminator when the array is
/// the last thing in the message.
fn read_pairs(
    buf: &mut &[u8],
    depth: usize,
    lenient_end: bool,
) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
    let mut pairs = Vec::new();
    loop {
        if lenient_end && buf.is_empty() {
            return Ok(pairs);
        }
        let key = read_short_string(buf)?;
        if key.is_empty() {
            match buf.first() {
                Some(&MARKER_OBJECT_END) => {
                    *buf = buf.get(1..).unwrap_or_default();
                    return Ok(pairs);
                }
                None if lenient_end => return Ok(pairs),
                _ => {}
            }
        }
        let value = decode_at(buf, depth)?;
        pairs.push((key, value));
    }
}

fn decode_at(buf: &mut &[u8], depth: usize) -> Result<Amf0Value, Amf0Error> {
    let marker = read_u8(buf)?;
    let nested = || {
        if depth >= MAX_DEPTH {
            Err(Amf0Error::TooDeep)
        } else {
            Ok(depth + 1)
        }
    };
    Ok(match marker {
        MARKER_NUMBER => Amf0Value::Number(read_f64(buf)?),
        MARKER_BOOLEAN => Amf0Value::Boolean(read_u8(buf)? != 0),
        MARKER_STRING => Amf0Value::String(read_short_string(buf)?),
        MARKER_OBJECT => Amf0Value::Object(read_pairs(buf, nested()?, false)?),
        MARKER_NULL => Amf0Value::Null,
        MARKER_UNDEFINED => Amf0Value::Undefined,
        MARKER_ECMA_ARRAY => {
            let depth = nested()?;
            // The count is advisory: encoders are known to write 0 or a
            // stale value, so the terminator (or end of data) decides.
            read_u32(buf)?;
            Amf0Value::EcmaArray(read_pairs(buf, depth, true)?)
        }
        MARKER_OBJECT_END => return Err(Amf0Error::UnexpectedObjectEnd),
        MARKER_STRICT_ARRAY => {
            let depth = nested()?;
            let count = read_u32(buf)?;
            // No reservation from the wire count: a lying count then
            // fails with EOF after at most the input's own length of work.
            let mut items = Vec::new();
            for _ in 0..count {
                items.push(decode_at(buf, depth)?);
            }
            Amf0Value::StrictArray(items)
        }
        MARKER_DATE => {
            let millis = read_f64(buf)?;
            let timezone = take_array(buf).map(i16::from_be_bytes)?;
            Amf0Value::Date { millis, timezone }
        }
        MARKER_LONG_STRING => Amf0Value::LongString(read_long_string(buf)?),
        MARKER_MOVIECLIP | MARKER_REFERENCE | MARKER_UNSUPPORTED | MARKER_RECORDSET
        | MARKER_XML_DOCUMENT | MARKER_TYPED_OBJECT | MARKER_AVMPLUS => {
            return Err(Amf0Error::Unsupported(marker))
        }
        other => return Err(Amf0Error::UnknownMarker(other)),
    })
}

/// Decodes one value from the front of `buf` and advances it past the
/// value, so a command's fields can be pulled one at a time. On error the
/// slice position is unspecified.
pub fn decode(buf: &mut &[u8]) -> Result<Amf0Value, Amf0Error> {
    decode_at(buf, 0)
}

/// Decodes the back-to-back values that make up an RTMP command or data
/// message body.
///
/// The decoded tree can take roughly twenty times the input's size (a
/// three-byte `00 00 05` property becomes a key `String` plus a value), so
/// callers should bound the size of messages they decode.
pub fn decode_all(mut buf: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut values = Vec::new();
    while !buf.is_empty() {
        values.push(decode(&mut buf)?);
    }
    Ok(values)
}

/// Longest prefix of `s` that is at most `max` bytes and ends on a
/// character boundary.
fn truncated(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

fn write_short_string(s: &str, out: &mut Vec<u8>) {
    let s = truncated(s, SHORT_STRING_MAX);
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn write_long_string(s: &str, out: &mut Vec<u8>) {
    let s = truncated(s, u32::MAX as usize);
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn write_pairs(pairs: &[(String, Amf0Value)], out: &mut Vec<u8>) {
    for (k, v) in pairs {
        write_short_string(k, out);
        encode(v, out);
    }
    out.extend_from_slice(&[0, 0, MARKER_OBJECT_END]);
}

/// Appends the encoding of `v` to `out`.
///
/// Encoding cannot fail, so the two things the wire cannot express are
/// resolved here: a `String` longer than 65535 bytes is written as a long
/// string, and an object key longer than that is truncated (at a character
/// boundary). An ECMA array's count is written as its true length, and its
/// terminator is always written.
pub fn encode(v: &Amf0Value, out: &mut Vec<u8>) {
    match v {
        Amf0Value::Number(n) => {
            out.push(MARKER_NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Amf0Value::Boolean(b) => out.extend_from_slice(&[MARKER_BOOLEAN, u8::from(*b)]),
        Amf0Value::String(s) if s.len() > SHORT_STRING_MAX => {
            out.push(MARKER_LONG_STRING);
            write_long_string(s, out);
        }
        Amf0Value::String(s) => {
            out.push(MARKER_STRING);
            write_short_string(s, out);
        }
        Amf0Value::Object(pairs) => {
            out.push(MARKER_OBJECT);
            write_pairs(pairs, out);
        }
        Amf0Value::Null => out.push(MARKER_NULL),
        Amf0Value::Undefined => out.push(MARKER_UNDEFINED),
        Amf0Value::EcmaArray(pairs) => {
            out.push(MARKER_ECMA_ARRAY);
            let count = u32::try_from(pairs.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&count.to_be_bytes());
            write_pairs(pairs, out);
        }
        Amf0Value::StrictArray(items) => {
            out.push(MARKER_STRICT_ARRAY);
            // More than u32::MAX elements (over 100 GiB of values) cannot
            // be expressed on the wire; saturating keeps encode infallible.
            let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&count.to_be_bytes());
            for item in items {
                encode(item, out);
            }
        }
        Amf0Value::Date { millis, timezone } => {
            out.push(MARKER_DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&timezone.to_be_bytes());
        }
        Amf0Value::LongString(s) => {
            out.push(MARKER_LONG_STRING);
            write_long_string(s, out);
        }
    }
}

/// Encodes a whole command or data message body.
pub fn encode_all(vs: &[Amf0Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in vs {
        encode(v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Body of the `connect` command ffmpeg 5.1 (Lavf59.27.100) sends when
    /// publishing to rtmp://127.0.0.1:19351/live/stream, captured off the
    /// wire and de-chunked.
    const FFMPEG_CONNECT: &str =
        "020007636f6e6e656374003ff00000000000000300036170700200046c6976650004\
        7479706502000a6e6f6e707269766174650008666c617368566572020024464d4c452f332e302028636f6d7061\
        7469626c653b204c61766635392e32372e313030290005746355726c02001b72746d703a2f2f3132372e302e30\
        2e313a31393335312f6c697665000009";

    /// `onMetaData` script tag body written by ffmpeg's FLV muxer
    /// (640x360 H.264 + 44.1 kHz stereo AAC); its top level is an ECMA array.
    const FFMPEG_ON_METADATA: &str = "02000a6f6e4d65746144617461080000000d00086475726174696f6e003ff1\
        47ae147ae148000577696474680040840000000000000006686569676874004076800000000000000d766964656f\
        646174617261746500000000000000000000096672616d6572617465004039000000000000000c766964656f636f\
        646563696400401c000000000000000d617564696f646174617261746500405f400000000000000f617564696f73\
        616d706c65726174650040e5888000000000000f617564696f73616d706c6573697a6500403000000000000000\
        0673746572656f0101000c617564696f636f64656369640040240000000000000007656e636f64657202000d4c61\
        766635392e32372e313030000866696c6573697a650040da8a8000000000000009";

    #[test]
    fn decodes_ffmpeg_connect() {
        let bytes = hex(FFMPEG_CONNECT);
        let vs = decode_all(&bytes).unwrap();
        let expected = vec![
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([
                ("app", Amf0Value::string("live")),
                ("type", Amf0Value::string("nonprivate")),
                (
                    "flashVer",
                    Amf0Value::string("FMLE/3.0 (compatible; Lavf59.27.100)"),
                ),
                ("tcUrl", Amf0Value::string("rtmp://127.0.0.1:19351/live")),
            ]),
        ];
        assert_eq!(vs, expected);
        assert_eq!(vs[2].get("app").and_then(Amf0Value::as_str), Some("live"));
        assert_eq!(encode_all(&vs), bytes);
    }

    #[test]
    fn decodes_ffmpeg_on_metadata() {
        let bytes = hex(FFMPEG_ON_METADATA);
        let vs = decode_all(&bytes).unwrap();
        assert_eq!(vs.len(), 2);
        assert_eq!(vs[0].as_str(), Some("onMetaData"));
        let meta = &vs[1];
        assert!(matches!(meta, Amf0Value::EcmaArray(p) if p.len() == 13));
        assert_eq!(meta.get("width").and_then(Amf0Value::as_f64), Some(640.0));
        assert_eq!(meta.get("height").and_then(Amf0Value::as_f64), Some(360.0));
        assert_eq!(meta.get("stereo").and_then(Amf0Value::as_bool), Some(true));
        assert_eq!(
            meta.get("encoder").and_then(Amf0Value::as_str),
            Some("Lavf59.27.100")
        );
        assert_eq!(meta.get("missing"), None);
        assert_eq!(encode_all(&vs), bytes);
    }

    #[test]
    fn scalar_encodings() {
        let cases: Vec<(Amf0Value, &str)> = vec![
            (Amf0Value::Number(1.5), "003ff8000000000000"),
            (Amf0Value::Boolean(true), "0101"),
            (Amf0Value::Boolean(false), "0100"),
            (Amf0Value::string("ab"), "0200026162"),
            (Amf0Value::Null, "05"),
            (Amf0Value::Undefined, "06"),
            (Amf0Value::Object(vec![]), "03000009"),
            (Amf0Value::EcmaArray(vec![]), "0800000000000009"),
            (
                Amf0Value::StrictArray(vec![Amf0Value::Null, Amf0Value::Boolean(true)]),
                "0a00000002050101",
            ),
            (
                Amf0Value::Date {
                    millis: 0.0,
                    timezone: -1,
                },
                "0b0000000000000000ffff",
            ),
            (Amf0Value::LongString("x".into()), "0c0000000178"),
        ];
        for (v, h) in cases {
            let mut out = Vec::new();
            encode(&v, &mut out);
            assert_eq!(out, hex(h), "{v:?}");
            let mut slice = &out[..];
            assert_eq!(decode(&mut slice).unwrap(), v);
            assert!(slice.is_empty());
        }
    }

    #[test]
    fn decode_advances_one_value_at_a_time() {
        let bytes = hex("0505003ff0000000000000");
        let mut s = &bytes[..];
        assert_eq!(decode(&mut s).unwrap(), Amf0Value::Null);
        assert_eq!(s.len(), 10);
        assert_eq!(decode(&mut s).unwrap(), Amf0Value::Null);
        assert_eq!(decode(&mut s).unwrap(), Amf0Value::Number(1.0));
        assert!(s.is_empty());
        assert_eq!(decode(&mut s), Err(Amf0Error::UnexpectedEof));
    }

    #[test]
    fn ecma_array_tolerates_bad_count_and_missing_terminator() {
        // Count says 5 but there is one pair and no terminator.
        let bytes = hex("08000000050001610101");
        let v = decode_all(&bytes).unwrap();
        assert_eq!(
            v,
            vec![Amf0Value::EcmaArray(vec![(
                "a".into(),
                Amf0Value::Boolean(true)
            )])]
        );
        // Count 0, one pair, terminator present, followed by another value.
        let bytes = hex("08000000000001610101000009 05");
        let v = decode_all(&bytes).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1], Amf0Value::Null);
        // An empty key with no terminator at the very end.
        let bytes = hex("0800000001000161010100 00");
        assert_eq!(decode_all(&bytes).unwrap().len(), 1);
    }

    #[test]
    fn object_requires_terminator() {
        assert_eq!(
            decode_all(&hex("0300016101")),
            Err(Amf0Error::UnexpectedEof)
        );
        assert_eq!(
            decode_all(&hex("03000161010100")),
            Err(Amf0Error::UnexpectedEof)
        );
    }

    #[test]
    fn empty_key_with_a_value_is_a_property() {
        let v = Amf0Value::object([("", Amf0Value::Null)]);
        let bytes = encode_all(std::slice::from_ref(&v));
        assert_eq!(decode_all(&bytes).unwrap(), vec![v]);
    }

    #[test]
    fn rejects_bad_markers_and_utf8() {
        assert_eq!(decode_all(&[0x09]), Err(Amf0Error::UnexpectedObjectEnd));
        assert_eq!(decode_all(&[0x12]), Err(Amf0Error::UnknownMarker(0x12)));
        for m in [4u8, 7, 13, 14, 15, 16, 17] {
            assert_eq!(decode_all(&[m, 0, 0]), Err(Amf0Error::Unsupported(m)));
        }
        assert_eq!(decode_all(&hex("020001ff")), Err(Amf0Error::InvalidUtf8));
        assert_eq!(
            decode_all(&hex("0300010000")),
            Err(Amf0Error::UnexpectedEof)
        );
    }

    #[test]
    fn nesting_is_capped() {
        let mut ok = Vec::new();
        for _ in 0..MAX_DEPTH {
            ok.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
        }
        ok.push(0x05);
        assert!(decode_all(&ok).is_ok());
        let mut deep = vec![0x0a, 0, 0, 0, 1];
        deep.extend_from_slice(&ok);
        assert_eq!(decode_all(&deep), Err(Amf0Error::TooDeep));
        // Far deeper than any stack could take by plain recursion.
        let hostile: Vec<u8> = [0x03u8, 0, 1, b'k'].repeat(100_000);
        assert_eq!(decode_all(&hostile), Err(Amf0Error::TooDeep));
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        assert_eq!(
            decode_all(&hex("0affffffff")),
            Err(Amf0Error::UnexpectedEof)
        );
        assert_eq!(
            decode_all(&hex("08ffffffff")).unwrap(),
            vec![Amf0Value::EcmaArray(vec![])]
        );
        assert_eq!(
            decode_all(&hex("0cffffffff41")),
            Err(Amf0Error::UnexpectedEof)
        );
    }

    #[test]
    fn long_strings_switch_class() {
        let long = "x".repeat(70_000);
        assert!(matches!(
            Amf0Value::string(long.clone()),
            Amf0Value::LongString(_)
        ));
        assert!(matches!(Amf0Value::string("short"), Amf0Value::String(_)));
        // A hand-built oversized short string is still encodable.
        let bytes = encode_all(&[Amf0Value::String(long.clone())]);
        assert_eq!(bytes[0], MARKER_LONG_STRING);
        assert_eq!(
            decode_all(&bytes).unwrap(),
            vec![Amf0Value::LongString(long.clone())]
        );
        // Oversized keys are cut at a character boundary.
        let key = "é".repeat(40_000);
        let bytes = encode_all(&[Amf0Value::object([(key, Amf0Value::Null)])]);
        let v = decode_all(&bytes).unwrap();
        let Amf0Value::Object(pairs) = &v[0] else {
            panic!("not an object")
        };
        assert_eq!(pairs[0].0.len(), 65_534);
    }

    #[test]
    fn accessors() {
        assert_eq!(Amf0Value::LongString("a".into()).as_str(), Some("a"));
        assert_eq!(Amf0Value::Null.as_str(), None);
        assert_eq!(Amf0Value::Null.as_f64(), None);
        assert_eq!(Amf0Value::Null.as_bool(), None);
        assert_eq!(Amf0Value::Null.get("a"), None);
        let dup = Amf0Value::EcmaArray(vec![
            ("a".into(), Amf0Value::Number(1.0)),
            ("a".into(), Amf0Value::Number(2.0)),
        ]);
        assert_eq!(dup.get("a"), Some(&Amf0Value::Number(1.0)));
    }

    #[test]
    fn errors_display() {
        assert!(Amf0Error::UnknownMarker(0x42).to_string().contains("0x42"));
        assert!(Amf0Error::TooDeep.to_string().contains("64"));
    }

    fn arb_value() -> impl Strategy<Value = Amf0Value> {
        let key = "[a-zA-Z0-9_ é]{0,12}";
        let leaf = prop_oneof![
            any::<f64>().prop_map(Amf0Value::Number),
            any::<bool>().prop_map(Amf0Value::Boolean),
            ".{0,20}".prop_map(Amf0Value::String),
            Just(Amf0Value::Null),
            Just(Amf0Value::Undefined),
            (any::<f64>(), any::<i16>())
                .prop_map(|(millis, timezone)| Amf0Value::Date { millis, timezone }),
            ".{0,20}".prop_map(Amf0Value::LongString),
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec((key, inner.clone()), 0..8).prop_map(Amf0Value::Object),
                prop::collection::vec((key, inner.clone()), 0..8).prop_map(Amf0Value::EcmaArray),
                prop::collection::vec(inner, 0..8).prop_map(Amf0Value::StrictArray),
            ]
        })
    }

    /// Structural equality that treats NaN as equal to itself by comparing
    /// the exact bits of every float.
    fn same(a: &Amf0Value, b: &Amf0Value) -> bool {
        use Amf0Value as V;
        let pairs = |x: &[(String, V)], y: &[(String, V)]| {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        };
        match (a, b) {
            (V::Number(x), V::Number(y)) => x.to_bits() == y.to_bits(),
            (
                V::Date {
                    millis: x,
                    timezone: tx,
                },
                V::Date {
                    millis: y,
                    timezone: ty,
                },
            ) => x.to_bits() == y.to_bits() && tx == ty,
            (V::Object(x), V::Object(y)) | (V::EcmaArray(x), V::EcmaArray(y)) => pairs(x, y),
            (V::StrictArray(x), V::StrictArray(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            _ => a == b,
        }
    }

    proptest! {
        #[test]
        fn round_trip(vs in prop::collection::vec(arb_value(), 0..4)) {
            let bytes = encode_all(&vs);
            let back = decode_all(&bytes).unwrap();
            prop_assert_eq!(back.len(), vs.len());
            for (a, b) in vs.iter().zip(&back) {
                prop_assert!(same(a, b), "{:?} != {:?}", a, b);
            }
            prop_assert_eq!(encode_all(&back), bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_all(&bytes);
            let mut s = &bytes[..];
            let _ = decode(&mut s);
        }

        #[test]
        fn mutated_encodings_never_panic(
            vs in prop::collection::vec(arb_value(), 1..3),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = encode_all(&vs);
            for (i, b) in flips {
                let i = i.index(bytes.len());
                bytes[i] = b;
            }
            let _ = decode_all(&bytes);
        }
    }
}
