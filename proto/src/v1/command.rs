//! What a `ringcast.v1` client may send on a `/sub` connection: only `auth <jwt>` (replace
//! the connection's token before it expires). Anything else there is a protocol misuse.

/// A client command.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ClientCommand<'a> {
    /// `auth <jwt>`: the new token.
    Auth(&'a str),
}

impl std::fmt::Debug for ClientCommand<'_> {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientCommand::Auth(_) => f.write_str("Auth(<redacted>)"),
        }
    }
}

/// Parse a text message from a `ringcast.v1` subscriber; `None`: not a command.
pub fn parse_command(text: &[u8]) -> Option<ClientCommand<'_>> {
    let rest = text.strip_prefix(b"auth ")?;
    let token = std::str::from_utf8(rest).ok()?.trim_ascii();
    if token.is_empty() || token.bytes().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    Some(ClientCommand::Auth(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            parse_command(b"auth a.b.c"),
            Some(ClientCommand::Auth("a.b.c"))
        );
        assert_eq!(
            parse_command(b"auth a.b.c\n"),
            Some(ClientCommand::Auth("a.b.c"))
        );
        assert_eq!(parse_command(b"auth "), None);
        assert_eq!(parse_command(b"auth a b"), None);
        assert_eq!(parse_command(b"hello"), None);
        assert_eq!(parse_command(b"AUTH x"), None);
        assert_eq!(
            format!("{:?}", ClientCommand::Auth("secret")),
            "Auth(<redacted>)"
        );
    }
}
