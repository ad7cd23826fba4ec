//! Which group a connection is counted in: the listener that accepted it
//! (matched against its namespace's listening sockets, a wildcard one
//! included), else the connections this host opened; with the namespace,
//! the service port and the workload as labels when asked, and `other`
//! beyond `max_series` groups.

use super::{netns_of, Group, Tally};
use crate::metrics::{endpoint, netns_label, workload_key, Labels, WORKLOAD_LABELS};
use crate::model::{canonical, EntryBuf};

impl Tally {
    /// The known listener that accepted the connection `entry`, as its
    /// label.
    pub(super) fn listener_of(&self, entry: &EntryBuf) -> Option<String> {
        let s = &entry.socket;
        let local = canonical(s.local).ip();
        self.listeners
            .get(&(netns_of(entry), s.local.port()))?
            .iter()
            .find(|(addr, _)| *addr == local || addr.is_unspecified())
            .map(|&(addr, _)| endpoint(std::net::SocketAddr::new(addr, s.local.port())))
    }

    /// Count the opening of the connection `entry` in its group (its
    /// listener's, else that of the connections this host opened); the
    /// group.
    pub(super) fn place(&mut self, entry: &EntryBuf) -> usize {
        let listener = self.listener_of(entry);
        let listening = listener.is_some();
        let labels = self.labels(entry, Some(listener.unwrap_or_default()));
        let group = match self.group(labels, listening) {
            Some(group) => group,
            None => {
                self.over_the_cap += 1;
                let labels = self.labels(entry, None);
                self.overflow(labels)
            }
        };
        self.groups[group].opened += 1;
        group
    }

    /// The labels of a group: `netns`, `listener` (`other` with None),
    /// the workload's.
    pub(super) fn labels(&self, entry: &EntryBuf, listener: Option<String>) -> Labels {
        let mut labels = Labels::new();
        if self.options.per_namespace {
            labels.push(("netns", netns_label(entry.namespace.as_deref())));
        }
        let overflow = listener.is_none();
        let opened_here = listener.as_deref() == Some("");
        labels.push(("listener", listener.unwrap_or_else(|| "other".into())));
        if !self.options.ports.is_empty() {
            let port = entry.socket.remote.port();
            let service = opened_here && self.options.ports.contains(&port);
            labels.push((
                "port",
                if service {
                    port.to_string()
                } else {
                    String::new()
                },
            ));
        }
        if self.options.per_workload {
            let key = match (&entry.workload, overflow) {
                (Some(w), false) => workload_key(w),
                _ => Default::default(),
            };
            labels.extend(WORKLOAD_LABELS.into_iter().zip(key));
        }
        labels
    }

    /// The group with `labels`, made if there is room.
    pub(super) fn group(&mut self, labels: Labels, listener: bool) -> Option<usize> {
        if let Some(&g) = self.index.get(&labels) {
            return Some(g);
        }
        if self.groups.len() >= self.options.max_series.max(1) {
            return None;
        }
        Some(self.make(labels, listener))
    }

    /// The group `listener="other"` with `labels`, made at the cap too.
    fn overflow(&mut self, labels: Labels) -> usize {
        match self.index.get(&labels) {
            Some(&g) => g,
            None => self.make(labels, false),
        }
    }

    fn make(&mut self, labels: Labels, listener: bool) -> usize {
        self.groups.push(Group {
            labels: labels.clone(),
            listener,
            created: self.now,
            ..Group::default()
        });
        self.index.insert(labels, self.groups.len() - 1);
        self.groups.len() - 1
    }
}
