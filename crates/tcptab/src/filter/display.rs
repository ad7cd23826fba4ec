//! An expression written back in the filter language.

use std::fmt;
use std::net::IpAddr;

use super::{Expr, Side};
use crate::model::State;

impl fmt::Display for Expr {
    /// The expression in the filter language (compound operands in
    /// parentheses), e.g. for saying what ran in the kernel.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |side: Side, port: bool| match (side, port) {
            (Side::Local, true) => "sport",
            (Side::Remote, true) => "dport",
            (Side::Local, false) => "src",
            (Side::Remote, false) => "dst",
            (Side::Either, true) => "port",
            (Side::Either, false) => "host",
        };
        let operand = |f: &mut fmt::Formatter<'_>, e: &Expr| match e {
            Expr::And(..) | Expr::Or(..) => write!(f, "( {e} )"),
            e => write!(f, "{e}"),
        };
        match self {
            Expr::All => write!(f, "all"),
            Expr::State(set) => {
                let names: Vec<&str> = State::ALL
                    .iter()
                    .filter(|s| set.contains(**s))
                    .filter_map(|s| s.ss_name())
                    .collect();
                write!(f, "state {}", names.join("|"))
            }
            Expr::Family(family) => write!(f, "family {}", family.as_str()),
            Expr::Port { side: s, cmp, port } => {
                write!(f, "{} {} :{port}", side(*s, true), cmp.symbol())
            }
            Expr::PortRange { side: s, range } => {
                write!(f, "{} :{}-{}", side(*s, true), range.low, range.high)
            }
            Expr::Addr { side: s, net, port } => {
                let host = match net.address {
                    IpAddr::V6(a) => format!("[{a}]/{}", net.prefix),
                    IpAddr::V4(a) => format!("{a}/{}", net.prefix),
                };
                match port {
                    Some(p) => write!(f, "{} {host}:{p}", side(*s, false)),
                    None => write!(f, "{} {host}", side(*s, false)),
                }
            }
            Expr::Autobound { .. } => write!(f, "autobound"),
            Expr::Dev { name, .. } => write!(f, "dev {name}"),
            Expr::Uid(uid) => write!(f, "uid {uid}"),
            Expr::Cgroup { path, .. } => write!(f, "cgroup {path}"),
            Expr::Unit(p) => write!(f, "unit {p}"),
            Expr::Container(p) => write!(f, "container {p}"),
            Expr::Pod(p) => write!(f, "pod {p}"),
            Expr::Pid(pid) => write!(f, "pid {pid}"),
            Expr::Process(name) => write!(f, "process {name}"),
            Expr::Not(e) => {
                write!(f, "not ")?;
                operand(f, e)
            }
            Expr::And(a, b) | Expr::Or(a, b) => {
                operand(f, a)?;
                write!(
                    f,
                    " {} ",
                    if matches!(self, Expr::And(..)) {
                        "and"
                    } else {
                        "or"
                    }
                )?;
                operand(f, b)
            }
        }
    }
}
