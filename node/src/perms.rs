//! Permission grammar: `sub:<pattern>` / `pub:<pattern>` over dot-separated channel names.
//!
//! A channel is 1..=200 bytes of non-empty segments of `[A-Za-z0-9_\-:@=]`, joined by dots.
//! A pattern is a channel whose segments after the first may be `*`: a `*` matches exactly one
//! segment, except as the LAST segment where it matches one or more (`sub:chat.*` allows
//! `chat.room1` and `chat.room1.thread`, never `chat`). A leading `*` (and so a bare `*`) is
//! invalid: a grant always names a namespace, so "everything" cannot be granted by accident.

pub use tether_protocol::MAX_CHANNEL_BYTES;

/// Whether `name` is a valid channel name.
pub fn is_valid_channel(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_CHANNEL_BYTES && name.split('.').all(is_valid_segment)
}

fn is_valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'@' | b'='))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: one segment, or one-or-more when it is the last segment.
    Wildcard,
}

/// A parsed channel pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    segments: Vec<Segment>,
}

impl Pattern {
    /// Parses a pattern; `None` when it breaks the grammar.
    pub fn parse(text: &str) -> Option<Pattern> {
        if text.is_empty() || text.len() > MAX_CHANNEL_BYTES {
            return None;
        }
        let mut segments = Vec::new();
        for (i, segment) in text.split('.').enumerate() {
            segments.push(match segment {
                "*" if i > 0 => Segment::Wildcard,
                s if is_valid_segment(s) => Segment::Literal(s.to_owned()),
                _ => return None,
            });
        }
        Some(Pattern { segments })
    }

    /// Whether the (valid) channel name matches.
    pub fn matches(&self, channel: &str) -> bool {
        let mut parts = channel.split('.');
        let last = self.segments.len().saturating_sub(1);
        for (i, segment) in self.segments.iter().enumerate() {
            let Some(part) = parts.next() else {
                return false;
            };
            match segment {
                // A trailing wildcard has consumed its one required segment; the rest is free.
                Segment::Wildcard if i == last => return true,
                Segment::Wildcard => {}
                Segment::Literal(literal) if literal == part => {}
                Segment::Literal(_) => return false,
            }
        }
        parts.next().is_none()
    }
}

/// The grants of one session, parsed from the token's (or an admin override's) strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    subscribe: Vec<Pattern>,
    publish: Vec<Pattern>,
    invalid: Vec<String>,
}

impl Permissions {
    /// Parses every entry; entries that break the grammar (including OAuth scopes such as
    /// `openid` that arrive through `scope`) grant nothing and are kept for [`Self::invalid`].
    pub fn parse(entries: &[String]) -> Permissions {
        let mut perms = Permissions::default();
        for entry in entries {
            let parsed = match entry.split_once(':') {
                Some(("sub", pattern)) => Pattern::parse(pattern).map(|p| (true, p)),
                Some(("pub", pattern)) => Pattern::parse(pattern).map(|p| (false, p)),
                _ => None,
            };
            match parsed {
                Some((true, p)) => perms.subscribe.push(p),
                Some((false, p)) => perms.publish.push(p),
                None => perms.invalid.push(entry.clone()),
            }
        }
        perms
    }

    pub fn can_subscribe(&self, channel: &str) -> bool {
        is_valid_channel(channel) && self.subscribe.iter().any(|p| p.matches(channel))
    }

    pub fn can_publish(&self, channel: &str) -> bool {
        is_valid_channel(channel) && self.publish.iter().any(|p| p.matches(channel))
    }

    /// Entries that granted nothing because they break the grammar; for a log line.
    pub fn invalid(&self) -> &[String] {
        &self.invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(entries: &[&str]) -> Permissions {
        Permissions::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
    }

    /// Channel names: length bounds, non-empty segments, and the allowed character set.
    #[test]
    fn channel_names() {
        for ok in ["chat", "chat.room1", "a-b_c:d@e=f.G9", &"x".repeat(200)] {
            assert!(is_valid_channel(ok), "{ok}");
        }
        let long = "x".repeat(201);
        for bad in [
            "",
            ".",
            "chat.",
            ".chat",
            "chat..room",
            "chat room",
            "chat.*",
            "é",
            &long,
        ] {
            assert!(!is_valid_channel(bad), "{bad}");
        }
    }

    /// A trailing `*` matches one or more segments, never zero.
    #[test]
    fn trailing_wildcard_is_one_or_more() {
        let p = perms(&["sub:chat.*"]);
        assert!(p.can_subscribe("chat.room1"));
        assert!(p.can_subscribe("chat.room1.thread"));
        assert!(!p.can_subscribe("chat"));
        assert!(!p.can_subscribe("chatter.room1"));
        assert!(
            !p.can_publish("chat.room1"),
            "sub grants do not allow publishing"
        );
    }

    /// A middle `*` matches exactly one segment.
    #[test]
    fn middle_wildcard_is_exactly_one() {
        let p = perms(&["pub:org.*.alerts"]);
        assert!(p.can_publish("org.acme.alerts"));
        assert!(!p.can_publish("org.acme.eu.alerts"));
        assert!(!p.can_publish("org.alerts"));
        assert!(!p.can_publish("org.acme.alerts.x"));
        let q = perms(&["pub:org.*.*"]);
        assert!(q.can_publish("org.a.b") && q.can_publish("org.a.b.c") && !q.can_publish("org.a"));
    }

    /// Exact patterns match only themselves.
    #[test]
    fn exact_match() {
        let p = perms(&["sub:chat.room1"]);
        assert!(p.can_subscribe("chat.room1"));
        assert!(!p.can_subscribe("chat.room10"));
        assert!(!p.can_subscribe("chat.room1.x"));
        assert!(!p.can_subscribe("chat"));
    }

    /// Invalid entries grant nothing and are reported; a bare or leading `*` is invalid.
    #[test]
    fn invalid_entries_reported() {
        let bad = [
            "sub:*",
            "pub:*.x",
            "sub:",
            "sub:chat.ro*",
            "sub:chat..x",
            "openid",
            "SUB:chat.x",
            "admin:chat.x",
            "sub:chat.*.",
            "sub:chat room",
        ];
        let p = perms(&bad);
        assert_eq!(p.invalid(), bad);
        assert!(!p.can_subscribe("chat.x") && !p.can_publish("x.y"));
        let long = format!("sub:{}", "x".repeat(201));
        assert_eq!(perms(&[&long]).invalid().len(), 1);
    }

    /// Invalid channel names are refused even under a matching-looking grant.
    #[test]
    fn invalid_channels_refused() {
        let p = perms(&["sub:chat.*", "pub:chat.*"]);
        assert!(!p.can_subscribe("chat.*"));
        assert!(!p.can_subscribe("chat.room 1"));
        assert!(!p.can_publish("chat."));
        assert!(p.invalid().is_empty());
    }

    /// Separate grants combine: any matching pattern allows.
    #[test]
    fn grants_combine() {
        let p = perms(&["sub:chat.room1", "sub:news.*", "pub:chat.room1"]);
        assert!(p.can_subscribe("chat.room1") && p.can_subscribe("news.eu"));
        assert!(p.can_publish("chat.room1") && !p.can_publish("news.eu"));
        assert!(!Permissions::default().can_subscribe("chat.room1"));
    }
}
