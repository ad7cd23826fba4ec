//! Filter programs for the kernel: the address, port, interface and
//! `autobound` part of a filter compiled into inet_diag bytecode, sent with
//! the dump request as its `INET_DIAG_REQ_BYTECODE` attribute, so that the
//! kernel copies out only the sockets that can match (linux/inet_diag.h has
//! the opcodes; the kernel's `inet_diag_bc_audit` says what it accepts).
//!
//! A program is a run of operations, each `struct inet_diag_bc_op` (code,
//! `yes`, `no`) and its operand. The kernel starts at the first; an
//! operation that holds moves on by `yes` bytes, one that fails by `no`.
//! Reaching the end exactly accepts the socket; going 4 bytes past it
//! rejects it. The audit wants every `yes` to lead to the next operation,
//! every jump forward and onto an operation, so the code here always falls
//! through on success and jumps on failure; `JMP` always fails, which makes
//! it an unconditional jump.
//!
//! Not every condition has an operation (states inside an expression, uid,
//! owners, family), so the program is the part of the filter that can run
//! in the kernel: conditions it cannot test count as "holds" where that
//! widens the answer and "fails" under a `not`, so the kernel's answer is
//! always a superset and the full filter, applied after the dump, decides.

use crate::filter::{Cmp, Expr, PortRange, Side};
use std::net::IpAddr;

pub use super::abi::INET_DIAG_REQ_BYTECODE;
use super::abi::{
    AF_INET, AF_INET6, AF_UNSPEC, INET_DIAG_BC_AUTO as BC_AUTO,
    INET_DIAG_BC_CGROUP_COND as BC_CGROUP_COND, INET_DIAG_BC_DEV_COND as BC_DEV_COND,
    INET_DIAG_BC_D_COND as BC_D_COND, INET_DIAG_BC_D_GE as BC_D_GE, INET_DIAG_BC_D_LE as BC_D_LE,
    INET_DIAG_BC_JMP as BC_JMP, INET_DIAG_BC_S_COND as BC_S_COND, INET_DIAG_BC_S_GE as BC_S_GE,
    INET_DIAG_BC_S_LE as BC_S_LE,
};

/// The longest program a request carries: jumps are 16-bit byte offsets,
/// and the attribute's length is 16 bits too.
const MAX_LEN: usize = 60_000;

/// A filter compiled for the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The bytecode.
    pub bytes: Vec<u8>,
    /// What runs in the kernel, in the filter language (for `-v`).
    pub runs: Expr,
    /// Whether the kernel tests the whole filter (nothing was left to be
    /// tested only after the dump).
    pub whole: bool,
}

/// Compile the part of `expr` the kernel can test. None when no part of it
/// narrows the dump (nothing to send), or when the program would be longer
/// than a request can carry.
pub fn compile(expr: &Expr) -> Option<Program> {
    let (wide, narrow) = bounds(expr);
    let whole = wide == narrow;
    let runs = match wide {
        Bound::Holds => return None,
        Bound::Fails => Expr::Not(Box::new(Expr::All)),
        Bound::Test(e) => e,
    };
    let mut code = Code::default();
    code.emit(&runs, Target::Reject);
    let bytes = code.assemble()?;
    Some(Program { bytes, runs, whole })
}

/// The ports every socket a filter selects has (0: any), for the socket id
/// of a dump request. The kernel compares them with each socket of its
/// connection table before it takes a reference to it or runs the
/// program (`inet_diag_dump_icsk`: a port that differs skips the socket
/// there), and a remote port skips the listeners at once (theirs is 0):
/// a filter on one port then costs the walk and little more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ports {
    pub local: u16,
    pub remote: u16,
}

impl Ports {
    /// The ports `expr` fixes: `sport = :P`, `dst ADDR:P`, `--dport P`,
    /// alone or in every branch of an `or`, or in either side of an `and`.
    pub fn of(expr: &Expr) -> Ports {
        let (local, remote) = fixed(expr);
        Ports {
            local: local.unwrap_or(0),
            remote: remote.unwrap_or(0),
        }
    }
}

/// The local and remote ports of every socket `expr` selects, where it
/// fixes them (never 0: the kernel reads 0 as "any").
fn fixed(expr: &Expr) -> (Option<u16>, Option<u16>) {
    let on = |side: Side, port: u16| match side {
        _ if port == 0 => (None, None),
        Side::Local => (Some(port), None),
        Side::Remote => (None, Some(port)),
        Side::Either => (None, None),
    };
    match expr {
        Expr::Port {
            side,
            cmp: Cmp::Eq,
            port,
        } => on(*side, *port),
        Expr::Addr {
            side,
            port: Some(port),
            ..
        } => on(*side, *port),
        Expr::PortRange { side, range } if range.low == range.high => on(*side, range.low),
        Expr::And(a, b) => {
            let (a, b) = (fixed(a), fixed(b));
            (a.0.or(b.0), a.1.or(b.1))
        }
        Expr::Or(a, b) => {
            let (a, b) = (fixed(a), fixed(b));
            let same = |x: Option<u16>, y: Option<u16>| if x == y { x } else { None };
            (same(a.0, b.0), same(a.1, b.1))
        }
        _ => (None, None),
    }
}

/// A kernel-side expression: a constant, or conditions the kernel tests.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bound {
    Holds,
    Fails,
    Test(Expr),
}

impl Bound {
    fn and(a: Bound, b: Bound) -> Bound {
        match (a, b) {
            (Bound::Fails, _) | (_, Bound::Fails) => Bound::Fails,
            (Bound::Holds, x) | (x, Bound::Holds) => x,
            (Bound::Test(a), Bound::Test(b)) => Bound::Test(Expr::And(Box::new(a), Box::new(b))),
        }
    }

    fn or(a: Bound, b: Bound) -> Bound {
        match (a, b) {
            (Bound::Holds, _) | (_, Bound::Holds) => Bound::Holds,
            (Bound::Fails, x) | (x, Bound::Fails) => x,
            (Bound::Test(a), Bound::Test(b)) => Bound::Test(Expr::Or(Box::new(a), Box::new(b))),
        }
    }

    fn not(a: Bound) -> Bound {
        match a {
            Bound::Holds => Bound::Fails,
            Bound::Fails => Bound::Holds,
            Bound::Test(e) => Bound::Test(Expr::Not(Box::new(e))),
        }
    }
}

/// The widest and the narrowest kernel-side expressions around `expr`:
/// every socket `expr` selects passes the first, and every socket the
/// second passes is selected by `expr` (when the kernel can test all of
/// it, the two are equal).
fn bounds(expr: &Expr) -> (Bound, Bound) {
    match expr {
        Expr::All => (Bound::Holds, Bound::Holds),
        Expr::Not(e) => {
            let (wide, narrow) = bounds(e);
            (Bound::not(narrow), Bound::not(wide))
        }
        Expr::And(a, b) => {
            let (wa, na) = bounds(a);
            let (wb, nb) = bounds(b);
            (Bound::and(wa, wb), Bound::and(na, nb))
        }
        Expr::Or(a, b) => {
            let (wa, na) = bounds(a);
            let (wb, nb) = bounds(b);
            (Bound::or(wa, wb), Bound::or(na, nb))
        }
        Expr::Dev { index: None, .. } | Expr::Cgroup { id: None, .. } => {
            (Bound::Fails, Bound::Fails)
        }
        Expr::Port { .. }
        | Expr::Cgroup { .. }
        | Expr::PortRange { .. }
        | Expr::Addr { .. }
        | Expr::Autobound { .. }
        | Expr::Dev { .. } => (Bound::Test(expr.clone()), Bound::Test(expr.clone())),
        // No operation tests these.
        Expr::State(_)
        | Expr::Family(_)
        | Expr::Uid(_)
        | Expr::Pid(_)
        | Expr::Process(_)
        | Expr::Unit(_)
        | Expr::Container(_)
        | Expr::Pod(_) => (Bound::Holds, Bound::Fails),
    }
}

/// Where a failing operation jumps.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// A label: the operation placed after it.
    Label(usize),
    /// Past the end: the socket is rejected.
    Reject,
}

struct Op {
    code: u8,
    no: Target,
    operand: Vec<u8>,
}

#[derive(Default)]
struct Code {
    ops: Vec<Op>,
    /// Each label's operation index (`ops.len()` at the end: accept).
    labels: Vec<usize>,
}

impl Code {
    fn label(&mut self) -> usize {
        self.labels.push(usize::MAX);
        self.labels.len() - 1
    }

    fn place(&mut self, label: usize) {
        self.labels[label] = self.ops.len();
    }

    fn op(&mut self, code: u8, no: Target, operand: Vec<u8>) {
        self.ops.push(Op { code, no, operand });
    }

    /// Code that falls through when `e` holds and jumps to `fail` when not.
    fn emit(&mut self, e: &Expr, fail: Target) {
        match e {
            Expr::And(a, b) => {
                self.emit(a, fail);
                self.emit(b, fail);
            }
            Expr::Or(a, b) => {
                let second = self.label();
                let done = self.label();
                self.emit(a, Target::Label(second));
                self.op(BC_JMP, Target::Label(done), Vec::new());
                self.place(second);
                self.emit(b, fail);
                self.place(done);
            }
            Expr::Not(inner) => {
                let holds = self.label();
                self.emit(inner, Target::Label(holds));
                self.op(BC_JMP, fail, Vec::new());
                self.place(holds);
            }
            Expr::All => {}
            Expr::Port { side, cmp, port } => {
                let either = |one: &dyn Fn(Side) -> Expr| {
                    Expr::Or(Box::new(one(Side::Local)), Box::new(one(Side::Remote)))
                };
                if *side == Side::Either {
                    let e = either(&|side| Expr::Port {
                        side,
                        cmp: *cmp,
                        port: *port,
                    });
                    return self.emit(&e, fail);
                }
                let local = *side == Side::Local;
                match cmp {
                    Cmp::Eq => self.op(
                        cond_code(local),
                        fail,
                        hostcond(AF_UNSPEC, 0, *port as i32, &[]),
                    ),
                    Cmp::Ge => self.compare(local, true, *port, fail),
                    Cmp::Le => self.compare(local, false, *port, fail),
                    Cmp::Ne | Cmp::Lt | Cmp::Gt => {
                        let opposite = match cmp {
                            Cmp::Ne => Cmp::Eq,
                            Cmp::Lt => Cmp::Ge,
                            _ => Cmp::Le,
                        };
                        let e = Expr::Not(Box::new(Expr::Port {
                            side: *side,
                            cmp: opposite,
                            port: *port,
                        }));
                        self.emit(&e, fail);
                    }
                }
            }
            Expr::PortRange { side, range } => {
                if *side == Side::Either {
                    let one = |side| Expr::PortRange {
                        side,
                        range: *range,
                    };
                    let e = Expr::Or(Box::new(one(Side::Local)), Box::new(one(Side::Remote)));
                    return self.emit(&e, fail);
                }
                let PortRange { low, high } = *range;
                let e = Expr::And(
                    Box::new(Expr::Port {
                        side: *side,
                        cmp: Cmp::Ge,
                        port: low,
                    }),
                    Box::new(Expr::Port {
                        side: *side,
                        cmp: Cmp::Le,
                        port: high,
                    }),
                );
                self.emit(&e, fail);
            }
            Expr::Addr { side, net, port } => {
                if *side == Side::Either {
                    let one = |side| Expr::Addr {
                        side,
                        net: *net,
                        port: *port,
                    };
                    let e = Expr::Or(Box::new(one(Side::Local)), Box::new(one(Side::Remote)));
                    return self.emit(&e, fail);
                }
                let port = port.map_or(-1, i32::from);
                let operand = match net.address {
                    IpAddr::V4(a) => hostcond(AF_INET, net.prefix, port, &a.octets()),
                    IpAddr::V6(a) => hostcond(AF_INET6, net.prefix, port, &a.octets()),
                };
                self.op(cond_code(*side == Side::Local), fail, operand);
            }
            Expr::Autobound { .. } => self.op(BC_AUTO, fail, Vec::new()),
            Expr::Dev { index, .. } => match index {
                Some(index) => self.op(BC_DEV_COND, fail, index.to_ne_bytes().to_vec()),
                None => self.op(BC_JMP, fail, Vec::new()),
            },
            Expr::Cgroup { id, .. } => match id {
                Some(id) => self.op(BC_CGROUP_COND, fail, id.to_ne_bytes().to_vec()),
                None => self.op(BC_JMP, fail, Vec::new()),
            },
            // `bounds` (which names every condition) left no other in a
            // program.
            _ => unreachable!("not a kernel condition: {e}"),
        }
    }

    /// `S_GE`/`S_LE`/`D_GE`/`D_LE`: the port in a second `bc_op`'s `no`.
    fn compare(&mut self, local: bool, at_least: bool, port: u16, fail: Target) {
        let code = match (local, at_least) {
            (true, true) => BC_S_GE,
            (true, false) => BC_S_LE,
            (false, true) => BC_D_GE,
            (false, false) => BC_D_LE,
        };
        let mut operand = vec![0, 0];
        operand.extend_from_slice(&port.to_ne_bytes());
        self.op(code, fail, operand);
    }

    /// The bytes, with every jump resolved; None when too long.
    fn assemble(self) -> Option<Vec<u8>> {
        let mut offsets = Vec::with_capacity(self.ops.len() + 1);
        let mut at = 0usize;
        for op in &self.ops {
            offsets.push(at);
            at += 4 + op.operand.len();
        }
        offsets.push(at);
        let total = at;
        if total > MAX_LEN {
            return None;
        }
        let mut bytes = Vec::with_capacity(total);
        for (i, op) in self.ops.iter().enumerate() {
            let target = match op.no {
                Target::Label(l) => offsets[self.labels[l]],
                Target::Reject => total + 4,
            };
            let yes = 4 + op.operand.len();
            let no = target - offsets[i];
            bytes.push(op.code);
            bytes.push(yes as u8);
            bytes.extend_from_slice(&(no as u16).to_ne_bytes());
            bytes.extend_from_slice(&op.operand);
        }
        Some(bytes)
    }
}

fn cond_code(local: bool) -> u8 {
    if local {
        BC_S_COND
    } else {
        BC_D_COND
    }
}

/// `struct inet_diag_hostcond` (family, prefix length, 2 bytes of padding,
/// port: -1 for any) and the address in network order.
fn hostcond(family: u8, prefix: u8, port: i32, address: &[u8]) -> Vec<u8> {
    let mut operand = vec![family, prefix, 0, 0];
    operand.extend_from_slice(&port.to_ne_bytes());
    operand.extend_from_slice(address);
    operand
}

/// The kernel's side, re-stated to test the compiler against: what
/// `inet_diag_bc_audit` accepts and what `inet_diag_bc_run` answers.
#[cfg(any(test, feature = "internals"))]
pub mod kernel {
    /// What the kernel knows of a socket when it runs a program
    /// (`struct inet_diag_entry`).
    #[derive(Debug, Clone, Copy)]
    pub struct InetDiagEntry {
        pub family: u8,
        /// IPv4 in the first 4 bytes.
        pub saddr: [u8; 16],
        pub daddr: [u8; 16],
        pub sport: u16,
        pub dport: u16,
        /// `SOCK_BINDPORT_LOCK` set: the program bound the port.
        pub bind_locked: bool,
        pub ifindex: u32,
        /// A full socket's cgroup v2 id; 0 for the others.
        pub cgroup_id: u64,
    }

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_ne_bytes([b[at], b[at + 1]])
    }

    /// `inet_diag_bc_audit`: Ok, or what the kernel would refuse.
    pub fn audit(program: &[u8]) -> Result<(), String> {
        let mut at = 0usize;
        while at < program.len() {
            let len = program.len() - at;
            if len < 4 {
                return Err(format!("{at}: a partial operation"));
            }
            let op = &program[at..];
            let (code, yes, no) = (op[0], op[1] as usize, u16_at(op, 2) as usize);
            let mut min = 4;
            match code {
                7 | 8 => {
                    if len < 12 {
                        return Err(format!("{at}: a short host condition"));
                    }
                    let alen = match op[4] {
                        0 => 0,
                        2 => 4,
                        10 => 16,
                        f => return Err(format!("{at}: family {f}")),
                    };
                    min += 8 + alen;
                    if len < min || op[5] as usize > 8 * alen {
                        return Err(format!("{at}: a bad host condition"));
                    }
                }
                9 => min += 4,
                13 => min += 8,
                2..=5 => min += 4,
                0 | 1 | 6 => {}
                c => return Err(format!("{at}: unknown operation {c}")),
            }
            if len < min {
                return Err(format!("{at}: a short operation"));
            }
            if code != 0 {
                if no < min || no > len + 4 || !no.is_multiple_of(4) {
                    return Err(format!("{at}: no={no} (len {len})"));
                }
                if no < len && !lands_on_an_operation(program, len - no) {
                    return Err(format!("{at}: no={no} lands inside an operation"));
                }
            }
            if yes < min || yes > len + 4 || !yes.is_multiple_of(4) {
                return Err(format!("{at}: yes={yes}"));
            }
            at += yes;
        }
        if at == program.len() {
            Ok(())
        } else {
            Err("the last operation runs past the end".into())
        }
    }

    /// `valid_cc`: an operation starts `remaining` bytes before the end.
    fn lands_on_an_operation(program: &[u8], remaining: usize) -> bool {
        let mut at = 0usize;
        while at < program.len() {
            let len = program.len() - at;
            if remaining > len {
                return false;
            }
            if remaining == len {
                return true;
            }
            let yes = program[at + 1] as usize;
            if yes < 4 || !yes.is_multiple_of(4) {
                return false;
            }
            at += yes;
        }
        false
    }

    /// `inet_diag_bc_run`: whether the program accepts `e`.
    pub fn run(program: &[u8], e: &InetDiagEntry) -> bool {
        let mut at = 0isize;
        let total = program.len() as isize;
        while at < total {
            let op = &program[at as usize..];
            let code = op[0];
            let yes = match code {
                1 => false,
                2 => e.sport >= u16_at(op, 6),
                3 => e.sport <= u16_at(op, 6),
                4 => e.dport >= u16_at(op, 6),
                5 => e.dport <= u16_at(op, 6),
                6 => !e.bind_locked,
                7 | 8 => {
                    let port = i32::from_ne_bytes(op[8..12].try_into().unwrap());
                    let prefix = op[5] as usize;
                    let (addr, eport) = if code == 7 {
                        (&e.saddr, e.sport)
                    } else {
                        (&e.daddr, e.dport)
                    };
                    let family = op[4];
                    let cond = &op[12..];
                    if port != -1 && port != i32::from(eport) {
                        false
                    } else if family != 0 && family != e.family {
                        // Only an IPv4 condition crosses families: it
                        // holds an IPv4-mapped address.
                        let mapped = addr[..10] == [0; 10] && addr[10..12] == [0xff, 0xff];
                        e.family == 10 && family == 2 && mapped && bits(&addr[12..16], cond, prefix)
                    } else {
                        prefix == 0 || bits(addr, cond, prefix)
                    }
                }
                9 => u32::from_ne_bytes(op[4..8].try_into().unwrap()) == e.ifindex,
                13 => u64::from_ne_bytes(op[4..12].try_into().unwrap()) == e.cgroup_id,
                _ => true,
            };
            at += if yes {
                op[1] as isize
            } else {
                u16_at(op, 2) as isize
            };
        }
        at == total
    }

    fn bits(a: &[u8], b: &[u8], prefix: usize) -> bool {
        (0..prefix).all(|i| (a[i / 8] >> (7 - i % 8)) & 1 == (b[i / 8] >> (7 - i % 8)) & 1)
    }
}

#[cfg(test)]
mod tests;
