//! The policy file (TOML): `[[deny]]` and `[[allow]]` rules, read into
//! the library's [`Policy`]. A bad file is one line naming the file, the
//! line and the key.

use std::path::Path;

use anyhow::{bail, Result};
use serde::Deserialize;
use tcptab::audit::{Action, Policy, Rule, Scope};
use tcptab::filter::{Cidr, PortRange};
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    allow: Vec<RuleText>,
    #[serde(default)]
    deny: Vec<RuleText>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Number {
    Number(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleText {
    port: Option<Spanned<Number>>,
    scope: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    process: Option<String>,
    user: Option<Spanned<Number>>,
    unit: Option<String>,
    container: Option<String>,
    pod: Option<String>,
    netns: Option<String>,
    reason: Option<String>,
}

/// The policy in `path`: its deny rules, then its allow rules, each in
/// file order (the first that matches decides).
pub fn read(path: &Path) -> Result<Policy> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let line_of = |at: usize| text[..at.min(text.len())].matches('\n').count() + 1;
    let file: File = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map_or(String::new(), |s| format!(":{}", line_of(s.start)));
        anyhow::anyhow!("{}{line}: {}", path.display(), e.message().trim())
    })?;
    let mut policy = Policy::default();
    for (action, rules) in [(Action::Deny, file.deny), (Action::Allow, file.allow)] {
        for r in rules {
            let bad = |span: std::ops::Range<usize>, key: &str, why: String| -> anyhow::Error {
                anyhow::anyhow!("{}:{}: {key}: {why}", path.display(), line_of(span.start))
            };
            let mut rule = Rule::default();
            if let Some(p) = r.port {
                let text = match p.get_ref() {
                    Number::Number(n) => n.to_string(),
                    Number::Text(t) => t.clone(),
                };
                rule.port = Some(
                    text.parse::<PortRange>()
                        .map_err(|e| bad(p.span(), "port", e))?,
                );
            }
            if let Some(s) = r.scope {
                rule.scope = Some(
                    s.get_ref()
                        .parse::<Scope>()
                        .map_err(|e| bad(s.span(), "scope", e))?,
                );
            }
            if let Some(a) = r.address {
                rule.address = Some(
                    a.get_ref()
                        .parse::<Cidr>()
                        .map_err(|e| bad(a.span(), "address", e))?,
                );
            }
            if let Some(u) = r.user {
                let uid = match u.get_ref() {
                    Number::Number(n) => {
                        u32::try_from(*n).map_err(|_| format!("'{n}' is not a uid"))
                    }
                    Number::Text(t) => crate::cli::parse_user(t),
                };
                rule.user = Some(uid.map_err(|e| bad(u.span(), "user", e))?);
            }
            rule.process = r.process;
            rule.unit = r.unit;
            rule.container = r.container;
            rule.pod = r.pod;
            rule.netns = r.netns;
            rule.reason = r.reason;
            policy.rules.push((action, rule));
        }
    }
    if policy.rules.is_empty() {
        bail!("{}: no [[allow]] or [[deny]] rule", path.display());
    }
    Ok(policy)
}
