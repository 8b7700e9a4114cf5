//! The one encoding of a scope list in every calconnect table: a JSON array of strings in a text
//! column (`["BOOKING_READ","PROFILE_READ"]`), on both backends.

/// `scopes` as stored.
pub fn encode(scopes: &[String]) -> String {
    serde_json::to_string(scopes).unwrap_or_else(|_| "[]".to_owned())
}

/// A stored scope list; `None` if it is not a JSON array of strings.
pub fn decode(stored: &str) -> Option<Vec<String>> {
    serde_json::from_str(stored).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let scopes = vec!["BOOKING_READ".to_owned(), "a\"b".to_owned()];
        assert_eq!(super::encode(&scopes), r#"["BOOKING_READ","a\"b"]"#);
        assert_eq!(super::decode(&super::encode(&scopes)), Some(scopes));
        assert_eq!(super::decode("[]"), Some(vec![]));
        assert_eq!(super::decode("BOOKING_READ PROFILE_READ"), None);
    }
}
