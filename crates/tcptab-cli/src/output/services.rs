//! `-r/--resolve`: port numbers to service names from /etc/services (TCP
//! entries only; no DNS, no network).

use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Services(HashMap<u16, String>);

impl Services {
    /// Read /etc/services; a missing file gives an empty table (numbers are
    /// shown).
    pub fn load() -> Services {
        Services::parse(&std::fs::read_to_string("/etc/services").unwrap_or_default())
    }

    pub fn parse(text: &str) -> Services {
        let mut map = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(name), Some(port_proto)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((port, "tcp")) = port_proto.split_once('/') else {
                continue;
            };
            if let Ok(port) = port.parse::<u16>() {
                map.entry(port).or_insert_with(|| name.to_string());
            }
        }
        Services(map)
    }

    pub fn name(&self, port: u16) -> Option<&str> {
        self.0.get(&port).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_entries_only() {
        let s =
            Services::parse("ssh 22/tcp # The Secure Shell\nsyslog 514/udp\nshell 514/tcp cmd\n");
        assert_eq!(s.name(22), Some("ssh"));
        assert_eq!(s.name(514), Some("shell"));
        assert_eq!(s.name(80), None);
    }
}
