//! The socket record: one flat, documented set of fields for every socket,
//! whichever source it came from, behind every JSON, JSON Lines and CSV
//! output (and the records inside reports and events). See `docs/schema.md`.
//!
//! The fields are fixed by what the caller asks for ([`Fields`]), never by
//! the row: a TIME_WAIT socket from /proc has the same keys as a full socket
//! from netlink, with `null` where it has no value. Two groups nest
//! (`tcp_info`, `memory`): a JSON writer prints them as objects (or `null`
//! when absent), a CSV writer as `tcp_info.rtt_us` ... columns.
//!
//! A record is not serialised through an intermediate value: a writer
//! implements [`Visit`] and is handed each field in order, with its
//! [`FieldDef`] (name, type, nullability, meaning). The same definitions
//! make the JSON Schema ([`schema`]).

use std::net::IpAddr;

mod schema;
pub use schema::{history_schema, schema};

use crate::model::{
    Diag, Entry, MemInfo, Owner, PointerKind, Socket, Source, Ssthresh, TcpInfo, Workload,
};

/// The version of the record and report documents. Raised when a field is
/// removed or changes its meaning; adding a field does not raise it.
pub const SCHEMA_VERSION: u32 = 1;

/// The JSON type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Integer,
    Boolean,
    String,
    /// An IP address as text (`127.0.0.1`, `::1`, `::ffff:127.0.0.1`).
    Address,
    /// The owners list: `[{"pid", "command", "fd"}]`.
    Owners,
    /// A nested group (`tcp_info`, `memory`): its fields are its own defs.
    Object,
}

/// One field of the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    pub name: &'static str,
    pub ty: Ty,
    /// Whether the value can be null, and what null means (empty: never).
    pub null_means: &'static str,
    pub doc: &'static str,
}

/// A field's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    Str(&'a str),
    Ip(IpAddr),
    Owners(&'a [Owner]),
}

/// Receives a record's fields in order.
pub trait Visit {
    fn field(&mut self, def: &'static FieldDef, value: Value<'_>);
    /// A nested group begins (`tcp_info`, `memory`); `present` is false when
    /// the socket has none, and its fields then all come as [`Value::Null`].
    fn group(&mut self, def: &'static FieldDef, present: bool);
    /// The group begun last ends.
    fn end_group(&mut self);
}

/// Which optional fields a record has (fixed for a whole listing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fields {
    /// `netns`, `netns_name`.
    pub netns: bool,
    /// `owner_status`, `owners`.
    pub owners: bool,
    /// The `workload` group (cgroup, unit, container, pod).
    pub workload: bool,
    /// A history record ([`crate::history`]): `first_seen`, `last_seen`,
    /// `closed_at`, `closed_by` and the final counters at the end, and null
    /// for what history does not keep (refcount, pointer, the congestion
    /// columns, tcp_info and memory as groups).
    pub history: bool,
}

/// When a recorded connection was seen, and its last known counters
/// (tcp_info's names). Times are ms since the Unix epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lifetime {
    pub first_seen: i64,
    pub last_seen: i64,
    pub closed_at: Option<i64>,
    /// `destroy`, `expired`, `poll`, `gap` or `reboot` (see
    /// `docs/history.md`).
    pub closed_by: Option<String>,
    pub bytes_acked: Option<u64>,
    pub bytes_received: Option<u64>,
    pub total_retrans: Option<u64>,
    pub rtt_us: Option<u64>,
    /// The machine that recorded it, in the boot it was seen in.
    pub host: Option<std::sync::Arc<crate::model::Host>>,
}

/// One socket as a record.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub entry: &'a Entry<'a>,
    pub fields: Fields,
    pub lifetime: Option<&'a Lifetime>,
}

impl<'a> Record<'a> {
    pub fn new(entry: &'a Entry<'a>, fields: Fields) -> Record<'a> {
        Record {
            entry,
            fields,
            lifetime: None,
        }
    }

    /// A history record: `fields.history` set, with `lifetime`.
    pub fn lived(entry: &'a Entry<'a>, fields: Fields, lifetime: &'a Lifetime) -> Record<'a> {
        Record {
            entry,
            fields: Fields {
                history: true,
                ..fields
            },
            lifetime: Some(lifetime),
        }
    }

    /// Hand every field to `v`, in the documented order: the kernel's
    /// columns, what netlink adds, then the namespace, the owners and the
    /// lifetime when the record carries them.
    pub fn visit(&self, v: &mut dyn Visit) {
        let e = self.entry;
        let netlink = e.source == Source::Netlink;
        visit_columns(v, e.socket, e.diag);
        visit_proc_only(v, e.socket, netlink || self.fields.history);
        visit_congestion(v, e.socket, netlink);
        visit_netlink(v, e);
        if self.fields.netns {
            v.field(&NETNS, opt(e.namespace.map(|n| n.inode)));
            v.field(
                &NETNS_NAME,
                e.namespace
                    .and_then(|n| n.name.as_deref())
                    .map_or(Value::Null, Value::Str),
            );
        }
        if self.fields.owners {
            let ownership = e.owners;
            v.field(
                &OWNER_STATUS,
                ownership.map_or(Value::Null, |o| Value::Str(o.as_str())),
            );
            v.field(
                &OWNERS,
                Value::Owners(ownership.map_or(&[][..], |o| o.owners())),
            );
        }
        if self.fields.workload {
            visit_workload(v, e.workload.map(|w| &**w));
            v.field(&PEER_POD, e.peer_pod.map_or(Value::Null, |p| Value::Str(p)));
        }
        if self.fields.history {
            visit_lifetime(v, self.lifetime);
        }
    }
}

fn opt(x: Option<u64>) -> Value<'static> {
    x.map_or(Value::Null, Value::U64)
}

fn optb(x: Option<bool>) -> Value<'static> {
    x.map_or(Value::Null, Value::Bool)
}

/// The columns both sources have: the kernel's text table's first twelve.
#[inline]
fn visit_columns(v: &mut dyn Visit, s: &Socket, diag: Option<&Diag>) {
    let state_name;
    let state = match s.state.kernel_name() {
        Some(name) => name,
        None => {
            state_name = s.state.to_string();
            &state_name
        }
    };
    let timer_name;
    let timer = match s.timer.kind.name() {
        Some(name) => name,
        None => {
            timer_name = s.timer.kind.to_string();
            &timer_name
        }
    };
    // Netlink gives the timer in ms; /proc in ticks of 10 ms.
    let timer_ms = diag.map_or(s.timer.expires.as_millis(), |d| d.timer_ms as u64);
    v.field(&FAMILY, Value::Str(s.family.as_str()));
    v.field(&KIND, Value::Str(s.kind.as_str()));
    v.field(&SL, Value::U64(s.sl as u64));
    v.field(&STATE, Value::Str(state));
    v.field(&STATE_CODE, Value::U64(s.state.code() as u64));
    v.field(&LOCAL_ADDRESS, Value::Ip(s.local.ip()));
    v.field(&LOCAL_PORT, Value::U64(s.local.port() as u64));
    v.field(&REMOTE_ADDRESS, Value::Ip(s.remote.ip()));
    v.field(&REMOTE_PORT, Value::U64(s.remote.port() as u64));
    v.field(&TX_QUEUE, Value::U64(s.tx_queue as u64));
    v.field(&RX_QUEUE, Value::U64(s.rx_queue as u64));
    v.field(&TIMER, Value::Str(timer));
    v.field(&TIMER_TICKS, Value::U64(s.timer.expires.0));
    v.field(&TIMER_MS, Value::U64(timer_ms));
    v.field(&RETRANSMITS, Value::U64(s.retransmits as u64));
    v.field(&UID, Value::U64(s.uid as u64));
    v.field(&PROBES, Value::I64(s.probes as i64));
    v.field(&INODE, Value::U64(s.inode));
}

/// The reference count and the pointer: /proc's alone (null when `none`).
#[inline]
fn visit_proc_only(v: &mut dyn Visit, s: &Socket, none: bool) {
    let (refcount, pointer, pointer_kind) = if none {
        (Value::Null, Value::Null, Value::Null)
    } else {
        (
            Value::I64(s.refcount as i64),
            Value::Str(s.pointer.as_str()),
            Value::Str(match s.pointer.kind() {
                PointerKind::Zeroed => "zeroed",
                PointerKind::Hashed => "hashed",
                PointerKind::Raw => "raw",
                PointerKind::Unavailable => "unavailable",
            }),
        )
    };
    v.field(&REFCOUNT, refcount);
    v.field(&POINTER, pointer);
    v.field(&POINTER_KIND, pointer_kind);
}

/// A full socket's last five columns (from tcp_info with netlink, which
/// has no quick ACKs, pingpong or Fast Open queue limit).
#[inline]
fn visit_congestion(v: &mut dyn Visit, s: &Socket, netlink: bool) {
    let c = s.congestion.as_ref();
    let (ssthresh, initial_slow_start, fastopen) = match c.map(|c| c.ssthresh) {
        None => (None, None, None),
        Some(Ssthresh::InitialSlowStart) => (None, Some(true), None),
        Some(Ssthresh::Segments(n)) => (Some(n as u64), Some(false), None),
        Some(Ssthresh::FastOpenQueueLimit(n)) => (None, None, Some(n as i64)),
    };
    v.field(&RTO_TICKS, opt(c.map(|c| c.rto.0)));
    v.field(&RTO_MS, opt(c.map(|c| c.rto.as_millis())));
    v.field(&ATO_TICKS, opt(c.map(|c| c.ato.0)));
    v.field(&ATO_MS, opt(c.map(|c| c.ato.as_millis())));
    // Not in tcp_info: known from /proc only.
    let proc_only = c.filter(|_| !netlink);
    v.field(&QUICK_ACKS, opt(proc_only.map(|c| c.quick_acks() as u64)));
    v.field(&PINGPONG, optb(proc_only.map(|c| c.pingpong())));
    v.field(&CWND, opt(c.map(|c| c.cwnd as u64)));
    v.field(&SSTHRESH, opt(ssthresh));
    v.field(&INITIAL_SLOW_START, optb(initial_slow_start));
    v.field(
        &FASTOPEN_QUEUE_LIMIT,
        fastopen
            .filter(|_| !netlink)
            .map_or(Value::Null, Value::I64),
    );
}

/// The source, and what netlink adds (null from /proc).
#[inline]
fn visit_netlink(v: &mut dyn Visit, e: &Entry<'_>) {
    let diag = e.diag;
    v.field(&SOURCE, Value::Str(e.source.as_str()));
    v.field(&COOKIE, opt(diag.map(|d| d.cookie)));
    v.field(
        &BACKLOG_LIMIT,
        opt(diag.and_then(|d| d.backlog_limit).map(u64::from)),
    );
    v.field(&INTERFACE, opt(diag.map(|d| d.interface as u64)));
    v.field(
        &CONGESTION_ALGORITHM,
        diag.and_then(|d| d.congestion_algorithm.as_deref())
            .map_or(Value::Null, Value::Str),
    );
    v.field(&SHUTDOWN, opt(diag.and_then(|d| d.shutdown).map(u64::from)));
    v.field(
        &V6ONLY,
        diag.and_then(|d| d.v6only).map_or(Value::Null, Value::Bool),
    );
    visit_tcp_info(v, diag.and_then(|d| d.tcp_info.as_deref()));
    visit_memory(v, diag.and_then(|d| d.memory.as_deref()));
}

/// A history record's lifetime and final counters.
fn visit_lifetime(v: &mut dyn Visit, l: Option<&Lifetime>) {
    let time = |ms: Option<i64>| ms.map(crate::time::format_rfc3339);
    let (first, last, closed) = (
        time(l.map(|l| l.first_seen)),
        time(l.map(|l| l.last_seen)),
        time(l.and_then(|l| l.closed_at)),
    );
    fn text(t: &Option<String>) -> Value<'_> {
        t.as_deref().map_or(Value::Null, Value::Str)
    }
    v.field(&FIRST_SEEN, text(&first));
    v.field(&LAST_SEEN, text(&last));
    v.field(&CLOSED_AT, text(&closed));
    v.field(
        &CLOSED_BY,
        l.and_then(|l| l.closed_by.as_deref())
            .map_or(Value::Null, Value::Str),
    );
    v.field(&BYTES_ACKED, opt(l.and_then(|l| l.bytes_acked)));
    v.field(&BYTES_RECEIVED, opt(l.and_then(|l| l.bytes_received)));
    v.field(&TOTAL_RETRANS, opt(l.and_then(|l| l.total_retrans)));
    v.field(&RTT_US, opt(l.and_then(|l| l.rtt_us)));
    let host = l.and_then(|l| l.host.as_deref());
    v.field(
        &HOSTNAME,
        host.filter(|h| !h.hostname.is_empty())
            .map_or(Value::Null, |h| Value::Str(&h.hostname)),
    );
    v.field(
        &MACHINE_ID,
        host.and_then(|h| h.machine_id.as_deref())
            .map_or(Value::Null, Value::Str),
    );
    v.field(
        &BOOT_ID,
        host.and_then(|h| h.boot_id.as_deref())
            .map_or(Value::Null, Value::Str),
    );
}

/// The field definitions of a record with `fields`, in order, with the
/// groups they belong to (None at the top level).
pub fn field_defs(fields: Fields) -> Vec<(Option<&'static FieldDef>, &'static FieldDef)> {
    struct Defs {
        group: Option<&'static FieldDef>,
        out: Vec<(Option<&'static FieldDef>, &'static FieldDef)>,
    }
    impl Visit for Defs {
        fn field(&mut self, def: &'static FieldDef, _: Value<'_>) {
            self.out.push((self.group, def));
        }
        fn group(&mut self, def: &'static FieldDef, _: bool) {
            self.group = Some(def);
        }
        fn end_group(&mut self) {
            self.group = None;
        }
    }
    let socket =
        crate::model::Socket::empty(crate::model::Family::Ipv4, crate::model::RowKind::Full);
    let entry = Entry::new(&socket, Source::Proc);
    let mut defs = Defs {
        group: None,
        out: Vec::new(),
    };
    Record::new(&entry, fields).visit(&mut defs);
    defs.out
}

/// The groups' own definitions, in order.
pub const GROUPS: [&FieldDef; 3] = [&TCP_INFO, &MEMORY, &WORKLOAD];

macro_rules! defs {
    ($($id:ident $name:literal $ty:ident, $null:literal, $doc:literal;)*) => {
        $(pub const $id: FieldDef = FieldDef {
            name: $name,
            ty: Ty::$ty,
            null_means: $null,
            doc: $doc,
        };)*
        /// Every top-level field definition, in order.
        pub const TOP_LEVEL: &[&FieldDef] = &[$(&$id),*];
    };
}

defs! {
    FAMILY "family" String, "", "`ipv4` or `ipv6`";
    KIND "kind" String, "", "row shape: `full`, `time_wait` or `request`";
    SL "sl" Integer, "", "the row's number in its table (renumbered from 0 when filtered or sorted)";
    STATE "state" String, "", "kernel spelling: `ESTABLISHED`, `SYN_RECV`, ... (`UNKNOWN(0x..)` for a code the kernel does not define)";
    STATE_CODE "state_code" Integer, "", "the kernel's state number (1 ESTABLISHED ... 10 LISTEN, 11 CLOSING)";
    LOCAL_ADDRESS "local_address" Address, "", "local IP address";
    LOCAL_PORT "local_port" Integer, "", "local port";
    REMOTE_ADDRESS "remote_address" Address, "", "peer IP address (`0.0.0.0` or `::` when none)";
    REMOTE_PORT "remote_port" Integer, "", "peer port (0 when none)";
    TX_QUEUE "tx_queue" Integer, "", "bytes sent and not yet acknowledged (0 on LISTEN)";
    RX_QUEUE "rx_queue" Integer, "", "bytes received and not yet read; LISTEN: connections waiting for accept()";
    TIMER "timer" String, "", "pending timer: `off`, `retransmit`, `keepalive`, `time_wait`, `zero_window_probe`";
    TIMER_TICKS "timer_ticks" Integer, "", "time to the timer's expiry in clock ticks (USER_HZ = 100)";
    TIMER_MS "timer_ms" Integer, "", "time to the timer's expiry in milliseconds";
    RETRANSMITS "retransmits" Integer, "", "retransmission timeouts in a row (or unanswered SYN-ACKs of a request socket)";
    UID "uid" Integer, "", "owner's user id (0 for a request socket read from netlink)";
    PROBES "probes" Integer, "", "unanswered zero-window or keepalive probes (the `timeout` column)";
    INODE "inode" Integer, "", "socket inode (0: no file, e.g. TIME_WAIT, request, orphaned)";
    REFCOUNT "refcount" Integer, "netlink does not report it, or a history record (not kept)", "the socket's reference count";
    POINTER "pointer" String, "netlink does not report it, or a history record (not kept)", "the kernel address column, as printed";
    POINTER_KIND "pointer_kind" String, "netlink does not report it, or a history record (not kept)", "`zeroed`, `hashed`, `raw` or `unavailable`";
    RTO_TICKS "rto_ticks" Integer, "not a full socket, or netlink without tcp_info, or a history record (not kept)", "retransmission timeout in ticks";
    RTO_MS "rto_ms" Integer, "not a full socket, or netlink without tcp_info, or a history record (not kept)", "retransmission timeout in milliseconds";
    ATO_TICKS "ato_ticks" Integer, "not a full socket, or netlink without tcp_info, or a history record (not kept)", "delayed-ACK timeout in ticks";
    ATO_MS "ato_ms" Integer, "not a full socket, or netlink without tcp_info, or a history record (not kept)", "delayed-ACK timeout in milliseconds";
    QUICK_ACKS "quick_acks" Integer, "not a full socket, or read from netlink (not in tcp_info), or a history record (not kept)", "quick ACKs left";
    PINGPONG "pingpong" Boolean, "not a full socket, or read from netlink (not in tcp_info), or a history record (not kept)", "interactive (delayed-ACK pingpong) mode";
    CWND "cwnd" Integer, "not a full socket, or netlink without tcp_info, or a history record (not kept)", "congestion window, segments";
    SSTHRESH "ssthresh" Integer, "not a full socket, LISTEN, or initial slow start, or a history record (not kept)", "slow start threshold, segments";
    INITIAL_SLOW_START "initial_slow_start" Boolean, "not a full socket, or LISTEN, or a history record (not kept)", "no loss yet: the ssthresh column says -1";
    FASTOPEN_QUEUE_LIMIT "fastopen_queue_limit" Integer, "not LISTEN, or read from netlink, or a history record (not kept)", "LISTEN: the TCP Fast Open queue limit (the ssthresh column)";
    SOURCE "source" String, "", "where the socket was read: `netlink` or `proc`";
    COOKIE "cookie" Integer, "read from /proc", "the socket cookie: a stable id for the socket's lifetime";
    BACKLOG_LIMIT "backlog_limit" Integer, "not LISTEN, or read from /proc", "LISTEN: the accept queue limit (listen()'s backlog capped by somaxconn)";
    INTERFACE "interface" Integer, "read from /proc", "bound interface index (0: none)";
    CONGESTION_ALGORITHM "congestion_algorithm" String, "not asked, read from /proc, or not a full socket", "congestion control algorithm";
    SHUTDOWN "shutdown" Integer, "read from /proc, or not a full socket", "shutdown() state: bit 0 receive side shut, bit 1 send side";
    V6ONLY "v6only" Boolean, "an IPv4 socket, or read from /proc", "IPv6 sockets: IPV6_V6ONLY (false: a wildcard listener takes IPv4 connections too)";
    NETNS "netns" Integer, "the namespace's inode could not be read", "network namespace inode (with namespace options)";
    NETNS_NAME "netns_name" String, "the namespace has no name under /run/netns", "network namespace name";
    OWNER_STATUS "owner_status" String, "owners were not looked up for this socket (a watch event from a destroy notification)", "`owned`, `no_process` (TIME_WAIT, request, orphaned: no process can hold it), `unknown` (some processes could not be inspected) or `not_found`";
    OWNERS "owners" Owners, "", "every process holding the socket: pid, command, fd (CSV: `pid:command:fd` joined by `;`)";
    WORKLOAD "workload" Object, "no cgroup is known: a TIME_WAIT or request socket, a /proc row without owners, a cgroup removed since, or no cgroup2 mount", "the socket's cgroup v2 and what it names: systemd unit, container, Kubernetes pod (with --workload; docs/workloads.md)";
    PEER_POD "peer_pod" String, "the remote address is no pod's on this host (or not every namespace was read)", "the pod at the other end, `NAMESPACE/POD`: the remote address is one of that pod's network namespace on this host (with --workload and --all-netns)";
    FIRST_SEEN "first_seen" String, "", "history: when the recorder first saw the connection (RFC 3339, UTC); it opened after the poll before";
    LAST_SEEN "last_seen" String, "", "history: its last sighting, by a poll or by its destroy notification (RFC 3339, UTC)";
    CLOSED_AT "closed_at" String, "still open at the last poll (or the recorder stopped)", "history: when its last socket went (RFC 3339, UTC): its TIME_WAIT's end, else its socket's (see closed_by)";
    CLOSED_BY "closed_by" String, "still open at the last poll (or the recorder stopped)", "history: `destroy` (the kernel's notification: exact), `expired` (a TIME_WAIT's end, as its timer said), `poll` (ended between last_seen and closed_at), `gap` (ended unobserved after last_seen, in a gap in the polls) or `reboot` (the machine restarted after last_seen)";
    BYTES_ACKED "bytes_acked" Integer, "no tcp_info was ever seen (read from /proc, or never a full socket)", "history: tcp_info's bytes_acked, last known (final, from a destroy notification)";
    BYTES_RECEIVED "bytes_received" Integer, "no tcp_info was ever seen (read from /proc, or never a full socket)", "history: tcp_info's bytes_received, last known";
    TOTAL_RETRANS "total_retrans" Integer, "no tcp_info was ever seen (read from /proc, or never a full socket)", "history: tcp_info's total_retrans, last known";
    RTT_US "rtt_us" Integer, "no tcp_info was ever seen (read from /proc, or never a full socket)", "history: tcp_info's rtt_us, last known";
    HOSTNAME "hostname" String, "a file written before tcptab kept the host", "history: the host name of the machine that recorded it";
    MACHINE_ID "machine_id" String, "the machine has no /etc/machine-id, or a file written before tcptab kept it", "history: the recording machine's /etc/machine-id";
    BOOT_ID "boot_id" String, "", "history: the boot it was seen in (/proc/sys/kernel/random/boot_id)";
    TCP_INFO "tcp_info" Object, "read from /proc, not asked, or not a full socket, or a history record (not kept)", "the kernel's struct tcp_info (netlink)";
    MEMORY "memory" Object, "read from /proc, or not asked, or a history record (not kept)", "socket memory, bytes (netlink INET_DIAG_SKMEMINFO)";
}

macro_rules! group {
    ($visit:ident, $ty:ty, $group:ident, $list:ident; $($id:ident $name:ident $kind:ident $doc:literal;)*) => {
        $(const $id: FieldDef = FieldDef {
            name: stringify!($name),
            ty: group!(@ty $kind),
            null_means: group!(@null $kind),
            doc: $doc,
        };)*
        /// The group's field definitions, in order.
        pub const $list: &[&FieldDef] = &[$(&$id),*];

        fn $visit(v: &mut dyn Visit, x: Option<&$ty>) {
            v.group(&$group, x.is_some());
            $(v.field(&$id, x.map_or(Value::Null, |x| group!(@value $kind, x.$name)));)*
            v.end_group();
        }
    };
    (@ty bool) => { Ty::Boolean };
    (@ty $other:ident) => { Ty::Integer };
    (@null rate) => { "the group is null, or the rate is unlimited (the kernel's ~0)" };
    (@null $other:ident) => { "the whole group is null" };
    (@value bool, $e:expr) => { Value::Bool($e) };
    (@value rate, $e:expr) => { if $e == u64::MAX { Value::Null } else { Value::U64($e) } };
    (@value $other:ident, $e:expr) => { Value::U64($e as u64) };
}

group! { visit_tcp_info, TcpInfo, TCP_INFO, TCP_INFO_FIELDS;
    TI_LENGTH length int "bytes of tcp_info the kernel sent";
    TI_TRUNCATED truncated bool "shorter than the layout tcptab knows (248 bytes, Linux 6.7): later fields are 0";
    TI_STATE state int "the kernel's state number";
    TI_CA_STATE ca_state int "congestion state: 0 open, 1 disorder, 2 cwr, 3 recovery, 4 loss";
    TI_RETRANSMITS retransmits int "retransmission timeouts in a row";
    TI_PROBES probes int "unanswered probes";
    TI_BACKOFF backoff int "exponential backoff of the retransmission timer";
    TI_OPTIONS options int "negotiated options: 1 timestamps, 2 SACK, 4 window scaling, 8 ECN, 16 ECN seen, 32 SYN data";
    TI_SND_WSCALE snd_wscale int "send window scale";
    TI_RCV_WSCALE rcv_wscale int "receive window scale";
    TI_DELIVERY_RATE_APP_LIMITED delivery_rate_app_limited bool "the delivery rate was limited by the application";
    TI_FASTOPEN_CLIENT_FAIL fastopen_client_fail int "why a Fast Open client fell back";
    TI_RTO_US rto_us int "retransmission timeout, microseconds";
    TI_ATO_US ato_us int "delayed-ACK timeout, microseconds";
    TI_SND_MSS snd_mss int "send MSS, bytes";
    TI_RCV_MSS rcv_mss int "receive MSS estimate, bytes";
    TI_UNACKED unacked int "segments sent and not acknowledged";
    TI_SACKED sacked int "segments selectively acknowledged";
    TI_LOST lost int "segments thought lost";
    TI_RETRANS retrans int "segments retransmitted and not acknowledged";
    TI_FACKETS fackets int "forward-acknowledged segments (0 on current kernels)";
    TI_LAST_DATA_SENT_MS last_data_sent_ms int "time since data was last sent, ms";
    TI_LAST_ACK_SENT_MS last_ack_sent_ms int "time since an ACK was last sent, ms (not kept by Linux: 0)";
    TI_LAST_DATA_RECV_MS last_data_recv_ms int "time since data was last received, ms";
    TI_LAST_ACK_RECV_MS last_ack_recv_ms int "time since an ACK was last received, ms";
    TI_PMTU pmtu int "path MTU, bytes";
    TI_RCV_SSTHRESH rcv_ssthresh int "receive window clamp, bytes";
    TI_RTT_US rtt_us int "smoothed round-trip time, microseconds";
    TI_RTTVAR_US rttvar_us int "round-trip time variation, microseconds";
    TI_SND_SSTHRESH snd_ssthresh int "slow start threshold, segments (2147483647 or more: initial slow start)";
    TI_SND_CWND snd_cwnd int "congestion window, segments";
    TI_ADVMSS advmss int "advertised MSS, bytes";
    TI_REORDERING reordering int "reordering metric, segments";
    TI_RCV_RTT_US rcv_rtt_us int "receiver-side round-trip estimate, microseconds";
    TI_RCV_SPACE rcv_space int "receive buffer space estimate, bytes";
    TI_TOTAL_RETRANS total_retrans int "segments retransmitted over the connection's life";
    TI_PACING_RATE pacing_rate rate "pacing rate, bytes per second";
    TI_MAX_PACING_RATE max_pacing_rate rate "pacing rate limit (SO_MAX_PACING_RATE), bytes per second";
    TI_BYTES_ACKED bytes_acked int "bytes sent and acknowledged (cumulative)";
    TI_BYTES_RECEIVED bytes_received int "bytes received (cumulative)";
    TI_SEGS_OUT segs_out int "segments sent";
    TI_SEGS_IN segs_in int "segments received";
    TI_NOTSENT_BYTES notsent_bytes int "bytes queued and not yet sent";
    TI_MIN_RTT_US min_rtt_us int "lowest round-trip time seen, microseconds";
    TI_DATA_SEGS_IN data_segs_in int "segments received with data";
    TI_DATA_SEGS_OUT data_segs_out int "segments sent with data";
    TI_DELIVERY_RATE delivery_rate int "delivery rate, bytes per second";
    TI_BUSY_TIME_US busy_time_us int "time with data in flight, microseconds";
    TI_RWND_LIMITED_US rwnd_limited_us int "time limited by the peer's receive window, microseconds";
    TI_SNDBUF_LIMITED_US sndbuf_limited_us int "time limited by the send buffer, microseconds";
    TI_DELIVERED delivered int "segments delivered";
    TI_DELIVERED_CE delivered_ce int "segments delivered with an ECN congestion mark";
    TI_BYTES_SENT bytes_sent int "bytes sent, retransmissions included";
    TI_BYTES_RETRANS bytes_retrans int "bytes retransmitted";
    TI_DSACK_DUPS dsack_dups int "duplicate segments reported by DSACK";
    TI_REORD_SEEN reord_seen int "reorderings seen";
    TI_RCV_OOOPACK rcv_ooopack int "out-of-order packets received";
    TI_SND_WND snd_wnd int "the peer's advertised receive window, bytes";
    TI_RCV_WND rcv_wnd int "this side's advertised receive window, bytes (Linux 6.2)";
    TI_REHASH rehash int "PLB or timeout triggered rehash attempts (Linux 6.2)";
    TI_TOTAL_RTO total_rto int "retransmission timeouts over the connection's life, SYN and SYN-ACK ones included (Linux 6.7)";
    TI_TOTAL_RTO_RECOVERIES total_rto_recoveries int "recoveries from a retransmission timeout (Linux 6.7)";
    TI_TOTAL_RTO_TIME_MS total_rto_time_ms int "time spent recovering from retransmission timeouts, ms (Linux 6.7)";
}

group! { visit_memory, MemInfo, MEMORY, MEMORY_FIELDS;
    M_RMEM_ALLOC rmem_alloc int "receive queue memory allocated, bytes";
    M_RCVBUF rcvbuf int "receive buffer size, bytes";
    M_WMEM_ALLOC wmem_alloc int "send memory in flight, bytes";
    M_SNDBUF sndbuf int "send buffer size, bytes";
    M_FWD_ALLOC fwd_alloc int "memory reserved ahead, bytes";
    M_WMEM_QUEUED wmem_queued int "send queue memory, bytes";
    M_OPTMEM optmem int "option memory, bytes";
    M_BACKLOG backlog int "backlog queue, bytes";
    M_DROPS drops int "packets dropped";
}

macro_rules! workload_group {
    ($($id:ident $name:ident $null:literal $doc:literal;)*) => {
        $(const $id: FieldDef = FieldDef {
            name: stringify!($name),
            ty: Ty::String,
            null_means: $null,
            doc: $doc,
        };)*
        /// The `workload` group's field definitions, in order.
        pub const WORKLOAD_FIELDS: &[&FieldDef] = &[$(&$id),*];

        fn visit_workload(v: &mut dyn Visit, w: Option<&Workload>) {
            v.group(&WORKLOAD, w.is_some());
            $(v.field(&$id, w.and_then(|w| workload_group!(@value w.$name)).map_or(Value::Null, Value::Str));)*
            v.end_group();
        }
    };
    (@value $w:ident.cgroup) => { Some($w.cgroup.as_str()) };
    (@value $w:ident.$name:ident) => { $w.$name.as_deref() };
}

workload_group! {
    W_CGROUP cgroup "the whole group is null" "cgroup v2 path from the hierarchy's root (`/` for the root)";
    W_UNIT unit "the path names no .service or .scope" "systemd unit: the deepest `.service` or `.scope` of the path";
    W_SLICE slice "no .slice above the unit" "the slice holding the unit";
    W_RUNTIME runtime "not a container, or its runtime's files were not found" "`docker`, `containerd`, `cri-o` or `podman`";
    W_CONTAINER_ID container_id "not a container" "the container's id (64 hex digits)";
    W_CONTAINER_NAME container_name "not a container, or no runtime file names it (see `missing`)" "the container's name (Docker, Podman) or its name in its pod";
    W_POD_NAMESPACE pod_namespace "not in a Kubernetes pod, or no file names it" "the pod's Kubernetes namespace";
    W_POD_NAME pod_name "not in a Kubernetes pod, or no file names it" "the pod's name";
    W_POD_UID pod_uid "not in a Kubernetes pod" "the pod's uid";
    W_MISSING missing "nothing is missing" "why a container's or pod's names are missing (the runtime files looked for)";
}

#[cfg(test)]
mod tests;
