//! The dump request: `nlmsghdr` + `inet_diag_req_v2` (linux/inet_diag.h).

use super::bytecode::Ports;
use super::wire::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use crate::model::StateSet;
use crate::model::{Family, State};

pub use super::abi::{
    AF_INET, AF_INET6, INET_DIAG_CONG, INET_DIAG_INFO, INET_DIAG_SKMEMINFO, IPPROTO_TCP,
    SOCK_DESTROY, SOCK_DIAG_BY_FAMILY, TCPDIAG_GETSOCK,
};

/// Which optional attributes to ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extensions {
    /// `INET_DIAG_INFO` (tcp_info) and `INET_DIAG_CONG` (the algorithm).
    pub info: bool,
    /// `INET_DIAG_SKMEMINFO`.
    pub memory: bool,
}

impl Extensions {
    /// tcp_info and the congestion algorithm, no memory.
    pub const TCP_INFO: Extensions = Extensions {
        info: true,
        memory: false,
    };

    fn bits(self) -> u8 {
        let bit = |t: u16| 1u8 << (t - 1);
        let mut bits = 0;
        if self.info {
            bits |= bit(INET_DIAG_INFO) | bit(INET_DIAG_CONG);
        }
        if self.memory {
            bits |= bit(INET_DIAG_SKMEMINFO);
        }
        bits
    }
}

/// What a dump asks for, whatever its family: the optional attributes,
/// the states, a filter program for the kernel to run (see
/// [`bytecode`](super::bytecode)) and the ports every socket asked for has
/// (see [`Ports`]: the kernel skips the others before the program).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask<'a> {
    pub extensions: Extensions,
    pub states: StateSet,
    pub program: Option<&'a [u8]>,
    pub ports: Ports,
}

impl Ask<'_> {
    /// `extensions` of the sockets in `states`: no program, any port.
    pub fn new(extensions: Extensions, states: StateSet) -> Ask<'static> {
        Ask {
            extensions,
            states,
            program: None,
            ports: Ports::default(),
        }
    }
}

/// The kernel state mask for `states`: request sockets are NEW_SYN_RECV
/// and TIME_WAIT sockets of the FIN_WAIT2 substate are TIME_WAIT inside
/// the kernel, so their bits are added when SYN_RECV or FIN_WAIT2 is asked.
pub fn state_mask(states: StateSet) -> u32 {
    let mut mask = states.kernel_mask();
    if states.contains(State::SynRecv) {
        mask |= 1 << State::NewSynRecv.code();
    }
    if states.contains(State::FinWait2) {
        mask |= 1 << State::TimeWait.code();
    }
    mask
}

/// `nlmsghdr` (to the kernel: pid 0) and the head of `inet_diag_req_v2`
/// (family, protocol, extensions, pad, state mask) of a request of `LEN`
/// bytes in all; the socket id follows.
fn request_head(kind: u16, flags: u16, seq: u32, family: Family, ext: u8, states: u32) -> Vec<u8> {
    let mut msg = Vec::with_capacity(LEN);
    msg.extend_from_slice(&(LEN as u32).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.push(match family {
        Family::Ipv4 => AF_INET,
        Family::Ipv6 => AF_INET6,
    });
    msg.push(IPPROTO_TCP);
    msg.push(ext);
    msg.push(0); // pad
    msg.extend_from_slice(&states.to_ne_bytes());
    msg
}

/// The length of both requests: `nlmsghdr` and `inet_diag_req_v2`.
const LEN: usize = 16 + 56;

/// The bytes of one dump request, with a filter `program` for the kernel
/// to run (the `INET_DIAG_REQ_BYTECODE` attribute after the request).
pub fn dump_request(family: Family, ask: &Ask<'_>, seq: u32) -> Vec<u8> {
    let mut msg = request_head(
        SOCK_DIAG_BY_FAMILY,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        family,
        ask.extensions.bits(),
        state_mask(ask.states),
    );
    dump_socket_id(&mut msg, ask.ports);
    debug_assert_eq!(msg.len(), LEN);
    with_program(msg, ask.program)
}

/// The `inet_diag_sockid` of a dump: the ports every socket asked for has
/// (network order, 0 for any), the rest zero, the cookie "none".
fn dump_socket_id(msg: &mut Vec<u8>, ports: Ports) {
    msg.extend_from_slice(&ports.local.to_be_bytes());
    msg.extend_from_slice(&ports.remote.to_be_bytes());
    msg.extend_from_slice(&[0u8; 36]);
    msg.extend_from_slice(&u32::MAX.to_ne_bytes());
    msg.extend_from_slice(&u32::MAX.to_ne_bytes());
}

/// `msg` with the `INET_DIAG_REQ_BYTECODE` attribute of `program` after
/// it, and its length updated.
fn with_program(mut msg: Vec<u8>, program: Option<&[u8]>) -> Vec<u8> {
    if let Some(program) = program {
        // struct nlattr: length (header and payload, unpadded), type; the
        // payload padded to 4 bytes.
        let attr_len = 4 + program.len();
        msg.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        msg.extend_from_slice(&super::bytecode::INET_DIAG_REQ_BYTECODE.to_ne_bytes());
        msg.extend_from_slice(program);
        msg.resize(msg.len().next_multiple_of(4), 0);
        let total = msg.len() as u32;
        msg[..4].copy_from_slice(&total.to_ne_bytes());
    }
    msg
}

/// The bytes of a `TCPDIAG_GETSOCK` dump request (`nlmsghdr` and the older
/// `struct inet_diag_req`: family, source and destination prefix lengths,
/// extensions, socket id, states, tables): the kernel answers it with
/// both families' sockets in one walk of its hash tables (its family is
/// AF_UNSPEC inside), in messages of the same type.
pub fn both_families_request(ask: &Ask<'_>, seq: u32) -> Vec<u8> {
    const COMPAT_LEN: usize = 16 + 60;
    let mut msg = Vec::with_capacity(COMPAT_LEN);
    msg.extend_from_slice(&(COMPAT_LEN as u32).to_ne_bytes());
    msg.extend_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&[0, 0, 0, ask.extensions.bits()]);
    dump_socket_id(&mut msg, ask.ports);
    msg.extend_from_slice(&state_mask(ask.states).to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // idiag_dbs
    debug_assert_eq!(msg.len(), COMPAT_LEN);
    with_program(msg, ask.program)
}

/// One socket, as `struct inet_diag_sockid` names it: what a destroy
/// request matches (every field, the cookie included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketId {
    pub family: Family,
    pub local: std::net::SocketAddr,
    pub remote: std::net::SocketAddr,
    /// The bound interface index (0: none).
    pub interface: u32,
    pub cookie: u64,
}

/// The bytes of a `SOCK_DESTROY` request for `id`, asking for an answer
/// (`NLM_F_ACK`: the kernel replies with an NLMSG_ERROR, 0 on success).
pub fn destroy_request(id: &SocketId, seq: u32) -> Vec<u8> {
    // No extensions, any state.
    let mut msg = request_head(
        SOCK_DESTROY,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        id.family,
        0,
        u32::MAX,
    );
    // inet_diag_sockid: ports in network order, addresses as the dump
    // gave them (IPv4 in the first word), interface, cookie as two words.
    msg.extend_from_slice(&id.local.port().to_be_bytes());
    msg.extend_from_slice(&id.remote.port().to_be_bytes());
    for addr in [id.local.ip(), id.remote.ip()] {
        let mut bytes = [0u8; 16];
        match addr {
            std::net::IpAddr::V4(v4) => bytes[..4].copy_from_slice(&v4.octets()),
            std::net::IpAddr::V6(v6) => bytes = v6.octets(),
        }
        msg.extend_from_slice(&bytes);
    }
    msg.extend_from_slice(&id.interface.to_ne_bytes());
    msg.extend_from_slice(&(id.cookie as u32).to_ne_bytes());
    msg.extend_from_slice(&((id.cookie >> 32) as u32).to_ne_bytes());
    debug_assert_eq!(msg.len(), LEN);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let ext = Extensions {
            info: true,
            memory: true,
        };
        let msg = dump_request(Family::Ipv6, &Ask::new(ext, StateSet::ALL), 7);
        assert_eq!(msg.len(), 72);
        // The socket id: any port, cookie "none".
        assert_eq!(&msg[24..28], &[0, 0, 0, 0]);
        assert_eq!(&msg[64..72], &[0xff; 8]);
        let ports = Ports {
            local: 22,
            remote: 5432,
        };
        let ask = Ask {
            ports,
            ..Ask::new(ext, StateSet::ALL)
        };
        let fixed = dump_request(Family::Ipv6, &ask, 7);
        assert_eq!(&fixed[24..28], &[0, 22, 0x15, 0x38]);
        assert_eq!(u16::from_ne_bytes([msg[4], msg[5]]), 20);
        assert_eq!(u16::from_ne_bytes([msg[6], msg[7]]), 0x301);
        assert_eq!(&msg[16..19], &[10, 6, 0b0100_1010]);
        // Every state but BOUND_INACTIVE (13), which makes the kernel walk
        // its bind table: asked for only when named.
        assert_eq!(
            u32::from_ne_bytes(msg[20..24].try_into().unwrap()),
            !(1u32 << 13)
        );
        let bound = StateSet::from_name("bound-inactive").unwrap();
        assert_eq!(state_mask(bound), (1 << 13) | (1 << State::Close.code()));
        let all_but_listen = StateSet::from_name("all")
            .unwrap()
            .intersection(StateSet::of(&[State::Listen]).complement());
        assert_eq!(state_mask(all_but_listen) & (1 << 13), 0);
    }

    #[test]
    fn both_families_request_layout() {
        let program = [1u8, 4, 8, 0];
        let ports = Ports {
            local: 0,
            remote: 443,
        };
        let ask = Ask {
            program: Some(&program),
            ports,
            ..Ask::new(Extensions::default(), StateSet::ALL)
        };
        let msg = both_families_request(&ask, 3);
        assert_eq!(msg.len(), 76 + 8);
        assert_eq!(&msg[20..24], &[0, 0, 1, 0xbb]);
        assert_eq!(u32::from_ne_bytes(msg[..4].try_into().unwrap()), 84);
        assert_eq!(u16::from_ne_bytes([msg[4], msg[5]]), 18);
        assert_eq!(&msg[16..20], &[0, 0, 0, 0]);
        assert_eq!(
            u32::from_ne_bytes(msg[68..72].try_into().unwrap()),
            !(1u32 << 13)
        );
        // The attribute: length 8, type 1, the program.
        assert_eq!(&msg[76..84], &[8, 0, 1, 0, 1, 4, 8, 0]);
    }

    #[test]
    fn destroy_request_layout() {
        let id = SocketId {
            family: Family::Ipv4,
            local: "127.0.0.1:80".parse().unwrap(),
            remote: "10.0.0.2:5555".parse().unwrap(),
            interface: 3,
            cookie: 0x1122_3344_5566_7788,
        };
        let msg = destroy_request(&id, 9);
        assert_eq!(msg.len(), 72);
        assert_eq!(u16::from_ne_bytes([msg[4], msg[5]]), 21);
        assert_eq!(u16::from_ne_bytes([msg[6], msg[7]]), 0x5);
        assert_eq!(&msg[16..20], &[2, 6, 0, 0]);
        assert_eq!(&msg[24..28], &[0, 80, 0x15, 0xb3]);
        assert_eq!(&msg[28..32], &[127, 0, 0, 1]);
        assert_eq!(&msg[44..48], &[10, 0, 0, 2]);
        assert_eq!(u32::from_ne_bytes(msg[60..64].try_into().unwrap()), 3);
        assert_eq!(
            u32::from_ne_bytes(msg[64..68].try_into().unwrap()),
            0x5566_7788
        );
        assert_eq!(
            u32::from_ne_bytes(msg[68..72].try_into().unwrap()),
            0x1122_3344
        );
    }

    #[test]
    fn masks_cover_the_kernels_internal_states() {
        let syn = state_mask(StateSet::of(&[State::SynRecv]));
        assert_eq!(syn, (1 << 3) | (1 << 12));
        let fw2 = state_mask(StateSet::of(&[State::FinWait2]));
        assert_eq!(fw2, (1 << 5) | (1 << 6));
    }
}
