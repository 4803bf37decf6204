//! RTMP handshake, server and client side, simple and complex.
//!
//! The simple handshake is the one in the RTMP specification: random C1/S1,
//! each side echoes the other's packet. The complex ("digest") handshake is
//! the undocumented Flash variant that Flash Player, FFmpeg and most
//! encoders attempt first: C1 and S1 carry an HMAC-SHA256 digest at a
//! position derived from the packet itself, and C2/S2 are signed with a key
//! derived from the peer's digest. Some players (Flash among them) refuse to
//! play H.264/AAC from a server that answers a complex C1 with a simple S1,
//! so the server answers in kind whenever it can verify the client's digest
//! and falls back to the simple handshake otherwise.
//!
//! Both sides are sans-IO state machines: feed received bytes, collect bytes
//! to send. Bytes after the handshake stay in the input buffer for the chunk
//! decoder. The random bytes of C1/S1 and C2/S2 come from a generator the
//! caller passes in ([`ThreadRandom`] in production), so tests can seed one
//! and get the same bytes on every run.

use bytes::{Buf, BytesMut};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

/// Size of C1, C2, S1 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;
/// The only C0/S0 version we speak (6 and 8 are encrypted RTMPE).
const RTMP_VERSION: u8 = 3;
/// Length of an HMAC-SHA256 digest.
const DIGEST_LEN: usize = 32;
/// Bytes of a C2/S2 covered by its signature (the signature fills the rest).
const SIGNED_LEN: usize = HANDSHAKE_SIZE - DIGEST_LEN;
/// Version field we put in a complex C1 (Flash Player 9.0.124.2, as FFmpeg does).
const CLIENT_VERSION: [u8; 4] = [9, 0, 124, 2];
/// Version field we put in a complex S1. FFmpeg only checks the S1 digest when
/// the first byte is at least 3, so a real version also proves ours is right.
const SERVER_VERSION: [u8; 4] = [3, 5, 1, 1];

/// The 32 bytes both well-known keys end with.
const KEY_SUFFIX: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
/// Text part of the Flash Player key: signs C1 (text only) and, in full, C2.
const FP_KEY_TEXT: &[u8; 30] = b"Genuine Adobe Flash Player 001";
/// Text part of the Flash Media Server key: signs S1 (text only) and, in full, S2.
const FMS_KEY_TEXT: &[u8; 36] = b"Genuine Adobe Flash Media Server 001";

/// `rand::thread_rng()` as a value a session can own and move between
/// threads (`ThreadRng` itself cannot leave its thread): each call draws
/// from the generator of the thread it runs on. What every real connection
/// uses; tests pass a seeded generator instead.
#[derive(Debug, Default, Clone, Copy)]
pub struct ThreadRandom;

impl RngCore for ThreadRandom {
    fn next_u32(&mut self) -> u32 {
        rand::thread_rng().next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        rand::thread_rng().next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand::thread_rng().fill_bytes(dest)
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        rand::thread_rng().try_fill_bytes(dest)
    }
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// C0/S0 asked for a version other than 3 (6 and 8 are encrypted RTMPE,
    /// which we do not implement).
    UnsupportedVersion(u8),
    /// Client side: the server proved it speaks the complex handshake (valid
    /// S1 digest) but S2 is neither correctly signed nor an echo of C1.
    /// A server with an unverifiable S1 is accepted with the simple handshake.
    DigestMismatch,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "unsupported RTMP handshake version {v} (only 3 is supported)"
                )
            }
            HandshakeError::DigestMismatch => write!(f, "RTMP handshake S2 signature mismatch"),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Where the digest sits in a complex C1/S1. After time and version, the
/// packet holds two 764-byte blocks, a key block and a digest block, in
/// either order; the digest block starts with four bytes whose sum gives the
/// digest's offset within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// Digest block first: offset bytes 8..12 (what FFmpeg and nginx-rtmp send).
    DigestFirst,
    /// Key block first: offset bytes 772..776 (SRS's "schema 0").
    KeyFirst,
}

impl Scheme {
    /// Order in which a receiver tries the schemes, as nginx-rtmp and SRS do.
    const ALL: [Scheme; 2] = [Scheme::KeyFirst, Scheme::DigestFirst];

    /// Position of the digest in `packet`. Always leaves room for 32 bytes.
    fn digest_pos(self, packet: &[u8; HANDSHAKE_SIZE]) -> usize {
        let base = match self {
            Scheme::DigestFirst => 8,
            Scheme::KeyFirst => 772,
        };
        let sum: usize = packet[base..base + 4].iter().map(|&b| usize::from(b)).sum();
        base + 4 + sum % 728
    }
}

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of the concatenation of `parts`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC's first step, done here so the infallible block-sized-key
    // constructor can be used: longer keys are hashed, shorter ones padded.
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..DIGEST_LEN].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <HmacSha256 as hmac::digest::KeyInit>::new(&block.into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A well-known key followed by the shared 32-byte suffix.
fn full_key<const N: usize>(text: &[u8; N]) -> Vec<u8> {
    [&text[..], &KEY_SUFFIX[..]].concat()
}

/// Digest of a C1/S1 with the digest at `pos`: HMAC over every other byte.
fn packet_digest(packet: &[u8; HANDSHAKE_SIZE], pos: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    hmac_sha256(key, &[&packet[..pos], &packet[pos + DIGEST_LEN..]])
}

/// Finds a valid digest in a C1/S1 signed with `key`, trying both schemes.
fn find_digest(packet: &[u8; HANDSHAKE_SIZE], key: &[u8]) -> Option<(Scheme, [u8; DIGEST_LEN])> {
    Scheme::ALL.into_iter().find_map(|scheme| {
        let pos = scheme.digest_pos(packet);
        let digest = packet_digest(packet, pos, key);
        (packet[pos..pos + DIGEST_LEN] == digest).then_some((scheme, digest))
    })
}

/// A C1/S1: zero time, the given version, random bytes, and, for a non-zero
/// version, a digest signed with `key` placed by `scheme`. Returns the digest.
fn make_packet1(
    random: &mut dyn RngCore,
    version: [u8; 4],
    scheme: Scheme,
    key: &[u8],
    packet: &mut [u8; HANDSHAKE_SIZE],
) -> [u8; DIGEST_LEN] {
    random.fill_bytes(&mut packet[8..]);
    packet[..4].fill(0);
    packet[4..8].copy_from_slice(&version);
    if version == [0; 4] {
        return [0; DIGEST_LEN];
    }
    let pos = scheme.digest_pos(packet);
    let digest = packet_digest(packet, pos, key);
    packet[pos..pos + DIGEST_LEN].copy_from_slice(&digest);
    digest
}

/// A complex C2/S2: random bytes signed with HMAC(full key, peer's digest).
fn make_packet2(
    random: &mut dyn RngCore,
    full_key: &[u8],
    peer_digest: &[u8; DIGEST_LEN],
) -> [u8; HANDSHAKE_SIZE] {
    let mut packet = [0u8; HANDSHAKE_SIZE];
    random.fill_bytes(&mut packet[..SIGNED_LEN]);
    let signature = packet2_signature(full_key, peer_digest, &packet);
    packet[SIGNED_LEN..].copy_from_slice(&signature);
    packet
}

fn packet2_signature(
    full_key: &[u8],
    peer_digest: &[u8; DIGEST_LEN],
    packet: &[u8; HANDSHAKE_SIZE],
) -> [u8; DIGEST_LEN] {
    let key = hmac_sha256(full_key, &[peer_digest]);
    hmac_sha256(&key, &[&packet[..SIGNED_LEN]])
}

/// Takes one handshake packet off the front of `input`, if it is all there.
fn take_packet(input: &mut BytesMut) -> Option<[u8; HANDSHAKE_SIZE]> {
    let packet: [u8; HANDSHAKE_SIZE] = input.get(..HANDSHAKE_SIZE)?.try_into().ok()?;
    input.advance(HANDSHAKE_SIZE);
    Some(packet)
}

/// Checks a C0/S0 as soon as it arrives, so a wrong protocol fails fast.
fn check_version(input: &BytesMut) -> Result<(), HandshakeError> {
    match input.first() {
        Some(&v) if v != RTMP_VERSION => Err(HandshakeError::UnsupportedVersion(v)),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerStage {
    /// Waiting for C0 and C1.
    C0C1,
    /// S0/S1/S2 sent, waiting for C2.
    C2,
    Done,
}

/// Server side of the handshake: answers C0+C1 with S0+S1+S2 in one write,
/// then waits for C2 (which is not checked: clients sign or echo it
/// inconsistently, and nothing depends on it).
#[derive(Debug)]
pub struct ServerHandshake {
    stage: ServerStage,
    complex: bool,
}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandshake {
    /// A handshake waiting for C0, for a freshly accepted connection.
    pub fn new() -> Self {
        ServerHandshake {
            stage: ServerStage::C0C1,
            complex: false,
        }
    }

    /// Consumes C0/C1/C2 bytes from `input`, appends S0/S1/S2 (random
    /// bytes drawn from `random`) to `out` once C0+C1 are in. Returns
    /// Ok(true) once C2 has been consumed; any bytes after C2 stay in
    /// `input` (they are the first chunks).
    pub fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut Vec<u8>,
        random: &mut dyn RngCore,
    ) -> Result<bool, HandshakeError> {
        if self.stage == ServerStage::C0C1 {
            check_version(input)?;
            if input.len() < 1 + HANDSHAKE_SIZE {
                return Ok(false);
            }
            input.advance(1);
            let Some(c1) = take_packet(input) else {
                return Ok(false);
            };
            self.respond(&c1, out, random);
            self.stage = ServerStage::C2;
        }
        if self.stage == ServerStage::C2 {
            if take_packet(input).is_none() {
                return Ok(false);
            }
            self.stage = ServerStage::Done;
        }
        Ok(true)
    }

    /// Whether the client's C1 carried a valid digest and was answered with
    /// the complex handshake.
    pub fn is_complex(&self) -> bool {
        self.complex
    }

    fn respond(&mut self, c1: &[u8; HANDSHAKE_SIZE], out: &mut Vec<u8>, random: &mut dyn RngCore) {
        let client_digest = if c1[4..8] == [0; 4] {
            None
        } else {
            find_digest(c1, FP_KEY_TEXT)
        };
        out.reserve(1 + 2 * HANDSHAKE_SIZE);
        out.push(RTMP_VERSION);
        let mut s1 = [0u8; HANDSHAKE_SIZE];
        match client_digest {
            Some((scheme, digest)) => {
                self.complex = true;
                make_packet1(random, SERVER_VERSION, scheme, FMS_KEY_TEXT, &mut s1);
                out.extend_from_slice(&s1);
                out.extend_from_slice(&make_packet2(random, &full_key(FMS_KEY_TEXT), &digest));
            }
            None => {
                make_packet1(random, [0; 4], Scheme::DigestFirst, &[], &mut s1);
                out.extend_from_slice(&s1);
                out.extend_from_slice(c1);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientStage {
    /// C0/C1 not written yet.
    Start,
    /// Waiting for S0 and S1.
    S0S1,
    /// C2 written, waiting for S2.
    S2,
    Done,
}

/// Client side of the handshake (for pulling from or pushing to other servers).
#[derive(Debug)]
pub struct ClientHandshake {
    stage: ClientStage,
    want_complex: bool,
    complex: bool,
    c1: Box<[u8; HANDSHAKE_SIZE]>,
    c1_digest: [u8; DIGEST_LEN],
}

impl ClientHandshake {
    /// `complex` selects a signed C1 (what Flash and FFmpeg send); with a
    /// server that does not verify, the handshake quietly becomes simple.
    pub fn new(complex: bool) -> Self {
        ClientHandshake {
            stage: ClientStage::Start,
            want_complex: complex,
            complex: false,
            c1: Box::new([0; HANDSHAKE_SIZE]),
            c1_digest: [0; DIGEST_LEN],
        }
    }

    /// Appends C0+C1 (random bytes drawn from `random`) to `out`. Calling
    /// it again has no effect.
    pub fn start(&mut self, out: &mut Vec<u8>, random: &mut dyn RngCore) {
        if self.stage != ClientStage::Start {
            return;
        }
        let version = if self.want_complex {
            CLIENT_VERSION
        } else {
            [0; 4]
        };
        self.c1_digest = make_packet1(
            random,
            version,
            Scheme::DigestFirst,
            FP_KEY_TEXT,
            &mut self.c1,
        );
        out.reserve(1 + HANDSHAKE_SIZE);
        out.push(RTMP_VERSION);
        out.extend_from_slice(&self.c1[..]);
        self.stage = ClientStage::S0S1;
    }

    /// Consumes S0S1S2, writes C2, true when done; leftover stays in input.
    /// C2 is written as soon as S1 is in; [`start`](Self::start) is implied
    /// if it was not called. Random bytes come from `random`.
    pub fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut Vec<u8>,
        random: &mut dyn RngCore,
    ) -> Result<bool, HandshakeError> {
        self.start(out, random);
        if self.stage == ClientStage::S0S1 {
            check_version(input)?;
            if input.len() < 1 + HANDSHAKE_SIZE {
                return Ok(false);
            }
            input.advance(1);
            let Some(s1) = take_packet(input) else {
                return Ok(false);
            };
            out.extend_from_slice(&self.make_c2(&s1, random));
            self.stage = ClientStage::S2;
        }
        if self.stage == ClientStage::S2 {
            let Some(s2) = take_packet(input) else {
                return Ok(false);
            };
            self.check_s2(&s2)?;
            self.stage = ClientStage::Done;
        }
        Ok(true)
    }

    /// Whether the server proved it speaks the complex handshake.
    pub fn is_complex(&self) -> bool {
        self.complex
    }

    fn make_c2(
        &mut self,
        s1: &[u8; HANDSHAKE_SIZE],
        random: &mut dyn RngCore,
    ) -> [u8; HANDSHAKE_SIZE] {
        let server_digest = if self.want_complex && s1[4..8] != [0; 4] {
            find_digest(s1, FMS_KEY_TEXT)
        } else {
            None
        };
        match server_digest {
            Some((_, digest)) => {
                self.complex = true;
                make_packet2(random, &full_key(FP_KEY_TEXT), &digest)
            }
            None => *s1,
        }
    }

    fn check_s2(&self, s2: &[u8; HANDSHAKE_SIZE]) -> Result<(), HandshakeError> {
        if !self.complex || s2 == &*self.c1 {
            return Ok(());
        }
        let expected = packet2_signature(&full_key(FMS_KEY_TEXT), &self.c1_digest, s2);
        if s2[SIGNED_LEN..] == expected {
            Ok(())
        } else {
            Err(HandshakeError::DigestMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Every test draws its handshake bytes from this seed, so a failure
    /// reproduces byte for byte.
    const SEED: u64 = 0x5eed;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Runs a full handshake, moving all available bytes each step.
    fn run(
        client: &mut ClientHandshake,
        server: &mut ServerHandshake,
    ) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let mut rng = StdRng::seed_from_u64(SEED);
        let mut c0c1 = Vec::new();
        client.start(&mut c0c1, &mut rng);
        let mut to_server = BytesMut::from(&c0c1[..]);
        let mut s0s1s2 = Vec::new();
        assert!(!server
            .process(&mut to_server, &mut s0s1s2, &mut rng)
            .unwrap());
        let mut to_client = BytesMut::from(&s0s1s2[..]);
        let mut c2 = Vec::new();
        assert!(client.process(&mut to_client, &mut c2, &mut rng).unwrap());
        assert!(to_client.is_empty());
        to_server.extend_from_slice(&c2);
        let mut nothing = Vec::new();
        assert!(server
            .process(&mut to_server, &mut nothing, &mut rng)
            .unwrap());
        assert!(nothing.is_empty() && to_server.is_empty());
        (c0c1, s0s1s2, c2)
    }

    fn packet(bytes: &[u8]) -> [u8; HANDSHAKE_SIZE] {
        bytes.try_into().unwrap()
    }

    #[test]
    fn hmac_matches_rfc4231() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya ", b"want for nothing?"]);
        assert_eq!(
            mac.to_vec(),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        let long_key = [0xaa; 131];
        let mac = hmac_sha256(
            &long_key,
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        assert_eq!(
            mac.to_vec(),
            hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        );
    }

    #[test]
    fn random_bytes_come_from_the_caller() {
        let c0c1 = |random: &mut dyn rand::RngCore| {
            let mut out = Vec::new();
            ClientHandshake::new(true).start(&mut out, random);
            out
        };
        let seeded = c0c1(&mut StdRng::seed_from_u64(SEED));
        assert_eq!(seeded, c0c1(&mut StdRng::seed_from_u64(SEED)));
        assert_ne!(seeded, c0c1(&mut StdRng::seed_from_u64(SEED + 1)));
        // Real connections draw fresh bytes every time.
        assert_ne!(c0c1(&mut ThreadRandom), c0c1(&mut ThreadRandom));
    }

    #[test]
    fn simple_handshake() {
        let mut client = ClientHandshake::new(false);
        let mut server = ServerHandshake::new();
        let (c0c1, s0s1s2, c2) = run(&mut client, &mut server);
        assert!(!server.is_complex() && !client.is_complex());
        assert_eq!(c0c1.len(), 1 + HANDSHAKE_SIZE);
        assert_eq!(s0s1s2.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!((c0c1[0], s0s1s2[0]), (3, 3));
        assert_eq!(&s0s1s2[5..9], &[0; 4], "a simple S1 has a zero version");
        assert_eq!(&s0s1s2[1 + HANDSHAKE_SIZE..], &c0c1[1..], "S2 echoes C1");
        assert_eq!(&c2[..], &s0s1s2[1..1 + HANDSHAKE_SIZE], "C2 echoes S1");
    }

    #[test]
    fn complex_handshake_digest_first() {
        let mut client = ClientHandshake::new(true);
        let mut server = ServerHandshake::new();
        let (c0c1, s0s1s2, c2) = run(&mut client, &mut server);
        assert!(server.is_complex() && client.is_complex());
        let s1 = packet(&s0s1s2[1..1 + HANDSHAKE_SIZE]);
        let (scheme, s1_digest) = find_digest(&s1, FMS_KEY_TEXT).unwrap();
        assert_eq!(scheme, Scheme::DigestFirst, "S1 uses the client's scheme");
        let c2 = packet(&c2);
        assert_eq!(
            c2[SIGNED_LEN..],
            packet2_signature(&full_key(FP_KEY_TEXT), &s1_digest, &c2)
        );
        let (_, c1_digest) = find_digest(&packet(&c0c1[1..]), FP_KEY_TEXT).unwrap();
        let s2 = packet(&s0s1s2[1 + HANDSHAKE_SIZE..]);
        assert_eq!(
            s2[SIGNED_LEN..],
            packet2_signature(&full_key(FMS_KEY_TEXT), &c1_digest, &s2)
        );
    }

    #[test]
    fn complex_handshake_key_first() {
        let mut rng = StdRng::seed_from_u64(SEED);
        let mut c1 = [0u8; HANDSHAKE_SIZE];
        let c1_digest = make_packet1(
            &mut rng,
            CLIENT_VERSION,
            Scheme::KeyFirst,
            FP_KEY_TEXT,
            &mut c1,
        );
        assert_eq!(
            find_digest(&c1, FP_KEY_TEXT).map(|(s, _)| s),
            Some(Scheme::KeyFirst)
        );
        let mut input = BytesMut::from(&[3u8][..]);
        input.extend_from_slice(&c1);
        let mut server = ServerHandshake::new();
        let mut out = Vec::new();
        assert!(!server.process(&mut input, &mut out, &mut rng).unwrap());
        assert!(server.is_complex());
        let s1 = packet(&out[1..1 + HANDSHAKE_SIZE]);
        assert_eq!(
            find_digest(&s1, FMS_KEY_TEXT).map(|(s, _)| s),
            Some(Scheme::KeyFirst)
        );
        let s2 = packet(&out[1 + HANDSHAKE_SIZE..]);
        assert_eq!(
            s2[SIGNED_LEN..],
            packet2_signature(&full_key(FMS_KEY_TEXT), &c1_digest, &s2)
        );
    }

    /// A fixed C1 whose digest and S2 key were computed independently (with
    /// Python's hmac module), so the key bytes and offsets are checked
    /// against something other than this file.
    #[test]
    fn independent_c1_vector_validates() {
        let mut rng = StdRng::seed_from_u64(SEED);
        let mut c1: [u8; HANDSHAKE_SIZE] = std::array::from_fn(|i| ((i * 7 + 3) % 256) as u8);
        c1[..4].fill(0);
        c1[4..8].copy_from_slice(&CLIENT_VERSION);
        let pos = 290;
        assert_eq!(Scheme::DigestFirst.digest_pos(&c1), pos);
        c1[pos..pos + DIGEST_LEN].copy_from_slice(&hex(
            "612af37c38c4a1b74e5737fc4021ded17ed92a9431c19bc665cf421131bad8a6",
        ));
        let mut input = BytesMut::from(&[3u8][..]);
        input.extend_from_slice(&c1);
        let mut server = ServerHandshake::new();
        let mut out = Vec::new();
        server.process(&mut input, &mut out, &mut rng).unwrap();
        assert!(server.is_complex());
        let s2_key = hex("b64b9cb0ff0d9abe14b38c4638d3af7b13e7e857b3c2af49eb5449fde909256e");
        let s2 = &out[1 + HANDSHAKE_SIZE..];
        assert_eq!(s2[SIGNED_LEN..], hmac_sha256(&s2_key, &[&s2[..SIGNED_LEN]]));
    }

    #[test]
    fn server_falls_back_to_simple_on_bad_digest() {
        let mut rng = StdRng::seed_from_u64(SEED);
        let mut c1 = [0u8; HANDSHAKE_SIZE];
        make_packet1(
            &mut rng,
            CLIENT_VERSION,
            Scheme::DigestFirst,
            b"not the flash player key",
            &mut c1,
        );
        let mut input = BytesMut::from(&[3u8][..]);
        input.extend_from_slice(&c1);
        let mut server = ServerHandshake::new();
        let mut out = Vec::new();
        server.process(&mut input, &mut out, &mut rng).unwrap();
        assert!(!server.is_complex());
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
    }

    #[test]
    fn complex_client_falls_back_with_simple_server() {
        let mut rng = StdRng::seed_from_u64(SEED);
        let mut client = ClientHandshake::new(true);
        let mut c0c1 = Vec::new();
        client.start(&mut c0c1, &mut rng);
        // A server that does not sign S1 yet claims a version, echoing C1 as S2.
        let mut s1 = [7u8; HANDSHAKE_SIZE];
        s1[4..8].copy_from_slice(&[1, 2, 3, 4]);
        let mut input = BytesMut::from(&[3u8][..]);
        input.extend_from_slice(&s1);
        input.extend_from_slice(&c0c1[1..]);
        let mut c2 = Vec::new();
        assert!(client.process(&mut input, &mut c2, &mut rng).unwrap());
        assert!(!client.is_complex());
        assert_eq!(&c2[..], &s1[..]);
    }

    #[test]
    fn client_rejects_bad_s2_from_complex_server() {
        let mut rng = StdRng::seed_from_u64(SEED);
        let mut client = ClientHandshake::new(true);
        let mut c0c1 = Vec::new();
        client.start(&mut c0c1, &mut rng);
        let mut server = ServerHandshake::new();
        let mut s0s1s2 = Vec::new();
        server
            .process(&mut BytesMut::from(&c0c1[..]), &mut s0s1s2, &mut rng)
            .unwrap();
        let last = s0s1s2.len() - 1;
        s0s1s2[last] ^= 1;
        let mut c2 = Vec::new();
        let err = client
            .process(&mut BytesMut::from(&s0s1s2[..]), &mut c2, &mut rng)
            .unwrap_err();
        assert_eq!(err, HandshakeError::DigestMismatch);
    }

    #[test]
    fn complex_client_accepts_echoed_s2() {
        let mut rng = StdRng::seed_from_u64(SEED);
        let mut client = ClientHandshake::new(true);
        let mut c0c1 = Vec::new();
        client.start(&mut c0c1, &mut rng);
        let mut server = ServerHandshake::new();
        let mut s0s1s2 = Vec::new();
        server
            .process(&mut BytesMut::from(&c0c1[..]), &mut s0s1s2, &mut rng)
            .unwrap();
        s0s1s2.truncate(1 + HANDSHAKE_SIZE);
        s0s1s2.extend_from_slice(&c0c1[1..]);
        let mut c2 = Vec::new();
        assert!(client
            .process(&mut BytesMut::from(&s0s1s2[..]), &mut c2, &mut rng)
            .unwrap());
        assert!(client.is_complex());
    }

    #[test]
    fn leftover_bytes_after_handshake_are_kept() {
        let mut rng = StdRng::seed_from_u64(SEED);
        let mut client = ClientHandshake::new(true);
        let mut server = ServerHandshake::new();
        let mut c0c1 = Vec::new();
        client.start(&mut c0c1, &mut rng);
        let mut to_server = BytesMut::from(&c0c1[..]);
        let mut s0s1s2 = Vec::new();
        server
            .process(&mut to_server, &mut s0s1s2, &mut rng)
            .unwrap();
        let mut to_client = BytesMut::from(&s0s1s2[..]);
        to_client.extend_from_slice(b"server chunks");
        let mut c2 = Vec::new();
        assert!(client.process(&mut to_client, &mut c2, &mut rng).unwrap());
        assert_eq!(&to_client[..], b"server chunks");
        to_server.extend_from_slice(&c2);
        to_server.extend_from_slice(b"\x03connect");
        assert!(server
            .process(&mut to_server, &mut Vec::new(), &mut rng)
            .unwrap());
        assert_eq!(&to_server[..], b"\x03connect");
        // Once done, further calls leave the input alone.
        assert!(server
            .process(&mut to_server, &mut Vec::new(), &mut rng)
            .unwrap());
        assert!(client
            .process(&mut to_client, &mut Vec::new(), &mut rng)
            .unwrap());
        assert_eq!(
            (&to_server[..], &to_client[..]),
            (&b"\x03connect"[..], &b"server chunks"[..])
        );
    }

    #[test]
    fn byte_at_a_time() {
        let mut rng = StdRng::seed_from_u64(SEED);
        for complex in [false, true] {
            let mut client = ClientHandshake::new(complex);
            let mut server = ServerHandshake::new();
            let mut c2s = Vec::new();
            let mut s2c = Vec::new();
            // process() starts the client implicitly.
            assert!(!client
                .process(&mut BytesMut::new(), &mut c2s, &mut rng)
                .unwrap());
            let (mut sent_c, mut sent_s) = (0, 0);
            let (mut in_s, mut in_c) = (BytesMut::new(), BytesMut::new());
            let (mut client_done, mut server_done) = (false, false);
            for _ in 0..20_000 {
                if sent_c < c2s.len() {
                    in_s.extend_from_slice(&c2s[sent_c..sent_c + 1]);
                    sent_c += 1;
                    server_done = server.process(&mut in_s, &mut s2c, &mut rng).unwrap();
                }
                if sent_s < s2c.len() {
                    in_c.extend_from_slice(&s2c[sent_s..sent_s + 1]);
                    sent_s += 1;
                    client_done = client.process(&mut in_c, &mut c2s, &mut rng).unwrap();
                }
                if client_done && server_done {
                    break;
                }
            }
            assert!(client_done && server_done);
            assert_eq!(server.is_complex(), complex);
            assert_eq!(client.is_complex(), complex);
            assert!(in_s.is_empty() && in_c.is_empty());
        }
    }

    #[test]
    fn wrong_version_is_rejected_at_once() {
        let mut rng = StdRng::seed_from_u64(SEED);
        for v in [0u8, 6, 8, 0xff] {
            let mut server = ServerHandshake::new();
            let err = server
                .process(&mut BytesMut::from(&[v][..]), &mut Vec::new(), &mut rng)
                .unwrap_err();
            assert_eq!(err, HandshakeError::UnsupportedVersion(v));
            let mut client = ClientHandshake::new(false);
            let err = client
                .process(&mut BytesMut::from(&[v][..]), &mut Vec::new(), &mut rng)
                .unwrap_err();
            assert_eq!(err, HandshakeError::UnsupportedVersion(v));
            assert!(err.to_string().contains(&v.to_string()));
        }
        assert!(!HandshakeError::DigestMismatch.to_string().is_empty());
    }

    proptest! {
        #[test]
        fn prop_digest_positions_in_bounds(bytes in prop::collection::vec(any::<u8>(), HANDSHAKE_SIZE)) {
            let p = packet(&bytes);
            prop_assert!(Scheme::DigestFirst.digest_pos(&p) + DIGEST_LEN <= 772);
            prop_assert!(Scheme::KeyFirst.digest_pos(&p) >= 776);
            prop_assert!(Scheme::KeyFirst.digest_pos(&p) + DIGEST_LEN <= HANDSHAKE_SIZE);
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(
            data in prop::collection::vec(any::<u8>(), 0..5000), step in 1usize..2000, complex in any::<bool>(),
        ) {
            let mut rng = StdRng::seed_from_u64(SEED);
            let mut server = ServerHandshake::new();
            let mut client = ClientHandshake::new(complex);
            let (mut in_s, mut in_c) = (BytesMut::new(), BytesMut::new());
            let (mut ok_s, mut ok_c) = (true, true);
            for piece in data.chunks(step) {
                in_s.extend_from_slice(piece);
                in_c.extend_from_slice(piece);
                ok_s = ok_s && server.process(&mut in_s, &mut Vec::new(), &mut rng).is_ok();
                ok_c = ok_c && client.process(&mut in_c, &mut Vec::new(), &mut rng).is_ok();
            }
        }
    }
}
