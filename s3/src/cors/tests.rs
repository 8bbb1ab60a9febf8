//! Tests of CORS: validation and the stored form, rule matching, and preflights and actual requests.

use http::header;
use http::HeaderMap;
use s3s::S3ErrorCode;

use super::matching::wildcard_match;
use super::*;

fn rule(origins: &[&str], methods: &[&str]) -> CorsRule {
    CorsRule {
        id: None,
        allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
        allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
        allowed_headers: vec![],
        expose_headers: vec![],
        max_age_seconds: None,
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn put(rules: Vec<CorsRule>) -> Result<CorsRules, S3Error> {
    CorsRules::from_dto(&CorsRules { rules }.to_dto())
}

fn refusal(rules: Vec<CorsRule>) -> (S3ErrorCode, String) {
    match put(rules) {
        Ok(r) => panic!("accepted {r:?}"),
        Err(e) => (e.code().clone(), e.message().unwrap_or_default().to_owned()),
    }
}

fn get(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

#[test]
fn a_valid_configuration_round_trips_through_the_dto_and_json() {
    let mut r = rule(&["https://*.example.com", "*"], &["GET", "PUT", "HEAD", "POST", "DELETE"]);
    r.id = Some("web".to_owned());
    r.allowed_headers = strings(&["x-amz-*", "Content-Type"]);
    r.expose_headers = strings(&["ETag", "x-amz-version-id"]);
    r.max_age_seconds = Some(3000);
    let rules = CorsRules { rules: vec![r, rule(&[""], &["GET"])] };
    assert_eq!(CorsRules::from_dto(&rules.to_dto()).ok(), Some(rules.clone()));
    assert_eq!(CorsRules::from_json(&rules.to_json()).ok(), Some(rules.clone()));
    let dto = rules.to_dto();
    assert_eq!(dto.cors_rules[1].allowed_headers, None, "unset members stay unset");
    assert_eq!(dto.cors_rules[1].expose_headers, None);
}

#[test]
fn the_stored_form_is_versioned_json() {
    let rules = CorsRules { rules: vec![rule(&["*"], &["GET"])] };
    // Pinned: a change here breaks configurations already stored in a running cluster.
    assert_eq!(
        rules.to_json(),
        r#"{"v":"1","rules":[{"id":null,"allowed_origins":["*"],"allowed_methods":["GET"],"allowed_headers":[],"expose_headers":[],"max_age_seconds":null}]}"#
    );
    for bad in [r#"{"v":"2","rules":[]}"#, r#"{"rules":[]}"#, ""] {
        assert_eq!(CorsRules::from_json(bad).err().map(|e| e.code().clone()), Some(S3ErrorCode::InternalError));
    }
}

#[test]
fn missing_rules_origins_or_methods_are_malformed_xml() {
    assert_eq!(refusal(vec![]).0, S3ErrorCode::MalformedXML);
    assert_eq!(refusal(vec![rule(&[], &["GET"])]).0, S3ErrorCode::MalformedXML);
    assert_eq!(refusal(vec![rule(&["*"], &[])]).0, S3ErrorCode::MalformedXML);
}

#[test]
fn more_than_max_rules_or_too_large_a_document_is_refused() {
    assert!(put(vec![rule(&["*"], &["GET"]); MAX_RULES]).is_ok());
    assert_eq!(refusal(vec![rule(&["*"], &["GET"]); MAX_RULES + 1]).0, S3ErrorCode::InvalidRequest);
    let huge = "o".repeat(MAX_STORED_BYTES);
    assert_eq!(refusal(vec![rule(&[&huge], &["GET"])]).0, S3ErrorCode::InvalidRequest);
}

#[test]
fn unsupported_methods_are_refused_naming_them() {
    for m in ["OPTIONS", "get", "PATCH", ""] {
        let (code, message) = refusal(vec![rule(&["*"], &["GET", m])]);
        assert_eq!(code, S3ErrorCode::InvalidRequest);
        assert_eq!(message, format!("Found unsupported HTTP method in CORS config. Unsupported method is {m}"));
    }
}

#[test]
fn two_wildcards_in_an_origin_or_allowed_header_are_refused() {
    let (code, message) = refusal(vec![rule(&["*example*.com"], &["GET"])]);
    assert_eq!(code, S3ErrorCode::InvalidRequest);
    assert_eq!(message, "AllowedOrigin \"*example*.com\" can not have more than one wildcard.");
    let mut r = rule(&["*"], &["GET"]);
    r.allowed_headers = strings(&["x-*-*"]);
    assert_eq!(refusal(vec![r]).1, "AllowedHeader \"x-*-*\" can not have more than one wildcard.");
}

#[test]
fn expose_headers_with_a_wildcard_or_unsendable_bytes_are_refused() {
    for bad in ["*", "x-amz-*", "a\r\nSet-Cookie: x", "a\u{7f}b"] {
        let mut r = rule(&["*"], &["GET"]);
        r.expose_headers = strings(&["ETag", bad]);
        assert_eq!(refusal(vec![r]).0, S3ErrorCode::InvalidRequest, "{bad:?}");
    }
    let mut r = rule(&["*"], &["GET"]);
    r.expose_headers = strings(&["GET", "PUT"]);
    assert!(put(vec![r]).is_ok(), "S3 does not check expose headers as header names");
}

#[test]
fn an_id_longer_than_255_characters_is_refused() {
    let mut r = rule(&["*"], &["GET"]);
    r.id = Some("é".repeat(255));
    assert!(put(vec![r.clone()]).is_ok());
    r.id = Some("é".repeat(256));
    assert_eq!(refusal(vec![r]).0, S3ErrorCode::InvalidArgument);
}

#[test]
fn one_wildcard_matches_any_run_including_the_empty_one() {
    let rules =
        CorsRules { rules: vec![rule(&["https://*.example.com", "start*end", "prefix*", "*suffix"], &["GET"])] };
    for origin in ["https://a.example.com", "https://a.b.example.com", "startend", "start12end", "prefix", "x.suffix"] {
        assert!(rules.preflight(origin, "GET", "").is_some(), "{origin}");
    }
    for origin in [
        "https://example.com",
        "http://a.example.com",
        "https://a.example.com/",
        "https://a.example.com.evil",
        "0startend",
        "bla.prefix",
        "x.suffix.get",
        "HTTPS://A.EXAMPLE.COM",
    ] {
        assert!(rules.preflight(origin, "GET", "").is_none(), "{origin}");
    }
}

#[test]
fn an_exact_origin_matches_only_itself_case_sensitively() {
    let rules = CorsRules { rules: vec![rule(&["https://localhost:4200"], &["GET"])] };
    assert!(rules.preflight("https://localhost:4200", "GET", "").is_some());
    assert!(rules.preflight("http://localhost:4200", "GET", "").is_none());
    assert!(rules.preflight("https://Localhost:4200", "GET", "").is_none());
}

#[test]
fn the_requested_method_must_be_allowed_exactly() {
    let rules = CorsRules { rules: vec![rule(&["*"], &["GET", "PUT"])] };
    assert!(rules.preflight("https://a.com", "PUT", "").is_some());
    assert!(rules.preflight("https://a.com", "DELETE", "").is_none());
    assert!(rules.preflight("https://a.com", "put", "").is_none());
    assert!(rules.response_headers("https://a.com", "DELETE").is_none());
}

#[test]
fn requested_headers_match_case_insensitively_and_come_back_lowercase_in_order() {
    let mut r = rule(&["*"], &["PUT"]);
    r.allowed_headers = strings(&["x-amz-*", "Content-Type"]);
    let rules = CorsRules { rules: vec![r] };
    let h = rules.preflight("https://a.com", "PUT", "X-Amz-Meta-A,content-TYPE , x-amz-date");
    assert_eq!(
        h.as_ref().and_then(|h| get(h, header::ACCESS_CONTROL_ALLOW_HEADERS)),
        Some("x-amz-meta-a, content-type, x-amz-date")
    );
    assert!(rules.preflight("https://a.com", "PUT", "x-amz-date, authorization").is_none());
    assert!(rules
        .preflight("https://a.com", "PUT", ", ,")
        .is_some_and(|h| !h.contains_key(header::ACCESS_CONTROL_ALLOW_HEADERS)));
}

#[test]
fn a_rule_without_allowed_headers_allows_no_requested_header() {
    let rules = CorsRules { rules: vec![rule(&["*"], &["GET"])] };
    assert!(rules.preflight("https://a.com", "GET", "").is_some());
    assert!(rules.preflight("https://a.com", "GET", "x-amz-meta-header2").is_none());
}

#[test]
fn the_first_matching_rule_answers_alone() {
    let mut narrow = rule(&["https://app.example.com"], &["GET"]);
    narrow.max_age_seconds = Some(10);
    narrow.allowed_headers = strings(&["x-a"]);
    let mut broad = rule(&["*"], &["GET", "PUT"]);
    broad.allowed_headers = strings(&["*"]);
    broad.max_age_seconds = Some(99);
    let rules = CorsRules { rules: vec![narrow, broad] };

    let h = rules.preflight("https://app.example.com", "GET", "x-a");
    assert_eq!(h.as_ref().and_then(|h| get(h, header::ACCESS_CONTROL_MAX_AGE)), Some("10"));
    assert_eq!(h.as_ref().and_then(|h| get(h, header::ACCESS_CONTROL_ALLOW_METHODS)), Some("GET"));
    // The narrow rule does not allow x-b, so the broad one answers.
    let h = rules.preflight("https://app.example.com", "GET", "x-b");
    assert_eq!(h.as_ref().and_then(|h| get(h, header::ACCESS_CONTROL_MAX_AGE)), Some("99"));
    assert_eq!(h.as_ref().and_then(|h| get(h, header::ACCESS_CONTROL_ALLOW_ORIGIN)), Some("*"));
    let h = rules.response_headers("https://app.example.com", "PUT");
    assert_eq!(h.as_ref().and_then(|h| get(h, header::ACCESS_CONTROL_ALLOW_METHODS)), Some("GET, PUT"));
}

#[test]
fn an_echoed_origin_allows_credentials_and_a_star_origin_does_not() {
    let rules = CorsRules { rules: vec![rule(&["https://*.example.com"], &["GET", "PUT"]), rule(&["*"], &["GET"])] };
    let echoed = rules.preflight("https://a.example.com", "PUT", "");
    let echoed = echoed.as_ref();
    assert_eq!(echoed.and_then(|h| get(h, header::ACCESS_CONTROL_ALLOW_ORIGIN)), Some("https://a.example.com"));
    assert_eq!(echoed.and_then(|h| get(h, header::ACCESS_CONTROL_ALLOW_CREDENTIALS)), Some("true"));
    assert_eq!(echoed.and_then(|h| get(h, header::ACCESS_CONTROL_ALLOW_METHODS)), Some("GET, PUT"));
    assert_eq!(echoed.and_then(|h| get(h, header::VARY)), Some(VARY));
    assert_eq!(echoed.map(|h| h.contains_key(header::ACCESS_CONTROL_MAX_AGE)), Some(false));
    assert_eq!(echoed.map(|h| h.contains_key(header::ACCESS_CONTROL_EXPOSE_HEADERS)), Some(false));

    let star = rules.response_headers("http://random:1234", "GET");
    let star = star.as_ref();
    assert_eq!(star.and_then(|h| get(h, header::ACCESS_CONTROL_ALLOW_ORIGIN)), Some("*"));
    assert_eq!(star.map(|h| h.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)), Some(false));
    assert_eq!(star.and_then(|h| get(h, header::VARY)), Some(VARY));
}

#[test]
fn the_first_matching_origin_pattern_decides_star_or_echo() {
    let rules = CorsRules { rules: vec![rule(&["https://a.com", "*"], &["GET"])] };
    let get_origin = |o: &str| {
        rules.response_headers(o, "GET").and_then(|h| get(&h, header::ACCESS_CONTROL_ALLOW_ORIGIN).map(str::to_owned))
    };
    assert_eq!(get_origin("https://a.com").as_deref(), Some("https://a.com"));
    assert_eq!(get_origin("https://b.com").as_deref(), Some("*"));
}

#[test]
fn expose_headers_and_max_age_are_sent_when_set() {
    let mut r = rule(&["*"], &["GET"]);
    r.expose_headers = strings(&["ETag", "x-amz-request-id"]);
    r.max_age_seconds = Some(3000);
    let rules = CorsRules { rules: vec![r] };
    for h in [rules.preflight("https://a.com", "GET", ""), rules.response_headers("https://a.com", "GET")] {
        let h = h.as_ref();
        assert_eq!(h.and_then(|h| get(h, header::ACCESS_CONTROL_EXPOSE_HEADERS)), Some("ETag, x-amz-request-id"));
        assert_eq!(h.and_then(|h| get(h, header::ACCESS_CONTROL_MAX_AGE)), Some("3000"));
    }
    let mut negative = rule(&["*"], &["GET"]);
    negative.max_age_seconds = Some(-1);
    let h = CorsRules { rules: vec![negative] }.response_headers("https://a.com", "GET");
    assert_eq!(h.map(|h| h.contains_key(header::ACCESS_CONTROL_MAX_AGE)), Some(false));
}

#[test]
fn actual_responses_carry_no_allow_headers() {
    let mut r = rule(&["*"], &["GET"]);
    r.allowed_headers = strings(&["*"]);
    let h = CorsRules { rules: vec![r] }.response_headers("https://a.com", "GET");
    assert_eq!(h.map(|h| h.contains_key(header::ACCESS_CONTROL_ALLOW_HEADERS)), Some(false));
}

#[test]
fn hostile_origins_and_header_lists_match_nothing_without_panicking() {
    let mut r = rule(&["*", "https://*"], &["GET"]);
    r.allowed_headers = strings(&["*"]);
    let rules = CorsRules { rules: vec![r] };
    let echoing = CorsRules { rules: vec![rule(&["https://*"], &["GET"])] };
    for origin in ["https://a.com\r\nSet-Cookie: x=1", "https://a\0.com", "https://a\u{7f}.com"] {
        assert!(echoing.preflight(origin, "GET", "").is_none(), "{origin:?}");
        assert!(echoing.response_headers(origin, "GET").is_none(), "{origin:?}");
    }
    // A `*` rule sends `*`, never the hostile origin.
    let star = rules.response_headers("https://a.com\r\nx: y", "GET");
    assert_eq!(
        star.and_then(|h| get(&h, header::ACCESS_CONTROL_ALLOW_ORIGIN).map(str::to_owned)).as_deref(),
        Some("*")
    );

    let long_origin = format!("https://{}.com", "a".repeat(MAX_REQUEST_VALUE));
    assert!(rules.preflight(&long_origin, "GET", "").is_none());
    assert!(rules.response_headers(&long_origin, "GET").is_none());
    let long_list = vec!["x-a"; MAX_REQUESTED_HEADERS + 1].join(",");
    assert!(rules.preflight("https://a.com", "GET", &long_list).is_none());
    let most = vec!["x-a"; MAX_REQUESTED_HEADERS].join(",");
    assert!(rules.preflight("https://a.com", "GET", &most).is_some());
    assert!(rules.preflight("https://a.com", "GET", &"x".repeat(MAX_REQUEST_VALUE + 1)).is_none());
    for bad in ["x-a\r\nSet-Cookie: y", "x a", "x-a;b", "ü"] {
        assert!(rules.preflight("https://a.com", "GET", bad).is_none(), "{bad:?}");
    }
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::Request<()> {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).expect("a request")
}

fn answer(headers: &[(&str, &str)], exists: bool, stored: Option<&str>) -> Result<HeaderMap, (u16, String)> {
    let req = request("OPTIONS", "/b/k", headers);
    Preflight::of(req.headers()).and_then(|p| p.answer(exists, stored)).map_err(|e| {
        let status = e.status_code().map_or(0, |s| s.as_u16());
        (status, format!("{}: {}", e.code().as_str(), e.message().unwrap_or_default()))
    })
}

#[test]
fn a_preflight_is_refused_in_the_order_s3_checks_it() {
    let mut r = rule(&["https://a.com"], &["PUT"]);
    r.allowed_headers = strings(&["content-type"]);
    let stored = CorsRules { rules: vec![r] }.to_json();
    let stored = Some(stored.as_str());
    let (origin, put) = (("origin", "https://a.com"), ("access-control-request-method", "PUT"));
    let refusal = |h: &[(&str, &str)], exists, stored| answer(h, exists, stored).expect_err("refused");

    let no_origin = refusal(&[put], false, None);
    assert_eq!(no_origin, (400, "BadRequest: Insufficient information. Origin request header needed.".into()));
    assert_eq!(refusal(&[origin, put], false, None), (403, "AccessForbidden: CORSResponse: Bucket not found".into()));
    let not_enabled = refusal(&[origin], true, None);
    assert_eq!(not_enabled, (403, "AccessForbidden: CORSResponse: CORS is not enabled for this bucket.".into()));
    let no_method = refusal(&[origin], true, stored);
    assert_eq!(no_method, (400, "BadRequest: Invalid Access-Control-Request-Method: null".into()));
    let (status, message) = refusal(&[origin, ("access-control-request-method", "PATCH")], true, stored);
    assert_eq!((status, message.as_str()), (400, "BadRequest: Invalid Access-Control-Request-Method: PATCH"));
    for asked in [
        [("origin", "https://b.com"), put, ("x", "")],
        [origin, ("access-control-request-method", "GET"), ("x", "")],
        [origin, put, ("access-control-request-headers", "x-amz-meta-a")],
    ] {
        let (status, message) = refusal(&asked, true, stored);
        assert_eq!(status, 403, "{asked:?}");
        assert!(message.starts_with("AccessForbidden: CORSResponse: This CORS request is not allowed."), "{message}");
    }
    let h = answer(&[origin, put, ("access-control-request-headers", "Content-Type")], true, stored).expect("a match");
    assert_eq!(get(&h, header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("https://a.com"));
    assert_eq!(get(&h, header::ACCESS_CONTROL_ALLOW_METHODS), Some("PUT"));
    assert_eq!(get(&h, header::ACCESS_CONTROL_ALLOW_HEADERS), Some("content-type"));
}

#[test]
fn a_long_invalid_method_is_echoed_cut_short() {
    let long = "X".repeat(1000);
    let stored = CorsRules { rules: vec![rule(&["*"], &["GET"])] }.to_json();
    let asked = [("origin", "https://a.com"), ("access-control-request-method", long.as_str())];
    let (_, message) = answer(&asked, true, Some(&stored)).expect_err("refused");
    assert!(message.len() < 200, "{message}");
}

#[test]
fn only_paths_naming_a_bucket_name_one() {
    assert_eq!(path_bucket("/b"), Some("b".to_owned()));
    assert_eq!(path_bucket("/b/"), Some("b".to_owned()));
    assert_eq!(path_bucket("/b/some/key"), Some("b".to_owned()));
    assert_eq!(path_bucket("/%62/k"), Some("b".to_owned()), "percent-decoded");
    for none in ["/", "", "b/k", "//k", "/%00/k", "/%FF/k"] {
        assert_eq!(path_bucket(none), None, "{none:?}");
    }
}

#[test]
fn an_actual_request_is_matched_by_its_method_or_the_method_it_says_it_will_use() {
    let rules = CorsRules { rules: vec![rule(&["https://a.com"], &["GET"])] };
    let origin = ("origin", "https://a.com");
    let headers = |method, h: &[(&str, &str)]| {
        CrossOrigin::of(&request(method, "/b/k", h)).expect("a cross-origin request").headers(&rules)
    };
    let h = headers("GET", &[origin]).expect("a match");
    assert_eq!(get(&h, header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("https://a.com"));
    assert_eq!(get(&h, header::ACCESS_CONTROL_ALLOW_CREDENTIALS), Some("true"));
    assert!(headers("PUT", &[origin]).is_none(), "PUT is not allowed");
    assert!(headers("GET", &[origin, ("access-control-request-method", "PUT")]).is_none(), "as S3: the asked one");
    assert!(headers("PUT", &[origin, ("access-control-request-method", "GET")]).is_some());
    assert!(headers("GET", &[origin, ("access-control-request-headers", "x-a")]).is_none(), "headers checked");
    assert!(headers("GET", &[("origin", "https://b.com")]).is_none());
}

#[test]
fn a_request_without_an_origin_or_a_bucket_is_no_cross_origin_request() {
    assert!(CrossOrigin::of(&request("GET", "/b/k", &[])).is_none());
    assert!(CrossOrigin::of(&request("GET", "/b/k", &[("referer", "https://a.com/")])).is_none());
    assert!(CrossOrigin::of(&request("GET", "/", &[("origin", "https://a.com")])).is_none(), "ListBuckets");
    let asked = CrossOrigin::of(&request("POST", "/b", &[("origin", "https://a.com")]));
    assert_eq!(asked.map(|a| a.bucket), Some("b".to_owned()));
}

#[test]
fn wildcard_matching_is_anchored_at_both_ends() {
    let eq: fn(&[u8], &[u8]) -> bool = <[u8]>::eq;
    assert!(wildcard_match("*", "", eq));
    assert!(wildcard_match("a*a", "aa", eq));
    assert!(!wildcard_match("a*a", "a", eq), "prefix and suffix may not overlap");
    assert!(!wildcard_match("abc", "abcd", eq));
    assert!(wildcard_match("X-AMZ-*", "x-amz-date", <[u8]>::eq_ignore_ascii_case));
}
