//! Token-endpoint answers: success parsing (tolerant), failure classification and JWT claim
//! reading must never panic, whatever the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let _ = calconnect::parse_token_response(data, now);
    if let Some((head, body)) = data.split_first_chunk::<2>() {
        let status = 100 + u16::from_le_bytes(*head) % 500;
        calconnect::fuzz_classify(status, "application/json", body);
        calconnect::fuzz_classify(status, "text/html", body);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = calconnect::read_unverified_claims(text);
    }
});
