//! Reading credentials from a request: headers first, then the query string (browsers cannot set headers
//! on WebSocket and EventSource requests, so they put tokens in the query).

use actix_web::http::header::{HeaderMap, AUTHORIZATION};

/// The token of an `Authorization: Bearer <token>` header, if there is one with a non-empty token.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// A header's value as text, if present and non-empty.
pub fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// A query parameter's decoded value; names match case-insensitively, as ASP.NET's do.
pub fn query_param(query_string: &str, name: &str) -> Option<String> {
    url_decoded_pairs(query_string)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// All decoded pairs of a query string, in order.
pub fn url_decoded_pairs(query_string: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query_string).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    #[test]
    fn reads_bearer_and_query() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
        h.insert(HeaderName::from_static("x-api-key"), HeaderValue::from_static(" k "));
        assert_eq!(header(&h, "X-API-Key").as_deref(), Some("k"));
        assert_eq!(query_param("a=1&Access_Token=x%2By", "access_token").as_deref(), Some("x+y"));
        assert_eq!(query_param("access_token=", "access_token"), None);
    }
}
