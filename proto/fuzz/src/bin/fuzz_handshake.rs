//! Fuzz target for the RTMP handshake: arbitrary bytes, fed in uneven
//! pieces, to both the server and the client state machines must only ever
//! produce output or typed errors, and whatever follows a completed
//! handshake must stay in the input buffer.

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::SeedableRng;
use ringcast_proto::rtmp::handshake::{ClientHandshake, ServerHandshake, HANDSHAKE_SIZE};

/// Handshake bytes come from a fixed seed so a replayed input runs exactly
/// as it did when it crashed.
fn random() -> StdRng {
    StdRng::seed_from_u64(0x5eed)
}

/// Input layout: byte 0 picks the feeding step and client mode; the rest is
/// what the peer sends.
fn target(data: &[u8]) {
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(sel >> 1).max(1) * 13;
    let mut server = ServerHandshake::new();
    let mut client = ClientHandshake::new(sel & 1 == 1);
    let mut random = random();
    let (mut in_s, mut in_c) = (BytesMut::new(), BytesMut::new());
    let (mut out_s, mut out_c) = (Vec::new(), Vec::new());
    let (mut server_state, mut client_state) = (Ok(false), Ok(false));
    for piece in stream.chunks(step) {
        in_s.extend_from_slice(piece);
        in_c.extend_from_slice(piece);
        if server_state.is_ok() {
            server_state = server.process(&mut in_s, &mut out_s, &mut random);
        }
        if client_state.is_ok() {
            client_state = client.process(&mut in_c, &mut out_c, &mut random);
        }
    }
    // Both sides consume exactly 1 + 2 * 1536 bytes when they finish.
    let handshake_len = 1 + 2 * HANDSHAKE_SIZE;
    if let Ok(true) = server_state {
        assert_eq!(in_s.len(), stream.len() - handshake_len);
        assert_eq!(out_s.len(), handshake_len);
    }
    if let Ok(true) = client_state {
        assert_eq!(in_c.len(), stream.len() - handshake_len);
        assert_eq!(out_c.len(), handshake_len);
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let mut random = random();
    for complex in [false, true] {
        // A genuine client's C0C1 (+ C2) for the server side, and a genuine
        // server's S0S1S2 for the client side.
        let mut client = ClientHandshake::new(complex);
        let mut c0c1 = Vec::new();
        client.start(&mut c0c1, &mut random);
        let mut server = ServerHandshake::new();
        let mut s0s1s2 = Vec::new();
        let _ = server.process(&mut BytesMut::from(&c0c1[..]), &mut s0s1s2, &mut random);
        let mut seed = vec![u8::from(complex)];
        seed.extend_from_slice(&c0c1);
        seed.extend_from_slice(&s0s1s2[1..1 + HANDSHAKE_SIZE]);
        seed.extend_from_slice(b"\x03first chunk");
        seeds.push(seed);
        let mut seed = vec![0x40 | u8::from(complex)];
        seed.extend_from_slice(&s0s1s2);
        seeds.push(seed);
    }
    seeds.push(vec![0, 6]);
    seeds
}

fn main() {
    ringcast_fuzz::run("handshake", &seeds(), target);
}
