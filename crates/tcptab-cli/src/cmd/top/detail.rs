//! The detail view of one connection: every field decoded, with its unit.
//! Its owners in full; the kernel's line for it, field by field as
//! `tcptab explain` decodes it; what netlink adds; tcp_info in groups
//! (round trip, windows, data, rates, times, state); socket memory.

use tcptab::procnet::{render_line, ByteOrder};
use tcptab::{Ownership, TcpInfo};

use super::view::Row;

/// Where a field's value starts on its line.
pub const VALUE_AT: usize = 2 + NAME + 2;
const NAME: usize = 22;

/// The view's lines: a title line for each group (no indent), then
/// `  name  value` lines, the values from [`VALUE_AT`].
pub fn lines(row: &Row) -> Vec<String> {
    let e = row.entry.as_entry();
    let s = e.socket;
    let mut out = vec![format!(
        "{} -> {}  {} ({} socket, {}){}",
        crate::output::cells::Endpoint(s.local, None),
        crate::output::cells::Endpoint(s.remote, None),
        s.state,
        s.kind.as_str().replace('_', " "),
        s.family,
        e.namespace.map_or(String::new(), |n| format!(
            ", network namespace {}",
            n.label()
        ))
    )];
    let field = |out: &mut Vec<String>, name: &str, value: String| {
        out.push(format!("  {name:<NAME$}  {value}"));
    };
    out.push("Owners".into());
    match e.owners {
        Some(Ownership::Owned(list)) => {
            for o in list {
                field(&mut out, &o.command, format!("pid {}, fd {}", o.pid, o.fd));
            }
        }
        Some(Ownership::NoProcess) => field(
            &mut out,
            "none",
            "no process can hold it (TIME_WAIT, request or orphaned)".into(),
        ),
        Some(Ownership::Unknown) => field(
            &mut out,
            "unknown",
            "some processes could not be read (not root)".into(),
        ),
        Some(Ownership::NotFound) => field(&mut out, "none found", "every process was read".into()),
        None => field(&mut out, "not looked up", String::new()),
    }
    out.push("The kernel's line (/proc/net/tcp, as tcptab explain decodes it)".into());
    let mut text = Vec::new();
    render_line(s, ByteOrder::native(), &mut text);
    let text = String::from_utf8_lossy(&text);
    match tcptab::explain::explain_line(text.trim_end(), ByteOrder::native()) {
        Ok(explained) => {
            for p in explained.parts {
                field(&mut out, p.field, format!("{}  ({})", p.value, p.meaning));
            }
        }
        Err(e) => field(&mut out, "not decoded", e.to_string()),
    }
    let Some(d) = e.diag else {
        return out;
    };
    out.push("Netlink".into());
    field(&mut out, "cookie", d.cookie.to_string());
    if let Some(limit) = d.backlog_limit {
        field(
            &mut out,
            "accept queue limit",
            format!("{limit} connections"),
        );
    }
    field(
        &mut out,
        "interface",
        match d.interface {
            0 => "none (not bound to one)".into(),
            i => format!("index {i}"),
        },
    );
    if let Some(cc) = &d.congestion_algorithm {
        field(&mut out, "congestion control", cc.to_string());
    }
    if let Some(how) = d.shutdown {
        let what = match how & 3 {
            0 => "neither side shut",
            1 => "receive side shut",
            2 => "send side shut",
            _ => "both sides shut",
        };
        field(&mut out, "shutdown", what.into());
    }
    if let Some(v6only) = d.v6only {
        field(&mut out, "IPv6 only", v6only.to_string());
    }
    if let Some(info) = d.tcp_info.as_deref() {
        tcp_info(&mut out, info);
    }
    if let Some(m) = d.memory.as_deref() {
        out.push("Memory".into());
        for (name, v) in [
            ("receive queue", m.rmem_alloc),
            ("receive buffer", m.rcvbuf),
            ("send in flight", m.wmem_alloc),
            ("send buffer", m.sndbuf),
            ("send queue", m.wmem_queued),
            ("reserved ahead", m.fwd_alloc),
            ("options", m.optmem),
            ("backlog", m.backlog),
        ] {
            field(&mut out, name, format!("{v} bytes"));
        }
        field(&mut out, "dropped", format!("{} packets", m.drops));
    }
    out
}

/// One group of tcp_info's fields: names and values.
type Group = fn(&TcpInfo) -> Vec<(&'static str, String)>;

fn tcp_info(out: &mut Vec<String>, t: &TcpInfo) {
    let groups: [(&str, Group); 6] = [
        ("tcp_info: round trip", round_trip),
        ("tcp_info: windows", windows),
        ("tcp_info: data", data),
        ("tcp_info: rates", rates),
        ("tcp_info: times", times),
        ("tcp_info: state", state),
    ];
    for (title, fields) in groups {
        out.push(title.to_string());
        for (name, value) in fields(t) {
            out.push(format!("  {name:<NAME$}  {value}"));
        }
    }
}

/// A time in microseconds, in milliseconds.
fn ms(us: u32) -> String {
    format!("{:.3} ms", f64::from(us) / 1000.0)
}

/// A pacing or delivery rate (`u64::MAX`: no limit).
fn rate(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".to_string()
    } else {
        format!("{v} B/s")
    }
}

/// tcp_info's round trip.
fn round_trip(t: &TcpInfo) -> Vec<(&'static str, String)> {
    vec![
        ("rtt", format!("{} ± {}", ms(t.rtt_us), ms(t.rttvar_us))),
        ("lowest rtt", ms(t.min_rtt_us)),
        ("receiver's rtt", ms(t.rcv_rtt_us)),
        ("retransmission timeout", ms(t.rto_us)),
        ("delayed ACK timeout", ms(t.ato_us)),
    ]
}

/// tcp_info's windows.
fn windows(t: &TcpInfo) -> Vec<(&'static str, String)> {
    vec![
        ("congestion window", format!("{} segments", t.snd_cwnd)),
        (
            "slow start threshold",
            if t.snd_ssthresh >= 0x7FFF_FFFF {
                "infinite (initial slow start)".into()
            } else {
                format!("{} segments", t.snd_ssthresh)
            },
        ),
        ("peer's window", format!("{} bytes", t.snd_wnd)),
        ("receive space", format!("{} bytes", t.rcv_space)),
        ("receive window clamp", format!("{} bytes", t.rcv_ssthresh)),
        (
            "MSS send / receive",
            format!(
                "{} / {} bytes (advertised {})",
                t.snd_mss, t.rcv_mss, t.advmss
            ),
        ),
        ("path MTU", format!("{} bytes", t.pmtu)),
        (
            "window scale",
            format!("send {}, receive {}", t.snd_wscale, t.rcv_wscale),
        ),
    ]
}

/// tcp_info's data.
fn data(t: &TcpInfo) -> Vec<(&'static str, String)> {
    vec![
        ("bytes acked", format!("{} bytes", t.bytes_acked)),
        ("bytes received", format!("{} bytes", t.bytes_received)),
        (
            "bytes sent",
            format!("{} bytes, {} retransmitted", t.bytes_sent, t.bytes_retrans),
        ),
        (
            "segments out / in",
            format!(
                "{} / {} ({} / {} with data)",
                t.segs_out, t.segs_in, t.data_segs_out, t.data_segs_in
            ),
        ),
        (
            "retransmitted",
            format!("{} segments over its life", t.total_retrans),
        ),
        (
            "in flight",
            format!(
                "{} unacked, {} sacked, {} lost, {} retransmitted",
                t.unacked, t.sacked, t.lost, t.retrans
            ),
        ),
        ("not yet sent", format!("{} bytes", t.notsent_bytes)),
        (
            "delivered",
            format!("{} segments ({} with ECN CE)", t.delivered, t.delivered_ce),
        ),
        (
            "reordering",
            format!(
                "{} segments; seen {} times; {} DSACK duplicates; {} out of order",
                t.reordering, t.reord_seen, t.dsack_dups, t.rcv_ooopack
            ),
        ),
    ]
}

/// tcp_info's rates.
fn rates(t: &TcpInfo) -> Vec<(&'static str, String)> {
    vec![
        (
            "pacing",
            format!(
                "{} (limit {})",
                rate(t.pacing_rate),
                rate(t.max_pacing_rate)
            ),
        ),
        (
            "delivery",
            format!(
                "{}{}",
                rate(t.delivery_rate),
                if t.delivery_rate_app_limited {
                    ", limited by the application"
                } else {
                    ""
                }
            ),
        ),
    ]
}

/// tcp_info's times.
fn times(t: &TcpInfo) -> Vec<(&'static str, String)> {
    vec![
        ("since data sent", format!("{} ms", t.last_data_sent_ms)),
        ("since data received", format!("{} ms", t.last_data_recv_ms)),
        ("since ACK received", format!("{} ms", t.last_ack_recv_ms)),
        ("busy", format!("{} µs", t.busy_time_us)),
        (
            "limited by peer window",
            format!("{} µs", t.rwnd_limited_us),
        ),
        (
            "limited by send buffer",
            format!("{} µs", t.sndbuf_limited_us),
        ),
    ]
}

/// tcp_info's state.
fn state(t: &TcpInfo) -> Vec<(&'static str, String)> {
    vec![
        (
            "congestion state",
            match t.ca_state {
                0 => "open".into(),
                1 => "disorder".into(),
                2 => "cwr".into(),
                3 => "recovery".into(),
                4 => "loss".into(),
                n => n.to_string(),
            },
        ),
        (
            "timeouts in a row",
            format!(
                "{} (backoff {}), {} probes",
                t.retransmits, t.backoff, t.probes
            ),
        ),
        ("options", options(t.options)),
        (
            "tcp_info length",
            format!(
                "{} bytes{}",
                t.length,
                if t.truncated {
                    " (an older kernel: later fields 0)"
                } else {
                    ""
                }
            ),
        ),
    ]
}

fn options(bits: u8) -> String {
    let names: Vec<&str> = [
        (1, "timestamps"),
        (2, "SACK"),
        (4, "window scaling"),
        (8, "ECN"),
        (16, "ECN seen"),
        (32, "SYN data"),
    ]
    .iter()
    .filter(|(bit, _)| bits & bit != 0)
    .map(|(_, name)| *name)
    .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
