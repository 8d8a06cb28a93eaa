//! The original request's path as `/v1/authz` matches it: the query and
//! fragment dropped, percent-escapes decoded, repeated slashes merged. A path
//! that could mean one thing here and another to the service behind the
//! gateway is refused instead (a gateway then refuses the request): a `.` or
//! `..` segment, raw or escaped, and an escape that is malformed or decodes
//! to a control character or to bytes that are not UTF-8.
//!
//! Decoding and merging only ever make more requests match a route (a route's
//! path holds neither `%` nor `//`), so a client cannot slip past a route by
//! spelling its path differently.

/// The path to match, or what is wrong with it.
pub fn normalize(uri: &str) -> Result<String, String> {
    let path = uri.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err(format!("the original path must start with /, not {:?}", truncate(path)));
    }
    let decoded = decode(path)?;
    let mut out = String::with_capacity(decoded.len());
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        if segment == "." || segment == ".." {
            return Err(format!(
                "the original path {:?} has a {segment:?} segment: refused rather than guess how the service behind resolves it",
                truncate(path)
            ));
        }
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || decoded.ends_with('/') {
        out.push('/');
    }
    Ok(out)
}

/// `path` with its percent-escapes decoded.
fn decode(path: &str) -> Result<String, String> {
    if !path.contains('%') {
        return check_controls(path.to_string(), path);
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
            return Err(format!("the original path {:?} has a malformed percent-escape", truncate(path)));
        };
        out.push(byte);
        i += 3;
    }
    let text = String::from_utf8(out)
        .map_err(|_| format!("the original path {:?} decodes to bytes that are not UTF-8", truncate(path)))?;
    check_controls(text, path)
}

fn check_controls(decoded: String, path: &str) -> Result<String, String> {
    if decoded.chars().any(char::is_control) {
        return Err(format!("the original path {:?} holds a control character", truncate(path)));
    }
    Ok(decoded)
}

/// At most 200 bytes of `s`, for messages.
fn truncate(s: &str) -> &str {
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn queries_go_escapes_decode_and_slashes_merge() {
        assert_eq!(normalize("/api/messages?to=1#top").unwrap(), "/api/messages");
        assert_eq!(normalize("/api/%6Dessages").unwrap(), "/api/messages");
        assert_eq!(normalize("//api///messages/").unwrap(), "/api/messages/");
        assert_eq!(normalize("/api%2Fmessages").unwrap(), "/api/messages");
        assert_eq!(normalize("/").unwrap(), "/");
        assert_eq!(normalize("/caf%C3%A9").unwrap(), "/café");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for bad in [
            "/api/../admin",
            "/api/./messages",
            "/api/%2e%2e/admin",
            "/api/%2E/x",
            "/a/%zz",
            "/a/%4",
            "/a%00b",
            "/a/%ff",
            "api",
            "",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?} is refused");
        }
        assert!(normalize("/a/..b").is_ok(), "a segment that only starts with dots is a name");
    }
}
