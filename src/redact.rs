//! Credentials never leave in what grab writes for people: a password in a URL
//! (`https://user:secret@host/`) and query parameters that carry secrets
//! (`token`, `sig`, `X-Amz-Signature`, `api_key`...) are masked as `***` in
//! console lines, logs, the manifest and `--report`, as wget masks passwords.
//! The user name and every other part of the URL stay, so a line still says
//! which URL it is about.
//!
//! Masking happens where text leaves: [`text`] is applied to every console line
//! and log line (so an error message from an HTTP client that quotes its URL is
//! masked too), [`url()`] where a URL is written as a field.

use std::borrow::Cow;

use url::Url;

/// What a masked secret reads as.
pub const MASK: &str = "***";

/// Query parameter names that are secrets whatever they end with, compared
/// lower-case with `-`, `_` and `.` left out.
const SECRET_NAMES: [&str; 15] = [
    "key",
    "sig",
    "auth",
    "pass",
    "pwd",
    "passwd",
    "session",
    "sessionid",
    "sid",
    "code",
    "authorization",
    "credential",
    "credentials",
    "jwt",
    "otp",
];

/// Endings of query parameter names that are secrets: `access_token`,
/// `X-Amz-Signature`, `client_secret`, `api_key`, `X-Amz-Security-Token`.
const SECRET_ENDINGS: [&str; 9] = [
    "token",
    "signature",
    "secret",
    "password",
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "credential",
];

/// Whether a query parameter of this name carries a secret.
pub fn is_secret_parameter(name: &str) -> bool {
    let folded: String = name
        .chars()
        .filter(|character| !matches!(character, '-' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_NAMES.contains(&folded.as_str())
        || SECRET_ENDINGS.iter().any(|ending| folded.ends_with(ending))
}

/// The URL with its password and secret query values masked; unchanged (and not
/// copied) when it has none.
pub fn url(url: &Url) -> Cow<'_, str> {
    let secret_query = url
        .query_pairs()
        .any(|(name, _)| is_secret_parameter(&name));
    if url.password().is_none() && !secret_query {
        return Cow::Borrowed(url.as_str());
    }
    let mut masked = url.clone();
    if masked.password().is_some() {
        let _ = masked.set_password(Some(MASK));
    }
    if secret_query {
        // Rebuilt by hand rather than with `query_pairs_mut`, which would
        // percent-encode the mask and re-encode every other pair.
        let query = url
            .query()
            .unwrap_or_default()
            .split('&')
            .map(|pair| {
                let (name, _) = pair.split_once('=').unwrap_or((pair, ""));
                let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
                if is_secret_parameter(&decoded) {
                    format!("{name}={MASK}")
                } else {
                    pair.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        masked.set_query(Some(&query));
    }
    Cow::Owned(masked.into())
}

/// [`url()`] for a URL held as text; text that is not a URL is returned as is.
pub fn url_text(text: &str) -> Cow<'_, str> {
    match Url::parse(text) {
        Ok(parsed) => match url(&parsed) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(masked) => Cow::Owned(masked),
        },
        Err(_) => Cow::Borrowed(text),
    }
}

/// Free text (a console line, a log line, a client's error message) with every
/// URL in it masked. A URL is taken to run from its scheme to the next blank,
/// quote or bracket, as messages quote them.
pub fn text(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let ends = |character: char| {
        character.is_whitespace() || matches!(character, '"' | '\'' | '<' | '>' | '(' | ')' | '`')
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(separator) = rest.find("://") {
        // Back from `://` over the scheme's letters.
        let scheme_start = rest[..separator]
            .rfind(|character: char| {
                !(character.is_ascii_alphanumeric() || matches!(character, '+' | '-' | '.'))
            })
            .map_or(0, |index| index + 1);
        let end = rest[separator..]
            .find(ends)
            .map_or(rest.len(), |index| separator + index);
        let candidate = &rest[scheme_start..end];
        out.push_str(&rest[..scheme_start]);
        match url_text(candidate) {
            Cow::Owned(masked) => {
                changed = true;
                out.push_str(&masked);
            }
            Cow::Borrowed(same) => out.push_str(same),
        }
        rest = &rest[end..];
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// A writer that masks URLs in what passes through it: for log lines, which
/// the log formatter hands over one whole line at a time.
pub struct Redacting<W>(pub W);

impl<W: std::io::Write> std::io::Write for Redacting<W> {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buffer) {
            Ok(line) => self.0.write_all(text(line).as_bytes())?,
            Err(_) => self.0.write_all(buffer)?,
        }
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(raw: &str) -> String {
        url(&Url::parse(raw).unwrap()).into_owned()
    }

    #[test]
    fn passwords_and_secret_parameters_are_masked() {
        assert_eq!(
            masked("https://ann:hunter2@example.com/a.jpg"),
            "https://ann:***@example.com/a.jpg"
        );
        assert_eq!(
            masked(
                "https://s3.example.com/b.jpg?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc&size=2"
            ),
            "https://s3.example.com/b.jpg?X-Amz-Credential=***&X-Amz-Signature=***&size=2"
        );
        assert_eq!(
            masked("http://h/x?access_token=t0k&sig=s1g&api-key=k3y&id=7"),
            "http://h/x?access_token=***&sig=***&api-key=***&id=7"
        );
    }

    #[test]
    fn urls_without_secrets_are_left_alone() {
        for raw in [
            "https://example.com/a.jpg?id=7&monkey=1&size=large",
            "https://ann@example.com/",
        ] {
            assert!(matches!(url(&Url::parse(raw).unwrap()), Cow::Borrowed(_)));
        }
        assert!(!is_secret_parameter("keyword") && !is_secret_parameter("monkey"));
        assert!(is_secret_parameter("X-Goog-Signature") && is_secret_parameter("Token"));
    }

    #[test]
    fn urls_inside_messages_are_masked() {
        assert_eq!(
            text("error sending request for url (https://u:pw@h/p?token=x): refused"),
            "error sending request for url (https://u:***@h/p?token=***): refused"
        );
        assert_eq!(
            text("failed \"http://h/a?key=1\" and https://h/b"),
            "failed \"http://h/a?key=***\" and https://h/b"
        );
        assert!(matches!(
            text("nothing to hide in http://h/x"),
            Cow::Borrowed(_)
        ));
    }
}
