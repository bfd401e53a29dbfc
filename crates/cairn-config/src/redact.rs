//! Printing URLs without their secrets. `logs_config.logs_dd_url` may carry a password
//! (`http://user:pass@host`), and a URL copied from elsewhere may carry a key in its query
//! string: every place that prints a URL goes through [`redact_url`] (one URL) or
//! [`redact_urls_in`] (free text that may contain some), so there is one rule to audit.

/// What a hidden part prints as; the same mask as [`crate::Secret`].
pub const MASK: &str = "********";

/// `url` with its secrets masked: the password of the userinfo (`http://user:********@host`),
/// every query value (`?dd-api-key=********`) and the fragment. The user name, host, port and
/// path stay, since they are what an operator needs to recognise the endpoint. Also works on
/// the scheme-less `user:pass@host:port` form `logs_dd_url` accepts. Text that is not a URL
/// comes back unchanged.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = String::with_capacity(url.len() + MASK.len());
    out.push_str(scheme);
    // The last `@` ends the userinfo: a password may itself hold an unescaped `@`.
    match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(MASK);
                }
                None => out.push_str(userinfo),
            }
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (tail, None),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((name, _value)) => {
                        out.push_str(name);
                        out.push('=');
                        out.push_str(MASK);
                    }
                    // A bare `?token` may be the secret itself.
                    None if !pair.is_empty() => out.push_str(MASK),
                    None => {}
                }
            }
        }
        None => out.push_str(before_fragment),
    }
    if let Some(f) = fragment {
        out.push('#');
        if !f.is_empty() {
            out.push_str(MASK);
        }
    }
    out
}

/// [`redact_url`] applied to every `scheme://…` found in `text` (a URL ends at whitespace, a
/// quote, or a closing bracket), for messages built by code that does not know it holds a URL.
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        // Back up over the scheme's letters.
        let scheme_start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |j| j + 1);
        let after = &rest[i + 3..];
        let len = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | ']'))
            .unwrap_or(after.len());
        let end = i + 3 + len;
        out.push_str(&rest[..scheme_start]);
        if scheme_start == i {
            // `://` with no scheme before it: not a URL, keep it as is.
            out.push_str(&rest[i..end]);
        } else {
            out.push_str(&redact_url(&rest[scheme_start..end]));
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_query_values_and_fragments_are_masked_the_rest_kept() {
        let cases = [
            (
                "http://user:SECRET@host:8080/p",
                "http://user:********@host:8080/p",
            ),
            ("https://u:p%40ss@w@h/", "https://u:********@h/"),
            ("http://user@host", "http://user@host"),
            (
                "http://host:1/api?dd-api-key=KEY&x=1",
                "http://host:1/api?dd-api-key=********&x=********",
            ),
            ("http://host?TOKEN", "http://host?********"),
            ("http://host/#frag", "http://host/#********"),
            (
                "http://a:b@host?k=v#f",
                "http://a:********@host?k=********#********",
            ),
            (
                "user:pw@intake.local:10516",
                "user:********@intake.local:10516",
            ),
            ("intake.local:10516", "intake.local:10516"),
            (
                "https://http-intake.logs.datadoghq.com",
                "https://http-intake.logs.datadoghq.com",
            ),
            ("", ""),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn urls_inside_text_are_found_and_masked() {
        let text =
            "error sending request for url (http://u:SECRET@h:1/api/v2/logs?dd-api-key=K): refused";
        let got = redact_urls_in(text);
        assert_eq!(
            got,
            "error sending request for url (http://u:********@h:1/api/v2/logs?dd-api-key=********): refused"
        );
        assert_eq!(redact_urls_in("no url here"), "no url here");
        assert_eq!(redact_urls_in("odd :// thing"), "odd :// thing");
        assert_eq!(
            redact_urls_in("\"http://a:b@x\" and https://c:d@y"),
            "\"http://a:********@x\" and https://c:********@y"
        );
    }
}
