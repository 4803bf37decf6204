//! Hand-built RTMP for the bad-input tests: a plain handshake, chunks built
//! byte by byte (so malformed ones can be sent), and a message reader on the
//! proto chunk decoder. Deliberately independent of the client session, so
//! tests can misbehave exactly as they want.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringcast_proto::rtmp::amf0::{self, Amf0Value};
use ringcast_proto::rtmp::chunk::{ChunkDecoder, RtmpMessage};
use ringcast_proto::rtmp::message::{self, Command, Message};

/// Handshake packet size (C1/S1/C2/S2).
pub const HANDSHAKE_SIZE: usize = 1536;

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Reads exactly `n` bytes or fails by `deadline`.
pub fn read_exact_by(
    stream: &mut TcpStream,
    n: usize,
    deadline: Instant,
) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("timed out after {got}/{n} bytes"));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Err(format!("EOF after {got}/{n} bytes")),
            Ok(k) => got += k,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(buf)
}

/// Connects and completes a plain (version 3, no digest) handshake.
pub fn handshake(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(crate::rtmp::WRITE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[0u8; 8]);
    c0c1.extend_from_slice(&pseudo_random(HANDSHAKE_SIZE - 8, 7));
    s.write_all(&c0c1).map_err(|e| format!("send C0C1: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let s0s1 = read_exact_by(&mut s, 1 + HANDSHAKE_SIZE, deadline)?;
    if s0s1[0] != 3 {
        return Err(format!("S0 version {}", s0s1[0]));
    }
    let _s2 = read_exact_by(&mut s, HANDSHAKE_SIZE, deadline)?;
    s.write_all(&s0s1[1..])
        .map_err(|e| format!("send C2: {e}"))?;
    Ok(s)
}

/// One message as a single type-0 chunk (payload must fit `chunk_size`
/// or is split with type-3 continuation chunks).
pub fn chunk_message(
    csid: u8,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
    chunk_size: usize,
) -> Vec<u8> {
    assert!((2..64).contains(&csid), "one-byte basic header only");
    let mut v = vec![csid];
    v.extend_from_slice(&timestamp.min(0xFF_FFFF).to_be_bytes()[1..]);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&stream_id.to_le_bytes());
    for (i, part) in payload.chunks(chunk_size.max(1)).enumerate() {
        if i > 0 {
            v.push(0xC0 | csid);
        }
        v.extend_from_slice(part);
    }
    v
}

/// An AMF0 command message body.
pub fn command_body(name: &str, txn: f64, object: Amf0Value, args: Vec<Amf0Value>) -> Vec<u8> {
    let mut vals = vec![Amf0Value::string(name), Amf0Value::Number(txn), object];
    vals.extend(args);
    amf0::encode_all(&vals)
}

/// The `connect` command object for `rtmp://addr/app`.
pub fn connect_object(addr: SocketAddr, app: &str) -> Amf0Value {
    Amf0Value::object([
        ("app", Amf0Value::string(app)),
        ("flashVer", Amf0Value::string("LNX 9,0,124,2")),
        ("tcUrl", Amf0Value::string(format!("rtmp://{addr}/{app}"))),
        ("fpad", Amf0Value::Boolean(false)),
        ("capabilities", Amf0Value::Number(15.0)),
        ("audioCodecs", Amf0Value::Number(4071.0)),
        ("videoCodecs", Amf0Value::Number(252.0)),
        ("videoFunction", Amf0Value::Number(1.0)),
    ])
}

/// A raw RTMP connection after the handshake.
pub struct RawRtmp {
    /// The socket.
    pub stream: TcpStream,
    decoder: ChunkDecoder,
    input: BytesMut,
}

impl RawRtmp {
    /// Handshakes with the server.
    pub fn handshake(addr: SocketAddr) -> Result<RawRtmp, String> {
        Ok(RawRtmp {
            stream: handshake(addr)?,
            decoder: ChunkDecoder::new(),
            input: BytesMut::new(),
        })
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("send: {e}"))
    }

    /// Sends an AMF0 command on chunk stream 3 (128-byte chunks).
    pub fn send_command(
        &mut self,
        stream_id: u32,
        name: &str,
        txn: f64,
        object: Amf0Value,
        args: Vec<Amf0Value>,
    ) -> Result<(), String> {
        let body = command_body(name, txn, object, args);
        let wire = chunk_message(3, 0, message::msg_type::COMMAND_AMF0, stream_id, &body, 128);
        self.send(&wire)
    }

    /// The next message from the server (applying its Set Chunk Size).
    pub fn next_message(&mut self, deadline: Instant) -> Result<RtmpMessage, String> {
        loop {
            if let Some(msg) = self
                .decoder
                .decode(&mut self.input)
                .map_err(|e| format!("chunk: {e:?}"))?
            {
                if msg.header.type_id == message::msg_type::SET_CHUNK_SIZE {
                    if let Ok(Message::SetChunkSize(n)) = message::parse(&msg) {
                        self.decoder
                            .set_chunk_size(n)
                            .map_err(|e| format!("server chunk size: {e:?}"))?;
                    }
                }
                return Ok(msg);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("timed out waiting for a message".into());
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            let mut tmp = [0u8; 16 * 1024];
            match self.stream.read(&mut tmp) {
                Ok(0) => return Err("EOF".into()),
                Ok(n) => self.input.extend_from_slice(&tmp[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// Waits for a command whose name is one of `names` (and, if given,
    /// whose transaction id matches), skipping everything else.
    pub fn expect_command(
        &mut self,
        names: &[&str],
        txn: Option<f64>,
        timeout: Duration,
    ) -> Result<Command, String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let msg = self
                .next_message(deadline)
                .map_err(|e| format!("{e} (waiting for {names:?}; saw {seen:?})"))?;
            if let Ok(Message::Command(c)) = message::parse(&msg) {
                if names.contains(&c.name.as_str()) && txn.is_none_or(|t| t == c.transaction_id) {
                    return Ok(c);
                }
                seen.push(format!("{}#{}", c.name, c.transaction_id));
            } else {
                seen.push(format!("type{}", msg.header.type_id));
            }
        }
    }

    /// Sends `connect` for `app` and waits for its `_result`.
    pub fn connect_app(&mut self, app: &str) -> Result<Command, String> {
        let addr = self.stream.peer_addr().map_err(|e| e.to_string())?;
        self.send_command(0, "connect", 1.0, connect_object(addr, app), Vec::new())?;
        self.expect_command(&["_result", "_error"], Some(1.0), Duration::from_secs(5))
    }

    /// The local port (how the server log names this connection).
    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

/// Reads and discards until the peer closes; returns how long that took, or
/// `None` if it was still open after `timeout`.
pub fn wait_closed(stream: &mut TcpStream, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut tmp = [0u8; 16 * 1024];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return None;
        }
        if stream.set_read_timeout(Some(left)).is_err() {
            return Some(start.elapsed());
        }
        match stream.read(&mut tmp) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_message_splits_with_type3_headers() {
        let payload = vec![7u8; 300];
        let v = chunk_message(3, 5, 20, 1, &payload, 128);
        assert_eq!(v.len(), 12 + 300 + 2);
        assert_eq!(v[0], 3);
        assert_eq!(&v[4..7], &[0, 1, 44]);
        assert_eq!(v[12 + 128], 0xC3);
        let mut dec = ChunkDecoder::new();
        let mut buf = BytesMut::from(&v[..]);
        let msg = dec.decode(&mut buf).expect("decode").expect("message");
        assert_eq!(
            (
                msg.header.type_id,
                msg.header.timestamp,
                msg.header.stream_id
            ),
            (20, 5, 1)
        );
        assert_eq!(&msg.payload[..], &payload[..]);
    }

    #[test]
    fn command_body_round_trips() {
        let body = command_body("fooBar", 5.0, Amf0Value::Null, vec![Amf0Value::string("x")]);
        let vals = amf0::decode_all(&body).expect("amf");
        assert_eq!(vals[0].as_str(), Some("fooBar"));
        assert_eq!(vals[1].as_f64(), Some(5.0));
    }
}
