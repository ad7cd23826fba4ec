//! A plain, obviously-correct parser of the same grammar as `parse.rs`:
//! split the line on spaces, then convert each token with the standard
//! library. Slow, and allocates; it exists so the tests and the fuzz target
//! can check the fast parser against it. It decides only *whether* a line is
//! valid and what it means, not which field an error names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::layout::ByteOrder;
use crate::model::{
    Congestion, Family, Pointer, RowKind, Socket, Ssthresh, State, Ticks, Timer, TimerKind,
};

/// Parse one data line, or say why not in plain words.
pub fn parse_line(line: &str, order: ByteOrder) -> Result<Socket, String> {
    let tokens: Vec<&str> = line.split(' ').filter(|t| !t.is_empty()).collect();
    if tokens.len() != 12 && tokens.len() != 17 {
        return Err(format!("{} tokens", tokens.len()));
    }
    let sl = tokens[0]
        .strip_suffix(':')
        .ok_or("sl: no colon")
        .and_then(|t| dec(t).ok_or("sl"))?;
    let sl = u32::try_from(sl).map_err(|_| "sl range")?;
    let (local, local_family) = addr_port(tokens[1], order)?;
    let (remote, remote_family) = addr_port(tokens[2], order)?;
    if local_family != remote_family {
        return Err("family mismatch".into());
    }
    let state = hex(tokens[3], 8).filter(|&v| v <= 0xFF).ok_or("st")? as u8;
    let (tx, rx) = tokens[4].split_once(':').ok_or("tx:rx")?;
    let tx_queue = hex(tx, 8).ok_or("tx")? as u32;
    let rx_queue = hex(rx, 8).ok_or("rx")? as u32;
    let (tr, when) = tokens[5].split_once(':').ok_or("tr:when")?;
    let timer_code = hex(tr, 8).filter(|&v| v <= 0xFF).ok_or("tr")? as u8;
    let expires = hex(when, 16).ok_or("when")?;
    let retransmits = hex(tokens[6], 8).ok_or("retrnsmt")? as u32;
    let uid = signed(tokens[7]).ok_or("uid")?;
    let uid = if uid < 0 {
        i32::try_from(uid).map_err(|_| "uid")? as u32
    } else {
        u32::try_from(uid).map_err(|_| "uid")?
    };
    let probes = signed(tokens[8])
        .and_then(|v| i32::try_from(v).ok())
        .ok_or("timeout")?;
    let inode = dec(tokens[9]).ok_or("inode")?;
    let refcount = signed(tokens[10])
        .and_then(|v| i32::try_from(v).ok())
        .ok_or("ref")?;
    let ptr = tokens[11];
    let ptr_ok = if ptr.starts_with('(') {
        ptr.ends_with(')') && ptr.len() >= 2
    } else {
        (ptr.len() == 8 || ptr.len() == 16) && ptr.chars().all(|c| c.is_ascii_hexdigit())
    };
    let pointer = ptr_ok
        .then(|| Pointer::from_text(ptr.as_bytes()))
        .flatten()
        .ok_or("pointer")?;
    let state = State::from_code(state);
    let timer = Timer {
        kind: TimerKind::from_code(timer_code),
        expires: Ticks(expires),
    };
    let (kind, congestion) = if tokens.len() == 12 {
        match (timer.kind, state) {
            (TimerKind::TimeWait, _) => (RowKind::TimeWait, None),
            (TimerKind::Retransmit, State::SynRecv) => (RowKind::Request, None),
            _ => return Err("unknown short row".into()),
        }
    } else {
        let small = |t: &str| dec(t).and_then(|v| u32::try_from(v).ok());
        let last = signed(tokens[16])
            .and_then(|v| i32::try_from(v).ok())
            .ok_or("ssthresh")?;
        let congestion = Congestion {
            rto: Ticks(dec(tokens[12]).ok_or("rto")?),
            ato: Ticks(dec(tokens[13]).ok_or("ato")?),
            quick_pingpong: small(tokens[14]).ok_or("quick")?,
            cwnd: small(tokens[15]).ok_or("cwnd")?,
            ssthresh: Ssthresh::from_column(state, last),
        };
        (RowKind::Full, Some(congestion))
    };
    Ok(Socket {
        sl,
        family: local_family,
        kind,
        state,
        local,
        remote,
        tx_queue,
        rx_queue,
        timer,
        retransmits,
        uid,
        probes,
        inode,
        refcount,
        pointer,
        congestion,
    })
}

fn hex(t: &str, max_digits: usize) -> Option<u64> {
    if t.is_empty() || t.len() > max_digits || !t.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(t, 16).ok()
}

fn dec(t: &str) -> Option<u64> {
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

fn signed(t: &str) -> Option<i64> {
    match t.strip_prefix('-') {
        Some(rest) => dec(rest).and_then(|v| 0i64.checked_sub_unsigned(v)),
        None => dec(t).and_then(|v| i64::try_from(v).ok()),
    }
}

fn addr_port(t: &str, order: ByteOrder) -> Result<(SocketAddr, Family), String> {
    let (addr, port) = t.split_once(':').ok_or("addr:port")?;
    let port = hex(port, 4).ok_or("port")? as u16;
    let word = |i: usize| -> Result<u32, String> {
        let w = addr.get(i * 8..i * 8 + 8).ok_or("address")?;
        Ok(hex(w, 8).ok_or("address")? as u32)
    };
    let (ip, family) = match addr.len() {
        8 => (
            IpAddr::V4(Ipv4Addr::from(order.word_to_bytes(word(0)?))),
            Family::Ipv4,
        ),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&order.word_to_bytes(word(i)?));
            }
            (IpAddr::V6(Ipv6Addr::from(bytes)), Family::Ipv6)
        }
        _ => return Err("address length".into()),
    };
    Ok((SocketAddr::new(ip, port), family))
}
