//! Fuzzes AMF0 decoding: any input must decode or fail with a typed error,
//! and whatever decodes must re-encode to bytes that decode to the same
//! encoding again (so encode/decode agree on everything the decoder
//! accepts).

use ringcast_proto::rtmp::amf0::{self, Amf0Value};

fn main() {
    let seeds = vec![
        amf0::encode_all(&[
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([
                ("app", Amf0Value::string("live")),
                ("type", Amf0Value::string("nonprivate")),
                (
                    "flashVer",
                    Amf0Value::string("FMLE/3.0 (compatible; Lavf59.27.100)"),
                ),
                ("tcUrl", Amf0Value::string("rtmp://127.0.0.1:1935/live")),
            ]),
        ]),
        amf0::encode_all(&[
            Amf0Value::string("onMetaData"),
            Amf0Value::EcmaArray(vec![
                ("width".into(), Amf0Value::Number(640.0)),
                ("stereo".into(), Amf0Value::Boolean(true)),
                ("encoder".into(), Amf0Value::LongString("Lavf".into())),
            ]),
        ]),
        amf0::encode_all(&[
            Amf0Value::StrictArray(vec![Amf0Value::Null, Amf0Value::Undefined]),
            Amf0Value::Date {
                millis: 1.7e12,
                timezone: 0,
            },
        ]),
        // ECMA array without its terminator, as some encoders send it.
        vec![8, 0, 0, 0, 9, 0, 1, b'a', 1, 1],
    ];
    ringcast_fuzz::run("fuzz_amf0", &seeds, |data| {
        if let Ok(values) = amf0::decode_all(data) {
            let bytes = amf0::encode_all(&values);
            let again = amf0::decode_all(&bytes).expect("re-encoded AMF0 must decode");
            assert_eq!(amf0::encode_all(&again), bytes, "AMF0 encoding not stable");
        }
    });
}
