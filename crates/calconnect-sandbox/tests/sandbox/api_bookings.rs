//! `/v2/event-types` and `/v2/bookings` (filters, pagination, validation, the 403 switch).

use crate::api::{
    KEY, assert_envelope, claims, details, get, long_token, sandbox, sandbox_with, token,
};
use calconnect_sandbox::Sandbox;
use calconnect_sandbox::jwt::sign;
use calconnect_sandbox::seed::SeedBooking;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn event_type(id: i64, len: i64, title: &str, slug: &str, description: &str) -> Value {
    json!({"id":id,"ownerId":1,"lengthInMinutes":len,"title":title,"slug":slug,
        "description":description,"locations":[],"bookingFields":[],"disableGuests":false,
        "slotInterval":null,"minimumBookingNotice":120,"beforeEventBuffer":0,"afterEventBuffer":0,
        "schedulingType":null,"recurrence":null,"metadata":{},"requiresConfirmation":false,
        "price":0,"currency":"usd","lockTimeZoneToggleOnBookingPage":false,
        "seatsPerTimeSlot":null,"forwardParamsSuccessRedirect":true,"successRedirectUrl":null,
        "seatsShowAvailabilityCount":true,"isInstantEvent":false,
        "users":[{"id":1,"name":"Alice Anderson","username":"alice","avatarUrl":null,
            "weekStart":"Monday","brandColor":"#292929","darkBrandColor":"#fafafa","metadata":{}}],
        "scheduleId":null,"hidden":false})
}

#[tokio::test]
async fn event_types_of_the_caller() {
    let sb = sandbox().await;
    let t = token(1, &["EVENT_TYPE_READ"]);
    let a = get(&sb, "/v2/event-types", Some(&t), Some("2024-06-14")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.body,
        json!({"status":"success","data":[
            event_type(501, 30, "30 min meeting", "30min", "A quick call."),
            event_type(502, 60, "Deep dive", "deep-dive", "")]})
    );
    let bob = get(&sb, "/v2/event-types", Some(&token(2, &[])), None).await;
    let ids: Vec<i64> = bob.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![601]);
}

fn extra(id: i64, uid: &str, minutes: i64, status: &str) -> SeedBooking {
    SeedBooking {
        id,
        uid: uid.to_owned(),
        user_id: 1,
        event_type_id: 501,
        title: uid.to_owned(),
        starts_in_minutes: minutes,
        duration_minutes: 30,
        status: status.to_owned(),
        attendee_name: "Ivan".to_owned(),
        attendee_email: "ivan@example.org".to_owned(),
        attendee_time_zone: "Europe/London".to_owned(),
    }
}

async fn bookings_sandbox() -> Sandbox {
    sandbox_with(Sandbox::builder().with_seed(|s| {
        s.bookings
            .push(extra(9005, "bk_cancelled", 2 * 24 * 60, "cancelled"));
        s.bookings
            .push(extra(9006, "bk_pending", 4 * 24 * 60, "pending"));
    }))
    .await
}

fn ids(a: &crate::api::Answer) -> Vec<i64> {
    a.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", a.body))
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn bookings_shape_and_pagination() {
    let sb = bookings_sandbox().await;
    let t = token(1, &["BOOKING_READ"]);
    let a = get(
        &sb,
        "/v2/bookings?status=upcoming&take=1",
        Some(&t),
        Some("2024-08-13"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.body,
        json!({"status":"success","data":[{
            "id":9001,"uid":"bk_alice_tomorrow",
            "title":"30 min meeting between Alice Anderson and Erin","description":"",
            "hosts":[{"id":1,"name":"Alice Anderson","username":"alice","timeZone":"Europe/London"}],
            "status":"accepted","start":"2026-12-02T10:00:00.000Z","end":"2026-12-02T10:30:00.000Z",
            "duration":30,"eventTypeId":501,"eventType":{"id":501,"slug":"30min"},"location":null,
            "absentHost":false,"createdAt":"2026-11-24T08:00:00.000Z","metadata":{},
            "attendees":[{"name":"Erin Example","email":"erin@example.org",
                "timeZone":"Europe/London","language":"en","absent":false}],
            "bookingFieldsResponses":{"name":"Erin Example","email":"erin@example.org"}}],
          "pagination":{"totalItems":3,"remainingItems":2,"itemsPerPage":1,"currentPage":1,
            "totalPages":3,"hasNextPage":true,"hasPreviousPage":false}})
    );
    let a = get(&sb, "/v2/bookings?take=2&skip=1", Some(&t), None).await;
    assert_eq!(ids(&a), vec![9001, 9005]);
    assert_eq!(
        a.body["pagination"],
        json!({"totalItems":5,"remainingItems":2,"itemsPerPage":2,"currentPage":1,
            "totalPages":3,"hasNextPage":true,"hasPreviousPage":true})
    );
    let a = get(&sb, "/v2/bookings?take=2&skip=4", Some(&t), None).await;
    assert_eq!(ids(&a), vec![9002]);
    assert_eq!(
        a.body["pagination"],
        json!({"totalItems":5,"remainingItems":0,"itemsPerPage":2,"currentPage":3,
            "totalPages":3,"hasNextPage":false,"hasPreviousPage":true})
    );
    // Default page size 100; bob sees only his own.
    let a = get(&sb, "/v2/bookings", Some(&token(2, &[])), None).await;
    assert_eq!(ids(&a), vec![9004]);
    assert_eq!(a.body["pagination"]["itemsPerPage"], json!(100));
}

#[tokio::test]
async fn bookings_filters_follow_the_sandbox_clock() {
    let sb = bookings_sandbox().await;
    let t = long_token(1, &["BOOKING_READ"]);
    let q = |s: &'static str| s;
    let cases: [(&str, Vec<i64>); 9] = [
        (q("status=upcoming"), vec![9001, 9006, 9002]),
        (q("status=past"), vec![9003]),
        (q("status=cancelled"), vec![9005]),
        (q("status=unconfirmed"), vec![9006]),
        (q("status=recurring"), vec![]),
        (q("status=upcoming,past"), vec![9003, 9001, 9006, 9002]),
        (q("status=upcoming&sortStart=desc"), vec![9002, 9006, 9001]),
        (
            q("afterStart=2026-12-02T00:00:00Z&beforeEnd=2026-12-06"),
            vec![9001, 9005, 9006],
        ),
        (q(""), vec![9003, 9001, 9005, 9006, 9002]),
    ];
    for (query, want) in cases {
        let a = get(&sb, &format!("/v2/bookings?{query}"), Some(&t), None).await;
        assert_eq!(ids(&a), want, "{query}");
    }
    sb.advance_clock(time::Duration::days(2));
    let a = get(&sb, "/v2/bookings?status=past", Some(&t), None).await;
    assert_eq!(
        ids(&a),
        vec![9001, 9003],
        "newest first by default for past"
    );
}

#[tokio::test]
async fn bookings_validation_errors() {
    let sb = bookings_sandbox().await;
    let t = token(1, &["BOOKING_READ"]);
    let path = "/v2/bookings?status=soon&take=300&afterStart=yesterday";
    let a = get(&sb, path, Some(&t), None).await;
    assert_envelope(
        &a,
        400,
        path,
        "BadRequestException",
        json!({"message":[
            "Invalid status. Allowed are upcoming, recurring, past, cancelled, unconfirmed",
            "fromDate must be a valid ISO 8601 date.",
            "take must not be greater than 250"],
          "error":"Bad Request","statusCode":400}),
    );
}

#[tokio::test]
async fn expired_token_on_bookings_switch() {
    let sb = bookings_sandbox().await;
    let t = token(1, &["BOOKING_READ", "PROFILE_READ"]);
    sb.advance_clock(time::Duration::minutes(31));
    let invalid = details("Invalid Access Token.", "Unauthorized", 401);
    let a = get(&sb, "/v2/bookings", Some(&t), None).await;
    assert_envelope(
        &a,
        401,
        "/v2/bookings",
        "UnauthorizedException",
        invalid.clone(),
    );

    sb.set_bookings_expired_token_403(true);
    let a = get(&sb, "/v2/bookings?status=upcoming", Some(&t), None).await;
    let msg = format!(
        "PermissionsGuard - no oAuth client found for access token={}…",
        &t[..10]
    );
    assert_envelope(
        &a,
        403,
        "/v2/bookings?status=upcoming",
        "ForbiddenException",
        details(&msg, "Forbidden", 403),
    );
    assert!(msg.contains("no oAuth client found for access token"));
    assert!(!a.body.to_string().contains(&t), "the token is not echoed");
    // Only expired (validly signed) tokens, and only on /v2/bookings.
    let a = get(&sb, "/v2/me", Some(&t), None).await;
    assert_envelope(&a, 401, "/v2/me", "UnauthorizedException", invalid.clone());
    let forged = sign(&claims(Some(1), None, &[]), b"wrong key");
    let a = get(&sb, "/v2/bookings", Some(&forged), None).await;
    assert_envelope(
        &a,
        401,
        "/v2/bookings",
        "UnauthorizedException",
        invalid.clone(),
    );
    let fresh = sign(
        &{
            let mut c = claims(Some(1), None, &["BOOKING_READ"]);
            c.exp = sb.now().unix_timestamp() + 1800;
            c
        },
        KEY,
    );
    assert_eq!(
        get(&sb, "/v2/bookings", Some(&fresh), None).await.status,
        StatusCode::OK
    );

    sb.set_bookings_expired_token_403(false);
    let a = get(&sb, "/v2/bookings", Some(&t), None).await;
    assert_envelope(&a, 401, "/v2/bookings", "UnauthorizedException", invalid);
}
