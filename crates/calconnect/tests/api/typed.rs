//! Each typed call against the sandbox, both schedule shapes, the raw escape hatch, typed 4xx.

use crate::helpers::{ALICE, ALL_READ, DANA, env};
use calconnect::api::{
    AnySchedule, ApiError, BookingFilters, BookingStatus, Schedule, SortOrder, StatusFilter,
};
use http::Method;
use time::Weekday;
use time::macros::{date, time};

#[tokio::test]
async fn me_returns_the_profile() {
    let env = env().await;
    let me = env.client_for(ALICE, ALL_READ).me().await.unwrap();
    assert_eq!(me.id, ALICE);
    assert_eq!(me.username.as_deref(), Some("alice"));
    assert_eq!(me.time_zone.as_deref(), Some("Europe/London"));
    assert_eq!(me.default_schedule_id, Some(101));
    assert_eq!(me.week_start, Some(Weekday::Monday));
}

#[tokio::test]
async fn schedules_in_the_documented_shape() {
    let env = env().await;
    let api = env.client_for(ALICE, ALL_READ);
    let schedules = api.schedules().await.unwrap();
    assert_eq!(
        schedules.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![101, 102]
    );
    let working = &schedules[0];
    assert_eq!(working.name, "Working hours");
    assert!(working.is_default);
    assert_eq!(working.owner_id, Some(ALICE));
    assert_eq!(
        working.availability[0].days,
        vec![
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday
        ]
    );
    assert_eq!(working.availability[0].start_time, time!(09:00));
    assert_eq!(working.availability[1].end_time, time!(13:00));
    assert_eq!(working.overrides[0].date, date!(2026 - 12 - 24));
    assert_eq!(schedules[1].availability[0].end_time, time!(20:30));

    let default = api.default_schedule().await.unwrap().unwrap();
    assert_eq!(default.id, 101);
    let evening = api.schedule(102).await.unwrap();
    assert_eq!(evening.name, "Evening calls");
    assert!(!evening.is_default);

    // Dana has no default schedule: `data: null`.
    let dana = env.client_for(DANA, ALL_READ);
    assert_eq!(dana.default_schedule().await.unwrap(), None);
}

#[tokio::test]
async fn schedules_in_the_old_shape_typed_and_raw() {
    let env = env().await;
    let api = env.client_for(ALICE, ALL_READ);
    let legacy = api.schedules_legacy().await.unwrap();
    assert_eq!(legacy[0].id, 101);
    assert!(legacy[0].is_default);
    assert_eq!(legacy[0].working_hours[0].start_time, time!(09:00));
    assert!(legacy[0].working_hours[0].days.contains(&Weekday::Monday));
    assert_eq!(legacy[0].availability.len(), 7);
    assert_eq!(legacy[0].schedule[0].start_time, time!(09:00));

    // Without `cal-api-version` Cal.com falls back to 2024-04-15 (§5).
    let raw = api.request(Method::GET, "/schedules").send().await.unwrap();
    assert!(raw.request_id().is_some());
    let any: Vec<AnySchedule> = raw.data().unwrap();
    assert!(any.iter().all(|s| matches!(s, AnySchedule::Legacy(_))));
    assert_eq!(any[1].name(), "Evening calls");
    // The documented shape does not read as the old one.
    assert!(raw.data::<Vec<Schedule>>().is_err());

    let current: Vec<AnySchedule> = api
        .request(Method::GET, "/schedules")
        .api_version("2024-06-11")
        .send()
        .await
        .unwrap()
        .data()
        .unwrap();
    assert!(current.iter().all(|s| matches!(s, AnySchedule::Current(_))));
}

#[tokio::test]
async fn event_types_and_bookings() {
    let env = env().await;
    let api = env.client_for(ALICE, ALL_READ);
    let types = api.event_types().await.unwrap();
    assert_eq!(
        types.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>(),
        vec!["30min", "deep-dive"]
    );
    assert_eq!(types[0].length_in_minutes, 30);

    let all = api.bookings(&BookingFilters::new()).await.unwrap();
    let pagination = all.pagination.unwrap();
    assert_eq!(pagination.total_items, all.bookings.len() as u64);
    assert!(!all.bookings.is_empty());
    assert!(all.bookings.iter().all(|b| b.end > b.start));

    let cancelled = api
        .bookings(&BookingFilters::new().status(StatusFilter::Cancelled))
        .await
        .unwrap();
    assert!(
        cancelled
            .bookings
            .iter()
            .all(|b| matches!(b.status, BookingStatus::Cancelled | BookingStatus::Rejected))
    );

    let first = api
        .bookings(
            &BookingFilters::new()
                .sort_start(SortOrder::Ascending)
                .page(1, 0),
        )
        .await
        .unwrap();
    assert_eq!(first.bookings.len(), 1);
    let p = first.pagination.unwrap();
    assert_eq!(p.has_next_page, pagination.total_items > 1);
    assert_eq!(p.items_per_page, 1);
}

#[tokio::test]
async fn typed_errors_carry_the_envelope() {
    let env = env().await;
    let api = env.client_for(ALICE, ALL_READ);
    match api.schedule(999).await.unwrap_err() {
        ApiError::NotFound { request, envelope } => {
            assert_eq!(request.path, "/v2/schedules/999");
            assert_eq!(envelope.code.as_deref(), Some("NotFoundException"));
            assert_eq!(
                envelope.message.as_deref(),
                Some("Schedule with ID=999 does not exist.")
            );
            assert!(envelope.request_id.is_some());
        }
        other => panic!("{other:?}"),
    }
    // Bob's schedule.
    let err = api.schedule(201).await.unwrap_err();
    assert!(matches!(err, ApiError::Forbidden { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("GET /v2/schedules/201: forbidden"),
        "{err}"
    );
    // A 400 from validation: the details list the validator messages.
    match api
        .bookings(&BookingFilters::new().page(0, 0))
        .await
        .unwrap_err()
    {
        ApiError::Rejected {
            status, envelope, ..
        } => {
            assert_eq!(status, 400);
            assert_eq!(
                envelope.details.unwrap()["message"][0],
                "take must not be less than 1"
            );
        }
        other => panic!("{other:?}"),
    }
    // An unknown endpoint through the raw escape hatch.
    let err = api
        .request(Method::GET, "/nothing-here")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    // Paths are plain paths.
    let err = api
        .request(Method::GET, "/me?x=1")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::InvalidRequest { .. }), "{err:?}");
}
