//! TCP states: one socket's ([`State`], every code the kernel defines,
//! and any other kept as read) and sets of them ([`StateSet`], with `ss`'s
//! groups), as filters, dump requests and counts take them.

use std::fmt;
use std::str::FromStr;

/// A TCP state (`include/net/tcp_states.h`). A value this crate does not
/// know is kept as [`State::Other`], not rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    NewSynRecv,
    BoundInactive,
    /// Any other code, kept as read.
    Other(u8),
}

impl State {
    /// Every named state, in kernel code order.
    pub const ALL: [State; 13] = [
        State::Established,
        State::SynSent,
        State::SynRecv,
        State::FinWait1,
        State::FinWait2,
        State::TimeWait,
        State::Close,
        State::CloseWait,
        State::LastAck,
        State::Listen,
        State::Closing,
        State::NewSynRecv,
        State::BoundInactive,
    ];

    /// The states that can appear in the text tables and in a tcp_diag dump
    /// (NEW_SYN_RECV is shown as SYN_RECV; BOUND_INACTIVE is only a request
    /// bit: the kernel reports the sockets it finds so as CLOSE).
    pub const LISTED: [State; 11] = {
        // The first eleven of ALL, in the same order.
        let mut listed = [State::Established; 11];
        let mut i = 0;
        while i < listed.len() {
            listed[i] = State::ALL[i];
            i += 1;
        }
        listed
    };

    /// Decode the kernel's numeric state (a table lookup, see `by_code`).
    pub fn from_code(code: u8) -> State {
        const TABLE: [State; 256] = by_code!(State::decode, State::Other(0));
        TABLE[code as usize]
    }

    const fn decode(code: u8) -> State {
        match code {
            0x01 => State::Established,
            0x02 => State::SynSent,
            0x03 => State::SynRecv,
            0x04 => State::FinWait1,
            0x05 => State::FinWait2,
            0x06 => State::TimeWait,
            0x07 => State::Close,
            0x08 => State::CloseWait,
            0x09 => State::LastAck,
            0x0A => State::Listen,
            0x0B => State::Closing,
            0x0C => State::NewSynRecv,
            0x0D => State::BoundInactive,
            other => State::Other(other),
        }
    }

    /// The kernel's numeric state.
    pub fn code(self) -> u8 {
        match self {
            State::Established => 0x01,
            State::SynSent => 0x02,
            State::SynRecv => 0x03,
            State::FinWait1 => 0x04,
            State::FinWait2 => 0x05,
            State::TimeWait => 0x06,
            State::Close => 0x07,
            State::CloseWait => 0x08,
            State::LastAck => 0x09,
            State::Listen => 0x0A,
            State::Closing => 0x0B,
            State::NewSynRecv => 0x0C,
            State::BoundInactive => 0x0D,
            State::Other(code) => code,
        }
    }

    /// Kernel spelling (`ESTABLISHED`, `SYN_RECV`, ...), or `None` for an
    /// unknown code.
    pub fn kernel_name(self) -> Option<&'static str> {
        Some(match self {
            State::Established => "ESTABLISHED",
            State::SynSent => "SYN_SENT",
            State::SynRecv => "SYN_RECV",
            State::FinWait1 => "FIN_WAIT1",
            State::FinWait2 => "FIN_WAIT2",
            State::TimeWait => "TIME_WAIT",
            State::Close => "CLOSE",
            State::CloseWait => "CLOSE_WAIT",
            State::LastAck => "LAST_ACK",
            State::Listen => "LISTEN",
            State::Closing => "CLOSING",
            State::NewSynRecv => "NEW_SYN_RECV",
            State::BoundInactive => "BOUND_INACTIVE",
            State::Other(_) => return None,
        })
    }

    /// The spelling `ss` uses (`estab`, `syn-sent`, ...).
    pub fn ss_name(self) -> Option<&'static str> {
        Some(match self {
            State::Established => "estab",
            State::SynSent => "syn-sent",
            State::SynRecv => "syn-recv",
            State::FinWait1 => "fin-wait-1",
            State::FinWait2 => "fin-wait-2",
            State::TimeWait => "time-wait",
            State::Close => "unconnected",
            State::CloseWait => "close-wait",
            State::LastAck => "last-ack",
            State::Listen => "listening",
            State::Closing => "closing",
            State::NewSynRecv => "new-syn-recv",
            State::BoundInactive => "bound-inactive",
            State::Other(_) => return None,
        })
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kernel_name() {
            Some(name) => f.write_str(name),
            None => write!(f, "UNKNOWN({:#04x})", self.code()),
        }
    }
}

/// The error of [`State::from_str`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownState(pub String);

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown TCP state '{}' (expected a kernel name such as ESTABLISHED or an ss name such as estab)",
            self.0
        )
    }
}

impl std::error::Error for UnknownState {}

impl FromStr for State {
    type Err = UnknownState;

    /// Accepts kernel spellings (`ESTABLISHED`, `SYN_RECV`), `ss` spellings
    /// (`estab`, `syn-recv`, `listening`), case-insensitively, with `-` and
    /// `_` interchangeable.
    fn from_str(s: &str) -> Result<State, UnknownState> {
        let norm: String = s
            .chars()
            .map(|c| {
                if c == '-' {
                    '_'
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect();
        let state = match norm.as_str() {
            "ESTABLISHED" | "ESTAB" => State::Established,
            "SYN_SENT" => State::SynSent,
            "SYN_RECV" => State::SynRecv,
            "FIN_WAIT1" | "FIN_WAIT_1" => State::FinWait1,
            "FIN_WAIT2" | "FIN_WAIT_2" => State::FinWait2,
            "TIME_WAIT" => State::TimeWait,
            "CLOSE" | "CLOSED" | "UNCONNECTED" => State::Close,
            "CLOSE_WAIT" => State::CloseWait,
            "LAST_ACK" => State::LastAck,
            "LISTEN" | "LISTENING" => State::Listen,
            "CLOSING" => State::Closing,
            "NEW_SYN_RECV" => State::NewSynRecv,
            "BOUND_INACTIVE" => State::BoundInactive,
            _ => return Err(UnknownState(s.to_string())),
        };
        Ok(state)
    }
}

/// A set of TCP states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StateSet(u32);

impl StateSet {
    pub const EMPTY: StateSet = StateSet(0);
    /// Every state but BOUND_INACTIVE (sockets bound and neither listening
    /// nor connected): as in `ss`, those are shown only when named
    /// (`state bound-inactive`), since finding them makes the kernel walk
    /// its bind table too, and /proc never lists them.
    pub const ALL: StateSet = StateSet(!(1 << 13));

    pub fn of(states: &[State]) -> StateSet {
        let mut set = StateSet::EMPTY;
        for &s in states {
            set.insert(s);
        }
        set
    }

    pub fn insert(&mut self, state: State) {
        self.0 |= 1 << (state.code() % 32);
    }

    pub fn contains(self, state: State) -> bool {
        self.0 & (1 << (state.code() % 32)) != 0
    }

    pub fn union(self, other: StateSet) -> StateSet {
        StateSet(self.0 | other.0)
    }

    pub fn intersection(self, other: StateSet) -> StateSet {
        StateSet(self.0 & other.0)
    }

    /// The states of [`StateSet::ALL`] not in `self`.
    pub fn complement(self) -> StateSet {
        StateSet(StateSet::ALL.0 & !self.0)
    }

    /// The kernel's bit mask over state codes (`1 << code`), as inet_diag
    /// requests take it.
    pub fn kernel_mask(self) -> u32 {
        self.0
    }

    /// A state name (kernel or `ss` spelling) or one of `ss`'s groups:
    /// `all`, `connected` (all but LISTEN and CLOSE), `synchronized`
    /// (connected but not SYN_SENT), `bucket` (SYN_RECV and TIME_WAIT, the
    /// mini-sockets) and `big` (all but bucket). `bound-inactive` (sockets
    /// bound and neither listening nor connected: netlink only, which
    /// reports them in state CLOSE) is in none of them.
    pub fn from_name(name: &str) -> Result<StateSet, UnknownState> {
        let listed = StateSet::of(&State::LISTED);
        let connected = StateSet(listed.0 & !StateSet::of(&[State::Listen, State::Close]).0);
        let bucket = StateSet::of(&[State::SynRecv, State::TimeWait]);
        Ok(match name.to_ascii_lowercase().as_str() {
            "all" => StateSet::ALL,
            "connected" => connected,
            "synchronized" => StateSet(connected.0 & !StateSet::of(&[State::SynSent]).0),
            "bucket" => bucket,
            "big" => StateSet(listed.0 & !bucket.0),
            // Sockets only bound: the kernel finds them in its bind table
            // when BOUND_INACTIVE is asked and reports them as CLOSE.
            "bound-inactive" | "bound_inactive" => {
                StateSet::of(&[State::BoundInactive, State::Close])
            }
            _ => StateSet::of(&[name.parse::<State>()?]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_is_every_state_but_the_two_never_reported() {
        let rest: Vec<State> = State::ALL
            .into_iter()
            .filter(|s| !State::LISTED.contains(s))
            .collect();
        assert_eq!(rest, [State::NewSynRecv, State::BoundInactive]);
        assert_eq!(State::LISTED[10], State::Closing);
    }

    #[test]
    fn state_names_round_trip() {
        for state in State::ALL {
            assert_eq!(State::from_code(state.code()), state);
            let kernel = state.kernel_name().unwrap();
            assert_eq!(kernel.parse::<State>().unwrap(), state);
            assert_eq!(state.ss_name().unwrap().parse::<State>().unwrap(), state);
        }
        assert_eq!(State::from_code(0x0E), State::Other(0x0E));
        assert_eq!(State::Other(0x0E).to_string(), "UNKNOWN(0x0e)");
        assert!("establishd".parse::<State>().is_err());
    }
}
