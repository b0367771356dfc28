//! chitchat's UDP transport with every datagram sealed (`seal.rs`): what is not sealed with a
//! key in force never reaches chitchat.
//!
//! chitchat does not let a caller encode or decode its envelopes, so the socket keeps one of
//! chitchat's own UDP sockets on loopback as its codec, and a loopback socket of its own, the
//! shuttle, to talk to it. Sending: the codec sends the envelope to the shuttle, whose bytes are
//! sealed and sent to the peer on the gossip socket. Receiving: a datagram on the gossip socket
//! is opened, its payload sent from the shuttle to the codec, and what the codec decodes is
//! handed to chitchat as coming from the peer. Loopback delivers synchronously, so the bytes are
//! there as soon as they were sent; the codec answers only for what came from the shuttle (no
//! other process of the host can slip an envelope in), and a payload chitchat cannot decode
//! (which its socket skips without a word) is given up after [`CODEC_WAIT`].
//!
//! chitchat cancels `recv` whenever its gossip timer fires: what a `recv` has in flight (the
//! payload with the codec) lives in the socket, so the next call picks it up.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpSocket as Codec};
use chitchat::ChitchatEnvelope;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::seal::{GossipKeys, Refusal};
use crate::clock::unix_ms;

/// How long the codec may take to hand back what the shuttle gave it, or the other way round
/// (loopback delivers at once; this only bounds a payload chitchat skips).
const CODEC_WAIT: Duration = Duration::from_millis(200);
/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;
/// At most one warning about dropped datagrams per this long; the ones in between are counted
/// into the next.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Datagrams dropped, per reason, since the node started; cheap to clone (shared counters).
#[derive(Clone, Default, Debug)]
pub struct GossipDrops(Arc<[AtomicU64; Refusal::ALL.len()]>);

impl GossipDrops {
    fn add(&self, why: Refusal) {
        self.0[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// How many datagrams were dropped for `why`.
    pub fn count(&self, why: Refusal) -> u64 {
        self.0[why as usize].load(Ordering::Relaxed)
    }

    /// Every reason with its count (`gru_gossip_dropped_total{reason}`).
    pub fn report(&self) -> Vec<(Refusal, u64)> {
        Refusal::ALL.iter().map(|r| (*r, self.count(*r))).collect()
    }
}

/// chitchat's transport over UDP with sealed datagrams.
pub struct SealedTransport {
    keys: GossipKeys,
    drops: GossipDrops,
}

impl SealedTransport {
    /// A transport that seals with and opens by `keys` (later replacements included) and
    /// counts what it drops into `drops`.
    pub fn new(keys: GossipKeys, drops: GossipDrops) -> Self {
        Self { keys, drops }
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send + 'a>>;

// chitchat's traits are `async_trait`s; their methods are written out as the boxed futures the
// macro would make.
impl Transport for SealedTransport {
    fn open<'s, 'f>(&'s self, listen_addr: SocketAddr) -> Boxed<'f, Box<dyn Socket>>
    where
        's: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            let socket =
                SealedSocket::open(listen_addr, self.keys.clone(), self.drops.clone()).await?;
            Ok(Box::new(socket) as Box<dyn Socket>)
        })
    }
}

/// A payload handed to the codec, waiting to come back decoded.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// The member that sent it.
    peer: SocketAddr,
    /// Its sealed size on the wire.
    len: usize,
    /// When the codec is given up on.
    deadline: Instant,
}

/// One rate-limited warning about dropped datagrams.
#[derive(Debug, Default)]
struct DropLog {
    last: Option<Instant>,
    unreported: u64,
}

impl DropLog {
    fn record(&mut self, why: Refusal, from: SocketAddr) {
        self.unreported += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|at| now.duration_since(at) < LOG_EVERY)
        {
            return;
        }
        tracing::warn!(
            reason = why.label(),
            from = %from,
            dropped = self.unreported,
            "gossip datagrams dropped: not sealed with a key of auth.gossip_keys, or out of \
             the time window (one warning per 10 s; gru_gossip_dropped_total counts them all)"
        );
        self.last = Some(now);
        self.unreported = 0;
    }
}

struct SealedSocket {
    /// The gossip socket other members talk to.
    wire: UdpSocket,
    /// chitchat's own socket, on loopback: it encodes and decodes envelopes.
    codec: Codec,
    codec_addr: SocketAddr,
    /// Our loopback socket that carries bytes to and from the codec.
    shuttle: UdpSocket,
    shuttle_addr: SocketAddr,
    buf: Box<[u8]>,
    in_flight: Option<InFlight>,
    keys: GossipKeys,
    drops: GossipDrops,
    log: DropLog,
}

impl SealedSocket {
    async fn open(
        listen_addr: SocketAddr,
        keys: GossipKeys,
        drops: GossipDrops,
    ) -> anyhow::Result<Self> {
        let wire = UdpSocket::bind(listen_addr)
            .await
            .with_context(|| format!("failed to bind to {listen_addr}/UDP for gossip"))?;
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let codec = Codec::open(loopback).await?;
        let codec_addr = codec.local_addr()?;
        let shuttle = UdpSocket::bind(loopback)
            .await
            .context("failed to bind the gossip codec's loopback socket")?;
        let shuttle_addr = shuttle.local_addr()?;
        Ok(Self {
            wire,
            codec,
            codec_addr,
            shuttle,
            shuttle_addr,
            buf: vec![0; 1 << 16].into_boxed_slice(),
            in_flight: None,
            keys,
            drops,
            log: DropLog::default(),
        })
    }

    fn refuse(&mut self, why: Refusal, from: SocketAddr) {
        self.drops.add(why);
        self.log.record(why, from);
    }

    async fn send_sealed(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        if self.keys.is_empty() {
            // A one-node cluster has nobody to tell, and no key to tell it with.
            return Ok(SendOutcome { num_bytes_sent: 0 });
        }
        // What an encoding given up on left behind must not be taken for this one.
        for _ in 0..64 {
            if self.shuttle.try_recv_from(&mut self.buf).is_err() {
                break;
            }
        }
        self.codec.send(self.shuttle_addr, envelope).await?;
        let deadline = Instant::now() + CODEC_WAIT;
        let len = loop {
            let (len, from) =
                tokio::time::timeout_at(deadline, self.shuttle.recv_from(&mut self.buf))
                    .await
                    .context("chitchat's codec did not hand back the encoded envelope")?
                    .context("failed to read the encoded envelope")?;
            if from == self.codec_addr {
                break len;
            }
        };
        let Some(sealed) = self.keys.seal(&self.buf[..len], unix_ms()) else {
            return Ok(SendOutcome { num_bytes_sent: 0 });
        };
        anyhow::ensure!(
            sealed.len() <= MAX_DATAGRAM,
            "a gossip datagram of {len} bytes is too large to seal"
        );
        let sent = self
            .wire
            .send_to(&sealed, to)
            .await
            .context("failed to send chitchat message to peer")?;
        Ok(SendOutcome {
            num_bytes_sent: sent,
        })
    }

    /// Cancel-safe: every await either has nothing in flight or keeps it in `self.in_flight`.
    async fn recv_opened(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            if let Some(flight) = self.in_flight {
                match tokio::time::timeout_at(flight.deadline, self.codec.recv()).await {
                    Err(_) => {
                        self.in_flight = None;
                        self.refuse(Refusal::Undecodable, flight.peer);
                    }
                    Ok(Err(e)) => return Err(e),
                    // Another process of this host wrote to the codec: never a member. Ours is
                    // still queued behind it.
                    Ok(Ok(outcome)) if outcome.from_addr != self.shuttle_addr => {
                        self.refuse(Refusal::Malformed, outcome.from_addr);
                    }
                    Ok(Ok(outcome)) => {
                        self.in_flight = None;
                        return Ok(RecvOutcome {
                            from_addr: flight.peer,
                            envelope: outcome.envelope,
                            num_bytes_received: flight.len,
                        });
                    }
                }
                continue;
            }
            let (len, from) = match self.wire.recv_from(&mut self.buf).await {
                Ok(received) => received,
                Err(e) if is_transient(&e) => {
                    tracing::debug!(error = %e, "transient gossip receive error");
                    continue;
                }
                Err(e) => return Err(e).context("fatal UDP recv error"),
            };
            let opened = self.keys.open(&self.buf[..len], unix_ms());
            let handed = match opened {
                // Synchronous: nothing is in flight until the payload is with the codec.
                Ok(payload) => self
                    .shuttle
                    .try_send_to(payload, self.codec_addr)
                    .map_err(|e| {
                        tracing::debug!(error = %e, "gossip datagram not handed to the codec");
                        Refusal::Undecodable
                    }),
                Err(why) => Err(why),
            };
            match handed {
                Ok(_) => {
                    self.in_flight = Some(InFlight {
                        peer: from,
                        len,
                        deadline: Instant::now() + CODEC_WAIT,
                    });
                }
                Err(why) => self.refuse(why, from),
            }
        }
    }
}

/// Errors after which the socket still works (as chitchat's own socket treats them).
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::OutOfMemory
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.wire
            .local_addr()
            .context("failed to get UDP socket address")
    }

    fn send<'s, 'f>(
        &'s mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> Boxed<'f, SendOutcome>
    where
        's: 'f,
        Self: 'f,
    {
        Box::pin(self.send_sealed(to, envelope))
    }

    fn recv<'s, 'f>(&'s mut self) -> Boxed<'f, RecvOutcome>
    where
        's: 'f,
        Self: 'f,
    {
        Box::pin(self.recv_opened())
    }
}

#[cfg(test)]
mod tests {
    use chitchat::{ChitchatMessage, ProtocolVersion};

    use super::*;

    const KEY: &str = "gossip-key-test-0000000000000000001";
    const OTHER: &str = "gossip-key-other-000000000000000002";

    fn envelope() -> ChitchatEnvelope {
        ChitchatEnvelope {
            version: ProtocolVersion::V0,
            message: ChitchatMessage::BadCluster,
        }
    }

    async fn socket(keys: &[&str]) -> (SealedSocket, GossipKeys, GossipDrops) {
        let keys = GossipKeys::new(&keys.iter().map(|k| k.to_string()).collect::<Vec<_>>());
        let drops = GossipDrops::default();
        let socket =
            SealedSocket::open((Ipv4Addr::LOCALHOST, 0).into(), keys.clone(), drops.clone())
                .await
                .expect("bound");
        (socket, keys, drops)
    }

    /// chitchat's own encoding of [`envelope`], as an unauthenticated member sends it.
    async fn plain_bytes() -> Vec<u8> {
        let mut plain = Codec::open((Ipv4Addr::LOCALHOST, 0).into())
            .await
            .expect("bound");
        let tap = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bound");
        plain
            .send(tap.local_addr().expect("addr"), envelope())
            .await
            .expect("sent");
        let mut buf = vec![0; 1 << 16];
        let (len, _) = tap.recv_from(&mut buf).await.expect("received");
        buf.truncate(len);
        buf
    }

    async fn raw() -> UdpSocket {
        UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bound")
    }

    async fn recv(socket: &mut SealedSocket) -> RecvOutcome {
        tokio::time::timeout(Duration::from_secs(5), socket.recv())
            .await
            .expect("a datagram within 5 s")
            .expect("the socket works")
    }

    async fn nothing_within(socket: &mut SealedSocket, wait: Duration) {
        if let Ok(got) = tokio::time::timeout(wait, socket.recv()).await {
            panic!("nothing may arrive, got {got:?}");
        }
    }

    #[tokio::test]
    async fn members_with_the_key_talk_and_see_each_others_address() {
        let (mut a, _, _) = socket(&[KEY]).await;
        let (mut b, _, drops) = socket(&[KEY]).await;
        let to = b.local_addr().expect("addr");
        let sent = a.send(to, envelope()).await.expect("sent");
        let got = recv(&mut b).await;
        assert_eq!(got.envelope, envelope());
        assert_eq!(got.from_addr, a.local_addr().expect("addr"));
        assert_eq!(got.num_bytes_received, sent.num_bytes_sent);
        assert_eq!(drops.report().iter().map(|(_, n)| n).sum::<u64>(), 0);
    }

    #[tokio::test]
    async fn unsealed_forged_and_stale_datagrams_never_reach_chitchat() {
        let (mut b, _, drops) = socket(&[KEY]).await;
        let to = b.local_addr().expect("addr");
        let attacker = raw().await;
        let plain = plain_bytes().await;
        attacker.send_to(&plain, to).await.expect("sent");
        let forged = GossipKeys::new(&[OTHER.to_string()])
            .seal(&plain, unix_ms())
            .expect("sealed");
        attacker.send_to(&forged, to).await.expect("sent");
        let stale = GossipKeys::new(&[KEY.to_string()])
            .seal(&plain, unix_ms() - super::super::MAX_SKEW_MS - 5_000)
            .expect("sealed");
        attacker.send_to(&stale, to).await.expect("sent");
        nothing_within(&mut b, Duration::from_millis(300)).await;
        assert_eq!(drops.count(Refusal::Malformed), 1);
        assert_eq!(drops.count(Refusal::BadSignature), 1);
        assert_eq!(drops.count(Refusal::OutsideWindow), 1);
        // The same bytes sealed now with the key go through.
        let fresh = GossipKeys::new(&[KEY.to_string()])
            .seal(&plain, unix_ms())
            .expect("sealed");
        attacker.send_to(&fresh, to).await.expect("sent");
        let got = recv(&mut b).await;
        assert_eq!(got.from_addr, attacker.local_addr().expect("addr"));
    }

    #[tokio::test]
    async fn replaced_keys_take_effect_on_the_next_datagram() {
        let (mut a, a_keys, _) = socket(&[KEY]).await;
        let (mut b, b_keys, drops) = socket(&[KEY]).await;
        let to = b.local_addr().expect("addr");
        // b moves to the other key alone: a's datagrams are refused.
        b_keys.replace(&[OTHER.to_string()]);
        a.send(to, envelope()).await.expect("sent");
        nothing_within(&mut b, Duration::from_millis(300)).await;
        assert_eq!(drops.count(Refusal::BadSignature), 1);
        // a lists it first: accepted again.
        a_keys.replace(&[OTHER.to_string(), KEY.to_string()]);
        a.send(to, envelope()).await.expect("sent");
        assert_eq!(recv(&mut b).await.envelope, envelope());
    }

    #[tokio::test]
    async fn an_authentic_payload_chitchat_cannot_decode_is_given_up_even_when_recv_is_cancelled() {
        let (mut b, keys, drops) = socket(&[KEY]).await;
        let to = b.local_addr().expect("addr");
        let peer = raw().await;
        let junk = keys
            .seal(b"not a chitchat envelope", unix_ms())
            .expect("sealed");
        peer.send_to(&junk, to).await.expect("sent");
        let good = keys.seal(&plain_bytes().await, unix_ms()).expect("sealed");
        peer.send_to(&good, to).await.expect("sent");
        // chitchat cancels recv at every gossip tick, here far more often than CODEC_WAIT: the
        // junk is still given up and the next datagram delivered.
        let started = Instant::now();
        let got = loop {
            if let Ok(got) = tokio::time::timeout(Duration::from_millis(20), b.recv()).await {
                break got.expect("the socket works");
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "wedged on the junk"
            );
        };
        assert_eq!(got.envelope, envelope());
        assert_eq!(drops.count(Refusal::Undecodable), 1);
    }

    #[tokio::test]
    async fn another_process_cannot_hand_the_codec_an_envelope() {
        let (mut b, keys, drops) = socket(&[KEY]).await;
        let to = b.local_addr().expect("addr");
        let local = raw().await;
        let plain = plain_bytes().await;
        // Straight to the codec's loopback port, skipping the seal, ahead of a real datagram.
        local.send_to(&plain, b.codec_addr).await.expect("sent");
        let peer = raw().await;
        let sealed = keys.seal(&plain, unix_ms()).expect("sealed");
        peer.send_to(&sealed, to).await.expect("sent");
        let got = recv(&mut b).await;
        assert_eq!(got.from_addr, peer.local_addr().expect("addr"));
        assert_eq!(drops.count(Refusal::Malformed), 1);
        nothing_within(&mut b, Duration::from_millis(300)).await;
    }
}
