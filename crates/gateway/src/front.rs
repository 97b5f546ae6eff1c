//! The embedded broker's front door: every MQTT connection from the network goes through here,
//! where its CONNECT is authenticated and every packet it sends is checked against
//! [`crate::acl`] before the broker sees it. rumqttd 0.20 authenticates a CONNECT but has no
//! per-client rule on topics, so the broker itself listens only on a loopback port of its own
//! and admits nothing but the front (each forwarded CONNECT carries a secret that exists only
//! in this process, so a local process that finds the port still cannot log in).
//!
//! Per connection:
//! - CONNECT: MQTT 3.1.1 only, refused as the protocol says otherwise (an MQTT 5 client gets
//!   an MQTT 5 CONNACK with 0x84 "unsupported protocol version", an MQTT 3.1 client return code
//!   1); authenticated by [`ConnectAuth`] (return code 4 for a bad login, 5 for a device not
//!   allowed, 2 for a reserved client id); a will message must name a topic the client may
//!   publish on (else 5).
//! - PUBLISH on a topic the client may not publish on: the connection is closed (MQTT 3.1.1
//!   §4.1: a server that does not authorize a publish must acknowledge it or close).
//! - SUBSCRIBE: each filter the client may not use is answered 0x80 (failure) in the SUBACK;
//!   the broker sees only the allowed ones, and its SUBACK is merged back in order.
//! - A device revoked on the ledger, or a staff login whose token no longer authenticates, is
//!   disconnected within [`REVOCATION_CHECK`] (plus [`WRITE_TIMEOUT`] for a client that stopped
//!   reading); the broker is sent a DISCONNECT first, so its will is not published.
//! - The client id is the client's own only inside its principal's namespace (the broker sees
//!   a digest of the principal and the id) and every session is clean: no client can take over
//!   another's session, or inherit subscriptions the front never checked.
//!
//! Everything else passes through unchanged. The broker's answers are parsed only to merge
//! SUBACKs; each direction is bounded by [`PACKET_BYTES_MAX`] per packet.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::Error as CodecError;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Login, Packet, SubAck, Subscribe, SubscribeReasonCode,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use vigil_core::{DeviceId, PersonId};

use crate::acl;
use crate::auth::{ConnectAuth, LoginRefused, Principal};

/// How long a new connection has to send its CONNECT (and, over TLS, to finish its handshake
/// before that).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one packet may take to leave toward either side: a client that stops reading is
/// closed after this, so it holds no slot and escapes no revocation check for longer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a connected device's enrollment is looked up again.
pub const REVOCATION_CHECK: Duration = Duration::from_secs(2);
/// The broker refuses larger MQTT payloads by closing the connection. It is above the pack
/// limit on purpose, so that a pack somewhat too large still gets a reply naming the reason.
pub const MQTT_PAYLOAD_BYTES_MAX: usize = 256 * 1024;
/// Largest packet either way: a pack at the payload limit, its topic and headers.
pub const PACKET_BYTES_MAX: usize = MQTT_PAYLOAD_BYTES_MAX + 4 * 1024;
/// SUBSCRIBEs with refused filters waiting for the broker's SUBACK, per connection.
const PENDING_SUBSCRIBES_MAX: usize = 64;

/// The password the front puts in every CONNECT it forwards; the broker admits no other.
#[derive(Clone)]
pub struct InternalSecret {
    password: String,
    digest: [u8; 32],
}

impl InternalSecret {
    /// A fresh secret from the operating system's generator.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes)?;
        let password = hex::encode(bytes);
        let digest = Sha256::digest(password.as_bytes()).into();
        Ok(Self { password, digest })
    }

    /// Whether `password` is the secret (compared as digests, so in time independent of how
    /// much of it matched).
    pub fn admits(&self, password: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        given == self.digest
    }
}

impl std::fmt::Debug for InternalSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalSecret(<redacted>)")
    }
}

/// The protocol name and level a CONNECT frame declares, read from its variable header
/// without parsing the rest, so that a client of another version gets a refusal in its own
/// version. `None` for a frame that is not a CONNECT or is cut short.
pub fn connect_protocol(frame: &[u8]) -> Option<(&[u8], u8)> {
    if frame.first()? >> 4 != 1 {
        return None;
    }
    // The remaining length: 1 to 4 bytes, each but the last with its top bit set.
    let length_bytes = 1 + frame
        .get(1..5)?
        .iter()
        .take_while(|b| **b & 0x80 != 0)
        .count();
    let rest = frame.get(1 + length_bytes..)?;
    let name_len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
    let name = rest.get(2..2 + name_len)?;
    let level = *rest.get(2 + name_len)?;
    Some((name, level))
}

/// What a refused CONNECT is answered with, in the client's own protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// MQTT 3.1 or another 3.1.1 level: return code 1.
    ProtocolV4,
    /// MQTT 5: reason code 0x84, unsupported protocol version.
    ProtocolV5,
    Login(ConnectReturnCode),
}

impl Refusal {
    pub fn bytes(self) -> Vec<u8> {
        match self {
            // Fixed header, remaining length 2, no session present, return code 1.
            Refusal::ProtocolV4 => vec![0x20, 0x02, 0x00, 0x01],
            // Fixed header, remaining length 3, no session present, 0x84, no properties.
            Refusal::ProtocolV5 => vec![0x20, 0x03, 0x00, 0x84, 0x00],
            Refusal::Login(code) => {
                let mut out = BytesMut::new();
                // A CONNACK always encodes.
                let _ = ConnAck::new(code, false).write(&mut out);
                out.to_vec()
            }
        }
    }
}

/// The CONNACK return code for a refused login.
pub fn refusal_code(reason: &LoginRefused) -> ConnectReturnCode {
    match reason {
        LoginRefused::ReservedClientId => ConnectReturnCode::BadClientId,
        LoginRefused::UnknownDevice | LoginRefused::Revoked | LoginRefused::WrongPerson => {
            ConnectReturnCode::NotAuthorized
        }
        LoginRefused::Anonymous
        | LoginRefused::MalformedUsername
        | LoginRefused::MalformedToken
        | LoginRefused::Stale
        | LoginRefused::BadSignature
        | LoginRefused::BadServiceLogin => ConnectReturnCode::BadUserNamePassword,
    }
}

/// A SUBSCRIBE split by the rules: what the broker is asked, and where the refused filters
/// go back into its SUBACK.
#[derive(Debug, PartialEq, Eq)]
pub struct SplitSubscribe {
    /// The allowed filters under the client's packet id, or `None` when none is allowed.
    pub forward: Option<Subscribe>,
    /// One entry per filter the client sent, in order: whether it was allowed.
    pub allowed: Vec<bool>,
}

pub fn split_subscribe(
    principal: &Principal,
    subscribe: &Subscribe,
    enrolled_person: impl Fn(&DeviceId) -> Option<PersonId>,
) -> SplitSubscribe {
    let allowed: Vec<bool> = subscribe
        .filters
        .iter()
        .map(|f| acl::may_subscribe(principal, &f.path, &enrolled_person))
        .collect();
    let filters: Vec<_> = subscribe
        .filters
        .iter()
        .zip(&allowed)
        .filter(|(_, ok)| **ok)
        .map(|(f, _)| f.clone())
        .collect();
    let forward = (!filters.is_empty()).then_some(Subscribe {
        pkid: subscribe.pkid,
        filters,
    });
    SplitSubscribe { forward, allowed }
}

/// The client's SUBACK: the broker's codes for the allowed filters (in order), failure for the
/// refused ones. A broker answer with too few codes fails the missing ones.
pub fn merge_suback(pkid: u16, allowed: &[bool], broker: &[SubscribeReasonCode]) -> SubAck {
    let mut codes = broker.iter();
    let return_codes = allowed
        .iter()
        .map(|ok| match ok {
            true => codes
                .next()
                .copied()
                .unwrap_or(SubscribeReasonCode::Failure),
            false => SubscribeReasonCode::Failure,
        })
        .collect();
    SubAck::new(pkid, return_codes)
}

/// A client's stream, in clear (loopback) or TLS.
trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> ClientStream for S {}

/// Serves the front on `listener` until the runtime stops, forwarding to the broker at
/// `upstream`; with `tls`, every connection first completes a TLS handshake (within
/// [`CONNECT_TIMEOUT`]) and speaks MQTT inside it. `slots` bounds the connections of every
/// listener that shares it.
pub async fn serve(
    listener: TcpListener,
    tls: Option<vigil_tls::TlsAcceptor>,
    upstream: SocketAddr,
    auth: Arc<ConnectAuth>,
    secret: InternalSecret,
    slots: Arc<Semaphore>,
) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "MQTT front: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "MQTT front: connection limit reached; closed");
            continue;
        };
        let (auth, secret, tls) = (auth.clone(), secret.clone(), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _ = client.set_nodelay(true);
            let closed = match tls {
                None => connection(client, upstream, &auth, &secret).await,
                Some(acceptor) => {
                    match tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(client)).await {
                        Ok(Ok(stream)) => connection(stream, upstream, &auth, &secret).await,
                        Ok(Err(error)) => Err(Closed::Handshake(error.to_string())),
                        Err(_) => Err(Closed::Handshake("timed out".into())),
                    }
                }
            };
            if let Err(reason) = closed {
                tracing::info!(%peer, %reason, "MQTT connection closed");
            }
        });
    }
}

/// Why the front closed a connection (logged, never sent).
#[derive(Debug, thiserror::Error)]
enum Closed {
    #[error("no CONNECT within the timeout")]
    ConnectTimeout,
    #[error("TLS handshake: {0}")]
    Handshake(String),
    #[error("CONNECT refused: {0}")]
    Refused(String),
    #[error("malformed packet: {0}")]
    Malformed(CodecError),
    #[error("publish on {0:?}, which this client may not publish on")]
    Forbidden(String),
    #[error("the device was revoked")]
    Revoked,
    #[error("a second CONNECT")]
    SecondConnect,
    #[error("a write took longer than {WRITE_TIMEOUT:?}")]
    WriteTimeout,
    #[error("too many subscribes waiting for the broker")]
    TooManyPending,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads one whole packet into `buffer` from `stream`, or `None` at end of stream.
async fn read_packet(
    stream: &mut (impl AsyncReadExt + Unpin),
    buffer: &mut BytesMut,
) -> Result<Option<Packet>, Closed> {
    loop {
        match Packet::read(buffer, PACKET_BYTES_MAX) {
            Ok(packet) => return Ok(Some(packet)),
            Err(CodecError::InsufficientBytes(_)) => {}
            Err(error) => return Err(Closed::Malformed(error)),
        }
        if stream.read_buf(buffer).await? == 0 {
            return Ok(None);
        }
    }
}

async fn write_packet(
    stream: &mut (impl AsyncWriteExt + Unpin),
    packet: &Packet,
) -> Result<(), Closed> {
    let mut out = BytesMut::with_capacity(packet.size() + 5);
    packet
        .write(&mut out, PACKET_BYTES_MAX)
        .map_err(Closed::Malformed)?;
    tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&out))
        .await
        .map_err(|_| Closed::WriteTimeout)??;
    Ok(())
}

async fn refuse(client: &mut impl ClientStream, refusal: Refusal, why: String) -> Closed {
    let _ = client.write_all(&refusal.bytes()).await;
    let _ = client.shutdown().await;
    Closed::Refused(why)
}

/// Reads and checks the CONNECT; on success the principal and the CONNECT to forward.
async fn admit(
    client: &mut impl ClientStream,
    auth: &ConnectAuth,
    secret: &InternalSecret,
) -> Result<Admitted, Closed> {
    let mut buffer = BytesMut::with_capacity(1024);
    // Enough bytes for the protocol name and level first, so that another version is refused
    // in its own terms before the 3.1.1 parser sees it.
    let protocol = tokio::time::timeout(CONNECT_TIMEOUT, async {
        loop {
            if let Some((name, level)) = connect_protocol(&buffer) {
                return Ok::<_, Closed>(Some((name.to_vec(), level)));
            }
            if buffer.len() > 16 || client.read_buf(&mut buffer).await? == 0 {
                return Ok(None);
            }
        }
    })
    .await
    .map_err(|_| Closed::ConnectTimeout)??;
    match protocol {
        Some((name, 4)) if name == b"MQTT" => {}
        Some((name, 5)) if name == b"MQTT" => {
            return Err(refuse(client, Refusal::ProtocolV5, "MQTT 5".into()).await);
        }
        Some(_) => {
            return Err(refuse(client, Refusal::ProtocolV4, "not MQTT 3.1.1".into()).await);
        }
        None => return Err(Closed::Refused("not a CONNECT".into())),
    }
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, read_packet(client, &mut buffer))
        .await
        .map_err(|_| Closed::ConnectTimeout)??;
    let Some(Packet::Connect(mut connect)) = connect else {
        return Err(Closed::Refused("not a CONNECT".into()));
    };
    let (username, password) = connect
        .login
        .as_ref()
        .map_or((String::new(), String::new()), |l| {
            (l.username.clone(), l.password.clone())
        });
    let principal = match auth.check(&connect.client_id, &username, &password, now_ms()) {
        Ok(principal) => principal,
        Err(reason) => {
            let why = reason.to_string();
            return Err(refuse(client, Refusal::Login(refusal_code(&reason)), why).await);
        }
    };
    if let Some(will) = &connect.last_will
        && !acl::may_publish(&principal, &will.topic, |d| auth.enrolled_person(d))
    {
        let why = format!("a will on {:?}", will.topic);
        let code = Refusal::Login(ConnectReturnCode::NotAuthorized);
        return Err(refuse(client, code, why).await);
    }
    connect.client_id = namespaced_client_id(&principal, &connect.client_id);
    connect.clean_session = true;
    // A staff token is checked again on every revocation tick (it may be withdrawn).
    let relogin = matches!(principal, Principal::Service(_)).then(|| (username.clone(), password));
    connect.login = Some(Login::new(username, secret.password.clone()));
    // Whatever the client sent right behind its CONNECT stays in `buffer` for the relay.
    Ok(Admitted {
        principal,
        relogin,
        connect: Packet::Connect(connect),
        buffer,
    })
}

/// A client past its CONNECT: who it is, the CONNECT to forward, and the bytes it sent after.
struct Admitted {
    principal: Principal,
    /// A staff client's username and token, to check again while it stays connected.
    relogin: Option<(String, String)>,
    connect: Packet,
    buffer: BytesMut,
}

async fn connection(
    mut client: impl ClientStream,
    upstream: SocketAddr,
    auth: &ConnectAuth,
    secret: &InternalSecret,
) -> Result<(), Closed> {
    let admitted = admit(&mut client, auth, secret).await?;
    let mut broker = TcpStream::connect(upstream).await?;
    let _ = broker.set_nodelay(true);
    write_packet(&mut broker, &admitted.connect).await?;
    let admitted_still = || {
        auth.still_admitted(&admitted.principal)
            && admitted
                .relogin
                .as_ref()
                .is_none_or(|(username, token)| auth.check_service_login(username, token))
    };
    relay(
        client,
        broker,
        &admitted.principal,
        auth,
        &admitted_still,
        admitted.buffer,
    )
    .await
}

/// Moves packets both ways until either side closes, checking what the client sends.
async fn relay(
    client: impl ClientStream,
    broker: TcpStream,
    principal: &Principal,
    auth: &ConnectAuth,
    still_admitted: &impl Fn() -> bool,
    mut from_client: BytesMut,
) -> Result<(), Closed> {
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut broker_rx, mut broker_tx) = broker.into_split();
    let mut from_broker = BytesMut::new();
    // Packet id → which filters were allowed, for the SUBACKs to merge.
    let mut pending: HashMap<u16, Vec<bool>> = HashMap::new();
    let mut revocation = tokio::time::interval(REVOCATION_CHECK);
    loop {
        tokio::select! {
            packet = read_packet(&mut client_rx, &mut from_client) => {
                let Some(packet) = packet? else { return Ok(()) };
                match packet {
                    Packet::Publish(publish)
                        if !acl::may_publish(principal, &publish.topic, |d| auth.enrolled_person(d)) =>
                    {
                        disconnect(&mut broker_tx).await;
                        return Err(Closed::Forbidden(publish.topic));
                    }
                    Packet::Publish(_) if !still_admitted() => {
                        disconnect(&mut broker_tx).await;
                        return Err(Closed::Revoked);
                    }
                    Packet::Subscribe(subscribe) => {
                        let split = split_subscribe(principal, &subscribe, |d| auth.enrolled_person(d));
                        match split.forward {
                            None => {
                                let refused = merge_suback(subscribe.pkid, &split.allowed, &[]);
                                write_packet(&mut client_tx, &Packet::SubAck(refused)).await?;
                            }
                            Some(forward) => {
                                if split.allowed.iter().any(|ok| !ok) {
                                    if pending.len() >= PENDING_SUBSCRIBES_MAX {
                                        return Err(Closed::TooManyPending);
                                    }
                                    pending.insert(subscribe.pkid, split.allowed);
                                }
                                write_packet(&mut broker_tx, &Packet::Subscribe(forward)).await?;
                            }
                        }
                    }
                    Packet::Connect(_) => return Err(Closed::SecondConnect),
                    other => write_packet(&mut broker_tx, &other).await?,
                }
            }
            packet = read_packet(&mut broker_rx, &mut from_broker) => {
                let Some(packet) = packet? else { return Ok(()) };
                let packet = match packet {
                    Packet::SubAck(ack) => match pending.remove(&ack.pkid) {
                        Some(allowed) => Packet::SubAck(merge_suback(ack.pkid, &allowed, &ack.return_codes)),
                        None => Packet::SubAck(ack),
                    },
                    other => other,
                };
                write_packet(&mut client_tx, &packet).await?;
            }
            _ = revocation.tick() => {
                if !still_admitted() {
                    disconnect(&mut broker_tx).await;
                    return Err(Closed::Revoked);
                }
            }
        }
    }
}

/// Ends the client's session at the broker as a clean DISCONNECT, so that a client closed for
/// what it did does not get its will published.
async fn disconnect(broker: &mut (impl AsyncWriteExt + Unpin)) {
    let _ = write_packet(broker, &Packet::Disconnect).await;
}

/// The client id the broker sees: the client's own, inside its principal's namespace, so that
/// no principal can reach another's session (rumqttd keys sessions and takeovers by client id).
/// A digest in hex: rumqttd 0.20 fails a connection whose id holds `/` or `:` (its will handler
/// then panics on the next one with the same id).
pub fn namespaced_client_id(principal: &Principal, client_id: &str) -> String {
    let scoped = match principal {
        Principal::Device { person, device } => format!("d:{person}/{device}:{client_id}"),
        Principal::Service(name) => format!("s:{name}:{client_id}"),
    };
    format!("c{}", hex::encode(&Sha256::digest(scoped.as_bytes())[..16]))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::QoS;
    use rumqttc::mqttbytes::v4::{Connect, SubscribeFilter};

    fn connect_frame(protocol_name: &str, level: u8) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&(protocol_name.len() as u16).to_be_bytes());
        body.extend_from_slice(protocol_name.as_bytes());
        body.push(level);
        body.extend_from_slice(&[0x02, 0x00, 0x3c, 0x00, 0x01, b'c']);
        let mut frame = vec![0x10, body.len() as u8];
        frame.extend_from_slice(&body);
        frame
    }

    #[test]
    fn the_protocol_is_read_before_the_rest_of_a_connect() {
        let mut out = BytesMut::new();
        Connect::new("client").write(&mut out).expect("encodes");
        assert_eq!(connect_protocol(&out), Some((&b"MQTT"[..], 4)));
        assert_eq!(
            connect_protocol(&connect_frame("MQTT", 5)),
            Some((&b"MQTT"[..], 5))
        );
        assert_eq!(
            connect_protocol(&connect_frame("MQIsdp", 3)),
            Some((&b"MQIsdp"[..], 3))
        );
        // Cut short, or not a CONNECT: nothing to say yet.
        let frame = connect_frame("MQTT", 4);
        for cut in 0..8 {
            assert_eq!(connect_protocol(&frame[..cut]), None, "{cut}");
        }
        assert_eq!(connect_protocol(&[0x30, 0x02, 0x00, 0x00]), None);
        assert_eq!(
            connect_protocol(&[0x10, 0xff, 0xff, 0xff, 0xff, 0x00]),
            None
        );
    }

    #[test]
    fn refusals_are_connacks_of_the_clients_own_version() {
        let mut bytes = BytesMut::from(&Refusal::ProtocolV4.bytes()[..]);
        let Ok(Packet::ConnAck(ack)) = Packet::read(&mut bytes, 16) else {
            panic!("a 3.1.1 CONNACK");
        };
        assert_eq!(ack.code, ConnectReturnCode::RefusedProtocolVersion);
        let mut bytes =
            BytesMut::from(&Refusal::Login(refusal_code(&LoginRefused::Anonymous)).bytes()[..]);
        let Ok(Packet::ConnAck(ack)) = Packet::read(&mut bytes, 16) else {
            panic!("a 3.1.1 CONNACK");
        };
        assert_eq!(ack.code, ConnectReturnCode::BadUserNamePassword);
        assert_eq!(Refusal::ProtocolV5.bytes(), [0x20, 0x03, 0x00, 0x84, 0x00]);
        assert_eq!(
            refusal_code(&LoginRefused::Revoked),
            ConnectReturnCode::NotAuthorized
        );
        assert_eq!(
            refusal_code(&LoginRefused::ReservedClientId),
            ConnectReturnCode::BadClientId
        );
    }

    #[test]
    fn refused_filters_fail_in_place_and_only_allowed_ones_reach_the_broker() {
        let person = PersonId::from_bytes([0x11; 16]);
        let device: DeviceId = "thermo-1".parse().expect("valid");
        let me = Principal::Device {
            person,
            device: device.clone(),
        };
        let filter = |path: &str| SubscribeFilter::new(path.to_owned(), QoS::AtLeastOnce);
        let subscribe = Subscribe {
            pkid: 7,
            filters: vec![
                filter("#"),
                filter(&crate::topic::reply(person, &device)),
                filter("vigil/+/+/up"),
                filter(&crate::topic::alerts(person)),
            ],
        };
        let enrolled = |d: &DeviceId| (*d == device).then_some(person);
        let split = split_subscribe(&me, &subscribe, enrolled);
        assert_eq!(split.allowed, [false, true, false, true]);
        let forward = split.forward.expect("two allowed");
        assert_eq!(forward.pkid, 7);
        assert_eq!(forward.filters.len(), 2);
        let granted = SubscribeReasonCode::Success(QoS::AtLeastOnce);
        let merged = merge_suback(7, &split.allowed, &[granted, granted]);
        assert_eq!(
            merged.return_codes,
            [
                SubscribeReasonCode::Failure,
                granted,
                SubscribeReasonCode::Failure,
                granted
            ]
        );
        // Nothing allowed: nothing forwarded, every filter failed.
        let only_wildcard = Subscribe {
            pkid: 8,
            filters: vec![filter("#")],
        };
        let split = split_subscribe(&me, &only_wildcard, enrolled);
        assert_eq!(split.forward, None);
        assert_eq!(
            merge_suback(8, &split.allowed, &[]).return_codes,
            [SubscribeReasonCode::Failure]
        );
        // A broker answering fewer codes than asked fails the rest, never grants them.
        assert_eq!(
            merge_suback(9, &[true, true], &[granted]).return_codes,
            [granted, SubscribeReasonCode::Failure]
        );
    }

    #[test]
    fn the_internal_secret_admits_itself_only() {
        let secret = InternalSecret::generate().expect("random");
        assert!(secret.admits(&secret.password));
        assert!(!secret.admits(""));
        assert!(!secret.admits(&secret.password[1..]));
        assert!(!format!("{secret:?}").contains(&secret.password));
    }
}
