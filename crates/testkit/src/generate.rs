//! Generated tables for benchmarks: any number of rows of every shape and
//! both families, rendered by tcptab's renderer (which the tests prove
//! byte-exact against real kernel output).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tcptab::procnet::ByteOrder;
use tcptab::procnet::{header, render_line};
use tcptab::{
    Congestion, Family, Pointer, RowKind, Socket, Ssthresh, State, Ticks, Timer, TimerKind,
};

/// A small deterministic generator (xorshift64*), so every run parses the
/// same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn socket(rng: &mut Rng, family: Family, sl: u32) -> Socket {
    let ip = |rng: &mut Rng| match family {
        Family::Ipv4 => IpAddr::V4(Ipv4Addr::from(rng.next() as u32)),
        Family::Ipv6 => IpAddr::V6(Ipv6Addr::from(
            ((rng.next() as u128) << 64) | rng.next() as u128,
        )),
    };
    let roll = rng.below(100);
    let kind = match roll {
        0..=69 => RowKind::Full,
        70..=89 => RowKind::TimeWait,
        _ => RowKind::Request,
    };
    let mut s = Socket::empty(family, kind);
    s.sl = sl;
    s.local = SocketAddr::new(ip(rng), rng.below(65536) as u16);
    s.remote = SocketAddr::new(ip(rng), rng.below(65536) as u16);
    match kind {
        RowKind::Full => {
            let state = State::LISTED[rng.below(State::LISTED.len() as u64) as usize];
            s.state = if state == State::TimeWait || state == State::SynRecv {
                State::Established
            } else {
                state
            };
            s.tx_queue = if rng.below(4) == 0 {
                rng.below(1 << 20) as u32
            } else {
                0
            };
            s.rx_queue = if rng.below(4) == 0 {
                rng.below(1 << 16) as u32
            } else {
                0
            };
            let code = [0u8, 1, 2, 4][rng.below(4) as usize];
            s.timer = Timer {
                kind: TimerKind::from_code(code),
                expires: Ticks(if code == 0 { 0 } else { rng.below(800_000) }),
            };
            s.uid = [0, 33, 1000, 100999][rng.below(4) as usize];
            s.inode = 10_000 + rng.below(50_000_000);
            s.refcount = 1 + rng.below(3) as i32;
            s.congestion = Some(Congestion {
                rto: Ticks(20 + rng.below(200)),
                ato: Ticks(rng.below(5)),
                quick_pingpong: rng.below(33) as u32,
                cwnd: 1 + rng.below(100) as u32,
                ssthresh: Ssthresh::from_column(
                    s.state,
                    if rng.below(2) == 0 {
                        -1
                    } else {
                        rng.below(1000) as i32
                    },
                ),
            });
        }
        RowKind::TimeWait => {
            s.state = if rng.below(8) == 0 {
                State::FinWait2
            } else {
                State::TimeWait
            };
            s.timer.expires = Ticks(rng.below(6000));
            s.refcount = 3;
        }
        RowKind::Request => {
            s.timer.expires = Ticks(rng.below(300));
            s.retransmits = rng.below(3) as u32;
            s.uid = 1000;
        }
    }
    if rng.below(16) == 0 {
        s.pointer = Pointer::from_text(format!("{:016x}", rng.next() as u32).as_bytes())
            .expect("16 hex digits");
    }
    s
}

/// The text of one family's table with `rows` sockets.
pub fn table(family: Family, rows: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(rows * 170 + 200);
    out.extend_from_slice(header(family).as_bytes());
    for sl in 0..rows {
        render_line(
            &socket(&mut rng, family, sl as u32),
            ByteOrder::native(),
            &mut out,
        );
    }
    out
}

/// Both tables with `rows` sockets in all, half each family.
pub fn tables(rows: usize) -> (Vec<u8>, Vec<u8>) {
    let v4 = rows / 2;
    (
        table(Family::Ipv4, v4, 4),
        table(Family::Ipv6, rows - v4, 6),
    )
}
