//! The kernel's numbers for sock_diag, in one place, as the headers name
//! them: linux/netlink.h (message types and flags), linux/sock_diag.h
//! (requests and multicast groups), linux/inet_diag.h (attributes and the
//! filter program's operations), linux/socket.h and linux/in.h (families,
//! the protocol). The layouts that go with them are in `wire`, `request`
//! and `response`.

// linux/netlink.h
pub const NLMSG_HDRLEN: usize = 16;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_DUMP: u16 = 0x300;

// linux/sock_diag.h
/// The dump request of `struct inet_diag_req_v2`.
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// Close one socket, as `ss -K` does.
pub const SOCK_DESTROY: u16 = 21;
/// Multicast groups of destroyed TCP sockets.
pub const SKNLGRP_INET_TCP_DESTROY: u32 = 1;
pub const SKNLGRP_INET6_TCP_DESTROY: u32 = 3;

// linux/inet_diag.h
/// The older dump request (`struct inet_diag_req`), which asks for both
/// families at once.
pub const TCPDIAG_GETSOCK: u16 = 18;
/// `sizeof(struct inet_diag_msg)`.
pub const INET_DIAG_MSG_LEN: usize = 72;
/// Request attribute: the filter program.
pub const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// Response attributes (`INET_DIAG_*`); a request asks for attribute `t`
/// with bit `1 << (t - 1)` of `idiag_ext`.
pub const INET_DIAG_INFO: u16 = 2;
pub const INET_DIAG_CONG: u16 = 4;
pub const INET_DIAG_SKMEMINFO: u16 = 7;
pub const INET_DIAG_SHUTDOWN: u16 = 8;
/// Sent for every IPv6 socket, asked or not: whether it is IPV6_V6ONLY.
pub const INET_DIAG_SKV6ONLY: u16 = 11;
/// The socket's cgroup v2 id: sent for every full socket (Linux 5.7 and
/// later, `CONFIG_SOCK_CGROUP_DATA`), never asked for.
pub const INET_DIAG_CGROUP_ID: u16 = 21;
/// The filter program's operations (`INET_DIAG_BC_*`).
pub const INET_DIAG_BC_JMP: u8 = 1;
pub const INET_DIAG_BC_S_GE: u8 = 2;
pub const INET_DIAG_BC_S_LE: u8 = 3;
pub const INET_DIAG_BC_D_GE: u8 = 4;
pub const INET_DIAG_BC_D_LE: u8 = 5;
pub const INET_DIAG_BC_AUTO: u8 = 6;
pub const INET_DIAG_BC_S_COND: u8 = 7;
pub const INET_DIAG_BC_D_COND: u8 = 8;
pub const INET_DIAG_BC_DEV_COND: u8 = 9;
/// `u64` cgroup v2 id after the op: the socket's cgroup is that one.
pub const INET_DIAG_BC_CGROUP_COND: u8 = 13;

// linux/socket.h, linux/in.h
pub const AF_UNSPEC: u8 = 0;
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;
pub const IPPROTO_TCP: u8 = 6;
