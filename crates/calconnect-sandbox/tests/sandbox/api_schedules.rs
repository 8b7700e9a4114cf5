//! `/v2/schedules`, `/v2/schedules/default`, `/v2/schedules/{id}` in both response shapes.

use crate::api::{assert_envelope, details, get, long_token, sandbox, token};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn new_101() -> Value {
    json!({"id":101,"ownerId":1,"name":"Working hours","timeZone":"Europe/London",
        "availability":[
            {"days":["Monday","Tuesday","Wednesday","Thursday"],"startTime":"09:00","endTime":"17:00"},
            {"days":["Friday"],"startTime":"09:00","endTime":"13:00"}],
        "isDefault":true,
        "overrides":[{"date":"2026-12-24","startTime":"10:00","endTime":"12:00"}]})
}

fn new_102() -> Value {
    json!({"id":102,"ownerId":1,"name":"Evening calls","timeZone":"Europe/London",
        "availability":[{"days":["Tuesday","Thursday"],"startTime":"18:00","endTime":"20:30"}],
        "isDefault":false,"overrides":[]})
}

/// The 2024-04-15 shape of schedule 101 on 2026-12-01 (the frozen clock's day).
fn old_101() -> Value {
    let r = |s: &str, e: &str| json!({"start": format!("2026-12-01T{s}:00.000Z"), "end": format!("2026-12-01T{e}:00.000Z")});
    let full = json!([r("09:00", "17:00")]);
    json!({"id":101,"name":"Working hours","isManaged":false,
        "workingHours":[
            {"days":[1,2,3,4],"startTime":540,"endTime":1020},
            {"days":[5],"startTime":540,"endTime":780},
            {"days":[],"startTime":600,"endTime":720}],
        "schedule":[
            {"id":10101,"userId":null,"eventTypeId":null,"days":[1,2,3,4],
             "startTime":"1970-01-01T09:00:00.000Z","endTime":"1970-01-01T17:00:00.000Z",
             "date":null,"scheduleId":101},
            {"id":10102,"userId":null,"eventTypeId":null,"days":[5],
             "startTime":"1970-01-01T09:00:00.000Z","endTime":"1970-01-01T13:00:00.000Z",
             "date":null,"scheduleId":101},
            {"id":10103,"userId":null,"eventTypeId":null,"days":[],
             "startTime":"1970-01-01T10:00:00.000Z","endTime":"1970-01-01T12:00:00.000Z",
             "date":"2026-12-24T00:00:00.000Z","scheduleId":101}],
        "availability":[[],full.clone(),full.clone(),full.clone(),full,
            [r("09:00", "13:00")],[]],
        "timeZone":"Europe/London",
        "dateOverrides":[{"ranges":[{"start":"2026-12-24T10:00:00.000Z","end":"2026-12-24T12:00:00.000Z"}]}],
        "isDefault":true,"isLastSchedule":false,"readOnly":false})
}

#[tokio::test]
async fn schedules_2024_06_11_shape() {
    let sb = sandbox().await;
    let t = token(1, &["SCHEDULE_READ"]);
    for v in ["2024-06-11", "2024-06-14"] {
        let a = get(&sb, "/v2/schedules", Some(&t), Some(v)).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(
            a.body,
            json!({"status":"success","data":[new_101(), new_102()]})
        );
        let a = get(&sb, "/v2/schedules/default", Some(&t), Some(v)).await;
        assert_eq!(a.body, json!({"status":"success","data":new_101()}));
        let a = get(&sb, "/v2/schedules/102", Some(&t), Some(v)).await;
        assert_eq!(a.body, json!({"status":"success","data":new_102()}));
    }
}

#[tokio::test]
async fn schedules_default_2024_04_15_shape() {
    let sb = sandbox().await;
    let t = token(1, &["SCHEDULE_READ"]);
    // No header and an unknown version both fall back to 2024-04-15.
    for v in [None, Some("2099-01-01"), Some("2024-08-13")] {
        let a = get(&sb, "/v2/schedules/101", Some(&t), v).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(
            a.body,
            json!({"status":"success","data":old_101()}),
            "{v:?}"
        );
    }
    let a = get(&sb, "/v2/schedules/default", Some(&t), None).await;
    assert_eq!(a.body, json!({"status":"success","data":old_101()}));
    let list = get(&sb, "/v2/schedules", Some(&t), None).await;
    let data = list.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0], old_101());
    assert_eq!(data[1]["isDefault"], json!(false));
    assert_eq!(
        data[1]["workingHours"],
        json!([{"days":[2,4],"startTime":1080,"endTime":1230}])
    );
    assert_eq!(data[1]["dateOverrides"], json!([]));
}

#[tokio::test]
async fn old_shape_drops_past_overrides_and_counts_last_schedule() {
    let sb = sandbox().await;
    sb.advance_clock(time::Duration::days(30)); // 2026-12-31: the 12-24 override is past
    let t = long_token(2, &[]);
    let a = get(&sb, "/v2/schedules/201", Some(&t), None).await;
    let d = &a.body["data"];
    assert_eq!(d["isLastSchedule"], json!(true));
    assert_eq!(d["dateOverrides"], json!([]));
    assert_eq!(
        d["workingHours"],
        json!([{"days":[1,3,5],"startTime":510,"endTime":720},
               {"days":[6],"startTime":600,"endTime":840},
               {"days":[1,3,5],"startTime":780,"endTime":990}])
    );
    let r = |s: &str, e: &str| json!({"start": format!("2026-12-31T{s}:00.000Z"), "end": format!("2026-12-31T{e}:00.000Z")});
    assert_eq!(
        d["availability"][1],
        json!([r("08:30", "12:00"), r("13:00", "16:30")])
    );
    assert_eq!(d["availability"][6], json!([r("10:00", "14:00")]));
    assert_eq!(d["availability"][0], json!([]));
}

#[tokio::test]
async fn schedule_errors() {
    let sb = sandbox().await;
    let alice = token(1, &["SCHEDULE_READ"]);
    for v in [None, Some("2024-06-11")] {
        let a = get(&sb, "/v2/schedules/999", Some(&alice), v).await;
        let m = "Schedule with ID=999 does not exist.";
        assert_envelope(
            &a,
            404,
            "/v2/schedules/999",
            "NotFoundException",
            details(m, "Not Found", 404),
        );
        let a = get(&sb, "/v2/schedules/201", Some(&alice), v).await;
        let m = "User with ID=1 does not own schedule with ID=201";
        assert_envelope(
            &a,
            403,
            "/v2/schedules/201",
            "ForbiddenException",
            details(m, "Forbidden", 403),
        );
    }
    let a = get(&sb, "/v2/schedules/abc", Some(&alice), None).await;
    let m = "Schedule with ID=abc does not exist.";
    assert_envelope(
        &a,
        404,
        "/v2/schedules/abc",
        "NotFoundException",
        details(m, "Not Found", 404),
    );
    // dev has no schedules and no default schedule.
    let dev = token(3, &["SCHEDULE_READ"]);
    for v in [None, Some("2024-04-15"), Some("2024-06-11")] {
        let a = get(&sb, "/v2/schedules/default", Some(&dev), v).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body, json!({"status":"success","data":null}));
    }
    let a = get(&sb, "/v2/schedules", Some(&dev), Some("2024-06-11")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, json!({"status":"success","data":[]}));
}

/// 2024-04-15 (also the version without a header) for a user without schedules: the repository
/// throws a plain `Error("Schedules not found")`, which only Nest's base filter answers.
#[tokio::test]
async fn old_schedule_list_without_schedules_is_a_bare_500() {
    let sb = sandbox().await;
    let dev = format!("Bearer {}", token(3, &["SCHEDULE_READ"]));
    for v in [None, Some("2024-04-15"), Some("2099-01-01")] {
        let mut req = crate::helpers::client()
            .get(sb.api_url().join("/v2/schedules").unwrap())
            .header("authorization", &dev);
        if let Some(v) = v {
            req = req.header("cal-api-version", v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR, "{v:?}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        // The guards ran: the rate-limit headers are there.
        assert!(resp.headers().get("x-ratelimit-limit-default").is_some());
        assert_eq!(
            resp.text().await.unwrap(),
            r#"{"statusCode":500,"message":"Internal server error"}"#
        );
    }
}
