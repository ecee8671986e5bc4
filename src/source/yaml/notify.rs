//! `notify:` of a YAML job or of `defaults:`: which events, which webhook,
//! which ping URL, checked where they are written (an http or https URL
//! with a host, nothing a request could not be sent to). Calling them is
//! the daemon's (`crate::notify`); this only gives the key its meaning.

use std::sync::Arc;

use super::defs::{NotifyDef, OneOrMany};
use crate::job::{NotifyOn, NotifySpec};

/// A `notify:` as written, checked. The message names the key within it
/// (`notify.webhook: ...`); the caller adds the job and the line.
pub(super) fn notify_spec(def: NotifyDef) -> Result<Arc<NotifySpec>, String> {
    let on = match def.on {
        None => NotifyOn::DEFAULT.to_vec(),
        Some(OneOrMany::One(one)) => events(&[one])?,
        Some(OneOrMany::Many(many)) => events(&many)?,
    };
    let webhook = def
        .webhook
        .map(|u| check_url(&u).map_err(|m| format!("notify.webhook: {m}")))
        .transpose()?;
    let ping = def
        .ping
        .map(|u| check_url(&u).map_err(|m| format!("notify.ping: {m}")))
        .transpose()?;
    if webhook.is_none() && ping.is_none() {
        return Err(
            "`notify` needs a `webhook` (called with JSON on each event of `on`) or a `ping` \
             (healthchecks-style URL), or both"
                .into(),
        );
    }
    Ok(Arc::new(NotifySpec { on, webhook, ping }))
}

/// The events of `on:`, each once, in [`NotifyOn::ALL`]'s order.
fn events(names: &[String]) -> Result<Vec<NotifyOn>, String> {
    let mut on = Vec::new();
    for name in names {
        let event = NotifyOn::parse(name.trim()).ok_or_else(|| {
            let all: Vec<&str> = NotifyOn::ALL.iter().map(|e| e.as_str()).collect();
            format!(
                "notify.on: unknown event {name:?}; the events are {}",
                all.join(", ")
            )
        })?;
        if !on.contains(&event) {
            on.push(event);
        }
    }
    on.sort();
    Ok(on)
}

/// An absolute `http://` or `https://` URL with a host (and a port in
/// range, when it has one), with no blank or control character; returned
/// as written, trimmed.
pub(crate) fn check_url(written: &str) -> Result<String, String> {
    let url = written.trim();
    let example = "write it like https://hooks.example/jobrun";
    if url.is_empty() {
        return Err(format!("the URL is empty; {example}"));
    }
    if let Some(bad) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{url:?} holds {bad:?}, which a URL cannot: encode it (%20 for a blank)"
        ));
    }
    let lower = url.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url["https://".len()..]
    } else if lower.starts_with("http://") {
        &url["http://".len()..]
    } else {
        return Err(format!("{url:?} is not an http or https URL; {example}"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((addr, after)) => (addr, after.strip_prefix(':')),
            None => return Err(format!("{url:?}: the IPv6 address is not closed by `]`")),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host; {example}"));
    }
    if let Some(port) = port {
        if !port.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err(format!("{url:?}: port {port:?} is not a port (1 to 65535)"));
        }
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_http_or_https_and_a_host() {
        for good in [
            "https://hooks.example/jobrun",
            "http://127.0.0.1:8080/hook?token=x",
            "HTTPS://hc-ping.com/5d0c5a1e-7d3b-4c1f-9d0e-5c7f2a6f1a0b",
            "http://[::1]:9000/",
            "https://user:secret@hooks.example",
        ] {
            assert_eq!(check_url(good).as_deref(), Ok(good), "{good}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("hooks.example/jobrun", "not an http or https URL"),
            ("ftp://hooks.example/x", "not an http or https URL"),
            ("file:///etc/passwd", "not an http or https URL"),
            ("https:///path", "has no host"),
            ("https://:443/path", "has no host"),
            ("http://host:0/", "not a port"),
            ("http://host:99999/", "not a port"),
            ("http://host:http/", "not a port"),
            ("http://[::1/", "not closed"),
            ("https://hooks.example/a b", "which a URL cannot"),
        ] {
            let e = check_url(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
