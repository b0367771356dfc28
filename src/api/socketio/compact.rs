//! What engine.io keeps of the request that opened a session: it stores the request's parts
//! (URI, headers, extensions) in the socket for the socket's whole life. hyper parses a
//! request without copying: the URI and every header value are slices of the connection's
//! 8 KiB read buffer, so keeping any of them keeps the whole buffer — 8 KiB per connection,
//! the largest single cost of an idle connection before this (bench/results/connections.md, "Where
//! the bytes go"). [`compact`] gives engine.io owned copies of the URI and of the few headers
//! opening a session needs, and nothing else, so the read buffer is freed at the upgrade.

use axum::extract::Request;
use axum::http::header::{CONTENT_TYPE, SEC_WEBSOCKET_KEY};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};

/// The headers engine.io reads from the request that opens a session: the WebSocket key it
/// answers the handshake with, and the content type of a polling request's body. Nothing in
/// gru reads another header of a socket (the upgrade itself travels in the extensions).
const KEPT: [HeaderName; 2] = [SEC_WEBSOCKET_KEY, CONTENT_TYPE];

/// `request` with an owned copy of its URI and of the [`KEPT`] headers only, none of them
/// borrowing the connection's read buffer; extensions and body unchanged.
pub(super) fn compact(request: Request) -> Request {
    let (mut parts, body) = request.into_parts();
    parts.uri = owned_uri(&parts.uri).unwrap_or(parts.uri);
    // Grown as the kept headers are found: usually one, and a map sized for one.
    let mut headers = HeaderMap::new();
    for name in KEPT {
        for value in parts.headers.get_all(&name) {
            // `from_bytes` copies: the new value owns its bytes.
            if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                headers.append(name.clone(), value);
            }
        }
    }
    parts.headers = headers;
    Request::from_parts(parts, body)
}

/// A copy of `uri` in its own allocation (`None` if it does not parse back, which a URI hyper
/// accepted always does).
fn owned_uri(uri: &Uri) -> Option<Uri> {
    Uri::try_from(uri.to_string()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::{CONNECTION, SEC_WEBSOCKET_VERSION, UPGRADE};

    #[test]
    fn keeps_the_handshake_headers_and_the_uri_and_drops_the_rest() {
        let request = Request::builder()
            .uri("/socket.io/?EIO=4&transport=websocket")
            .header(SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
            .header(SEC_WEBSOCKET_VERSION, "13")
            .header(UPGRADE, "websocket")
            .header(CONNECTION, "Upgrade")
            .header("user-agent", "a browser with a long name")
            .header("cookie", "a=1; b=2")
            .body(axum::body::Body::empty())
            .expect("a valid request");
        let compacted = compact(request);
        assert_eq!(compacted.uri().query(), Some("EIO=4&transport=websocket"));
        let headers = compacted.headers();
        assert_eq!(headers.len(), 1);
        assert_eq!(
            headers.get(SEC_WEBSOCKET_KEY).map(HeaderValue::as_bytes),
            Some(&b"dGhlIHNhbXBsZSBub25jZQ=="[..])
        );
        assert!(headers.get("user-agent").is_none());
        assert!(headers.get("cookie").is_none());
    }
}
