//! Test harness: a [`ClientSession`] and a [`ServerSession`] joined by
//! in-memory pipes, with the test playing the engine behind the server.
//!
//! Runs are deterministic: both sessions draw their handshake bytes from
//! one seeded generator (never `thread_rng`), bytes move in pieces of
//! fixed sizes, and media is stamped from a clock the pair keeps across
//! reconnections, so a failure reproduces byte for byte.

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::rtmp::chunk::{self, MessageHeader};
use crate::rtmp::client::{parse_rtmp_url, ClientConfig, ClientEvent, ClientMode, ClientSession};
use crate::rtmp::message::{csid, msg_type};
use crate::rtmp::server::{ServerConfig, ServerEvent, ServerSession, MEDIA_STREAM_ID};
use crate::rtmp::session::Random;

/// The seed of every pair unless a test picks another.
pub(crate) const SEED: u64 = 0x5eed;

/// A seeded random source for a session or handshake under test.
pub(crate) fn seeded(seed: u64) -> Random {
    Box::new(StdRng::seed_from_u64(seed))
}

/// The client configuration the tests start from.
pub(crate) fn config(mode: ClientMode) -> ClientConfig {
    ClientConfig {
        url: parse_rtmp_url("rtmp://127.0.0.1/live/cam?k=1").unwrap(),
        mode,
        chunk_size: 4096,
        complex_handshake: false,
        relay: false,
    }
}

/// What the test engine answers to a connect, publish or play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Accept,
    Reject,
    Redirect,
    /// Leave the decision for the test to make.
    Hold,
}

/// A client and a server joined by in-memory pipes that deliver bytes in
/// pieces of the given sizes.
pub(crate) struct Pair {
    pub(crate) client: ClientSession,
    pub(crate) server: ServerSession,
    /// Client output not yet delivered to the server, and the reverse.
    pub(crate) to_server: BytesMut,
    pub(crate) to_client: BytesMut,
    server_in: BytesMut,
    client_in: BytesMut,
    /// Every event either side reported since the sessions started.
    pub(crate) sev: Vec<ServerEvent>,
    pub(crate) cev: Vec<ClientEvent>,
    /// Every byte the client sent, for inspection.
    pub(crate) client_sent: Vec<u8>,
    splits: Vec<usize>,
    turn: usize,
    /// How the engine answers `connect`, and `publish` / `play`.
    pub(crate) connect: Answer,
    pub(crate) stream: Answer,
    server_cfg: ServerConfig,
    /// Where each new session's random source is drawn from.
    random: StdRng,
    /// Milliseconds on the shared clock.
    clock: u32,
}

impl Pair {
    /// A pair in `mode` with the default configurations.
    pub(crate) fn new(mode: ClientMode, splits: Vec<usize>) -> Pair {
        Pair::with(config(mode), ServerConfig::default(), splits)
    }

    /// A pair with the given configurations and [`SEED`].
    pub(crate) fn with(cfg: ClientConfig, server_cfg: ServerConfig, splits: Vec<usize>) -> Pair {
        Pair::seeded(cfg, server_cfg, splits, SEED)
    }

    /// A pair whose sessions draw their random bytes from `seed`; the
    /// client has written C0+C1.
    pub(crate) fn seeded(
        cfg: ClientConfig,
        server_cfg: ServerConfig,
        splits: Vec<usize>,
        seed: u64,
    ) -> Pair {
        let mut random = StdRng::seed_from_u64(seed);
        let client = ClientSession::with_random(cfg, seeded(random.next_u64()));
        let server = ServerSession::with_random(server_cfg, seeded(random.next_u64()));
        let mut p = Pair {
            client,
            server,
            to_server: BytesMut::new(),
            to_client: BytesMut::new(),
            server_in: BytesMut::new(),
            client_in: BytesMut::new(),
            sev: Vec::new(),
            cev: Vec::new(),
            client_sent: Vec::new(),
            splits: if splits.is_empty() {
                vec![usize::MAX]
            } else {
                splits
            },
            turn: 0,
            connect: Answer::Accept,
            stream: Answer::Accept,
            server_cfg,
            random,
            clock: 0,
        };
        p.start();
        p
    }

    fn start(&mut self) {
        self.client.start(&mut self.to_server);
        self.client_sent = self.to_server.to_vec();
    }

    /// Drops both sessions, as when the connection closes, and connects a
    /// fresh client with `cfg` to a fresh server: pipes and event logs
    /// start empty, the answers and the clock carry on.
    pub(crate) fn reconnect(&mut self, cfg: ClientConfig) {
        self.client = ClientSession::with_random(cfg, seeded(self.random.next_u64()));
        self.server = ServerSession::with_random(self.server_cfg, seeded(self.random.next_u64()));
        for pipe in [
            &mut self.to_server,
            &mut self.to_client,
            &mut self.server_in,
            &mut self.client_in,
        ] {
            pipe.clear();
        }
        self.sev.clear();
        self.cev.clear();
        self.start();
    }

    /// Advances the shared clock by `ms` and returns the time now, the
    /// timestamp of media sent at this moment.
    pub(crate) fn tick(&mut self, ms: u32) -> u32 {
        self.clock += ms;
        self.clock
    }

    fn split(&mut self) -> usize {
        self.turn += 1;
        self.splits[self.turn % self.splits.len()].max(1)
    }

    /// Moves bytes both ways until neither side has anything to say,
    /// answering server events as [`connect`](Self::connect) and
    /// [`stream`](Self::stream) say.
    pub(crate) fn run(&mut self) {
        while !self.to_server.is_empty() || !self.to_client.is_empty() {
            let n = self.split().min(self.to_server.len());
            self.server_in
                .extend_from_slice(&self.to_server.split_to(n));
            let from = self.sev.len();
            self.server
                .on_bytes(&mut self.server_in, &mut self.to_client, &mut self.sev)
                .unwrap();
            for i in from..self.sev.len() {
                let ev = self.sev[i].clone();
                self.engine(&ev);
            }
            let n = self.split().min(self.to_client.len());
            self.client_in
                .extend_from_slice(&self.to_client.split_to(n));
            let before = self.to_server.len();
            self.client
                .on_bytes(&mut self.client_in, &mut self.to_server, &mut self.cev)
                .unwrap();
            self.client_sent
                .extend_from_slice(&self.to_server[before..]);
        }
    }

    fn engine(&mut self, ev: &ServerEvent) {
        let out = &mut self.to_client;
        match (ev, self.connect, self.stream) {
            (ServerEvent::Connect(_), Answer::Accept, _) => self.server.accept_connect(out),
            (ServerEvent::Connect(_), Answer::Reject, _) => {
                self.server.reject_connect("go away", out)
            }
            (ServerEvent::Connect(_), Answer::Redirect, _) => self.server.redirect_connect(
                "rtmp://o2:1936/live",
                "rtmp://o2:1936/live/cam?k=1",
                out,
            ),
            (ServerEvent::Publish { stream_id, .. }, Answer::Accept, Answer::Accept) => {
                self.server.accept_publish(*stream_id, out)
            }
            (ServerEvent::Publish { stream_id, .. }, _, Answer::Reject) => {
                self.server.reject_publish(
                    *stream_id,
                    "NetStream.Publish.BadName",
                    "already publishing",
                    out,
                )
            }
            (ServerEvent::Play { stream_id, .. }, Answer::Accept, Answer::Accept) => {
                self.server.accept_play(*stream_id, out)
            }
            (ServerEvent::Play { stream_id, .. }, Answer::Accept, Answer::Redirect) => {
                self.server.redirect_play(
                    *stream_id,
                    "rtmp://o3:1937/live",
                    "rtmp://o3:1937/live/cam",
                    out,
                )
            }
            (ServerEvent::Play { stream_id, .. }, _, Answer::Reject) => self.server.reject_play(
                *stream_id,
                "NetStream.Play.StreamNotFound",
                "no such stream",
                out,
            ),
            _ => {}
        }
    }

    /// Sends media to the client as the engine does: shared chunks on the
    /// media message stream.
    pub(crate) fn engine_media(&mut self, type_id: u8, timestamp: u32, payload: &Bytes) {
        let cs = if type_id == msg_type::AUDIO {
            csid::AUDIO
        } else {
            csid::VIDEO
        };
        let h = MessageHeader {
            csid: cs,
            timestamp,
            type_id,
            stream_id: MEDIA_STREAM_ID,
        };
        for seg in chunk::encode_shared(&h, payload, self.server.out_chunk_size()) {
            self.to_client.extend_from_slice(&seg);
        }
    }

    /// (type, timestamp, payload) of the media the server received.
    pub(crate) fn media_events(&self) -> Vec<(u8, u32, Vec<u8>)> {
        self.sev
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Media(m) => {
                    Some((m.header.type_id, m.header.timestamp, m.payload.to_vec()))
                }
                _ => None,
            })
            .collect()
    }

    /// (type, timestamp, payload) of the media the client received.
    pub(crate) fn client_media(&self) -> Vec<(u8, u32, Vec<u8>)> {
        self.cev
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Media(m) => {
                    Some((m.header.type_id, m.header.timestamp, m.payload.to_vec()))
                }
                _ => None,
            })
            .collect()
    }
}

mod tests {
    use super::*;

    fn status(level: &str, code: &str, description: &str) -> ClientEvent {
        ClientEvent::Status {
            level: level.into(),
            code: code.into(),
            description: description.into(),
        }
    }

    #[test]
    fn play_refused_arrives_as_error_status_and_rejection() {
        let mut p = Pair::new(ClientMode::Play, vec![]);
        p.stream = Answer::Reject;
        p.run();
        assert!(matches!(
            &p.sev[..],
            [ServerEvent::Connect(_), ServerEvent::Play { stream_id: 1, name, .. }] if name == "cam?k=1"
        ));
        assert_eq!(
            p.cev,
            [
                status("error", "NetStream.Play.StreamNotFound", "no such stream"),
                ClientEvent::Rejected {
                    description: "no such stream".into()
                },
            ]
        );
        assert!(!p.client.is_ready());
        // The refusal is final: a late accept sends nothing.
        p.server.accept_play(MEDIA_STREAM_ID, &mut p.to_client);
        assert!(p.to_client.is_empty());
    }

    #[test]
    fn publish_refused_arrives_as_error_status_and_rejection() {
        let mut p = Pair::new(ClientMode::Publish, vec![]);
        p.stream = Answer::Reject;
        p.run();
        assert!(matches!(
            &p.sev[..],
            [ServerEvent::Connect(_), ServerEvent::Publish { stream_id: 1, name, .. }] if name == "cam?k=1"
        ));
        assert_eq!(
            p.cev,
            [
                status("error", "NetStream.Publish.BadName", "already publishing"),
                ClientEvent::Rejected {
                    description: "already publishing".into()
                },
            ]
        );
        assert!(!p.client.is_ready());
        p.server.accept_publish(MEDIA_STREAM_ID, &mut p.to_client);
        assert!(p.to_client.is_empty());
    }

    #[test]
    fn redirect_is_reported_and_followed() {
        // At connect time and at play time (origin cluster), the client
        // reports the target; a fresh session to it then plays.
        for (answer_connect, answer_stream, tc_url, full_url) in [
            (
                Answer::Redirect,
                Answer::Accept,
                "rtmp://o2:1936/live",
                "rtmp://o2:1936/live/cam?k=1",
            ),
            (
                Answer::Accept,
                Answer::Redirect,
                "rtmp://o3:1937/live",
                "rtmp://o3:1937/live/cam",
            ),
        ] {
            let mut p = Pair::new(ClientMode::Play, vec![]);
            p.connect = answer_connect;
            p.stream = answer_stream;
            p.run();
            let redirect = ClientEvent::Redirect {
                tc_url: tc_url.into(),
                full_url: Some(full_url.into()),
            };
            assert_eq!(p.cev.last(), Some(&redirect));
            assert!(!p.client.is_ready());

            let url = parse_rtmp_url(full_url).unwrap();
            assert_eq!(url.tc_url, tc_url);
            p.connect = Answer::Accept;
            p.stream = Answer::Accept;
            p.reconnect(ClientConfig {
                url,
                ..config(ClientMode::Play)
            });
            p.run();
            assert!(p.client.is_ready());
            assert!(matches!(&p.sev[0], ServerEvent::Connect(i) if i.tc_url == tc_url));
        }
    }

    #[test]
    fn reconnection_after_close_works_against_a_fresh_server() {
        let mut p = Pair::new(ClientMode::Publish, vec![]);
        let mut sent = Vec::new();
        for round in 0..2u8 {
            if round > 0 {
                p.reconnect(config(ClientMode::Publish));
            }
            p.run();
            assert!(p.client.is_ready(), "round {round}");
            assert_eq!(p.client.stream_id(), Some(MEDIA_STREAM_ID));
            assert!(matches!(
                &p.sev[..],
                [
                    ServerEvent::Connect(_),
                    ServerEvent::Publish { stream_id: 1, .. }
                ]
            ));
            let frames: Vec<_> = (0..3u8)
                .map(|i| (msg_type::VIDEO, p.tick(40), vec![round, i]))
                .collect();
            for (t, ts, body) in &frames {
                p.client.send_media(*t, *ts, body, &mut p.to_server);
            }
            p.client.close(&mut p.to_server);
            p.run();
            assert_eq!(p.media_events(), frames);
            assert_eq!(
                p.sev.last(),
                Some(&ServerEvent::Unpublish {
                    stream_id: MEDIA_STREAM_ID
                })
            );
            sent.extend(frames);
        }
        // The shared clock carried the timeline across the reconnection.
        let stamps: Vec<u32> = sent.iter().map(|(_, ts, _)| *ts).collect();
        assert_eq!(stamps, [40, 80, 120, 160, 200, 240]);
    }

    #[test]
    fn seeded_runs_repeat_byte_for_byte() {
        let run = |seed| {
            let cfg = ClientConfig {
                complex_handshake: true,
                ..config(ClientMode::Play)
            };
            let mut p = Pair::seeded(cfg, ServerConfig::default(), vec![1000], seed);
            p.run();
            assert!(p.client.is_ready() && p.server.is_handshake_done());
            (p.client_sent, p.cev)
        };
        assert_eq!(run(SEED), run(SEED));
        assert_ne!(run(SEED).0, run(SEED + 1).0);
    }
}
