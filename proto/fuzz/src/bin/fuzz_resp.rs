//! Fuzzes the RESP2 reply decoder with mutations of real Redis replies:
//! it must return, never panic, never claim more bytes than it was given,
//! and anything it decodes must encode to bytes that decode to it again.

use ringcast_proto::resp::{decode, encode_value};

fn main() {
    let seeds: Vec<Vec<u8>> = [
        &b"+OK\r\n"[..],
        b"-ERR unknown command 'FOO'\r\n",
        b":1\r\n",
        b"$-1\r\n",
        b"$43\r\n{\"ip\":\"127.0.0.1\",\"port\":1935,\"vhost\":\"v\"}\r\n",
        b"*3\r\n+OK\r\n$-1\r\n*2\r\n:0\r\n$1\r\nx\r\n",
        b"*-1\r\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    ringcast_fuzz::run("fuzz_resp", &seeds, |data| {
        if let Ok(Some((v, used))) = decode(data) {
            assert!(used <= data.len());
            let mut again = Vec::new();
            encode_value(&v, &mut again);
            assert_eq!(decode(&again), Ok(Some((v, again.len()))));
        }
    });
}
