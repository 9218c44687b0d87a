use proptest::prelude::*;
use serde_json::json;
use twinbay_proto::model::Keyed;

use super::*;

#[test]
fn the_caddyfile_adapters_nested_subroutes_give_host_and_path() {
    // `caddy adapt` of two sites, one with `handle_path /api/*`.
    let config: Value = serde_json::from_str(include_str!("testdata/caddy_config.json")).unwrap();
    let found = routes(&config, "host").unwrap();
    let got: Vec<(&str, &str, &str, bool)> = found
        .iter()
        .map(|f| {
            let r = &f.route;
            (r.host.as_str(), r.path.as_str(), r.upstream.as_str(), r.tls)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a.localhost", "/", "127.0.0.1:18090", false),
            ("b.localhost", "/api/*", "127.0.0.1:18091", false),
            ("b.localhost", "/", "localhost:18092", false),
        ]
    );
    assert_eq!(found[2].dial.as_deref(), Some("localhost:18092"));
    assert!(
        found
            .iter()
            .all(|f| f.route.provider == ProxyProvider::Caddy)
    );
}

#[test]
fn tls_follows_policies_and_automatic_https() {
    let site = |server: Value| {
        let config = json!({"apps": {"http": {"servers": {"s": server}}}});
        routes(&config, "host").unwrap()[0].route.tls
    };
    let proxy = json!([{"match": [{"host": ["x.example"]}],
        "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "a:1"}]}]}]);
    assert!(site(json!({"listen": [":443"], "routes": proxy})));
    assert!(!site(json!({"listen": [":80"], "routes": proxy})));
    assert!(site(
        json!({"listen": [":80"], "routes": proxy, "tls_connection_policies": [{}]})
    ));
    assert!(!site(
        json!({"listen": [":443"], "routes": proxy, "automatic_https": {"disable": true}})
    ));
    assert!(!site(
        json!({"listen": [":443"], "routes": proxy, "automatic_https": {"skip": ["x.example"]}})
    ));
    // No host matcher: no certificate to get.
    let any = json!([{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "a:1"}]}]}]);
    assert!(!site(json!({"listen": [":443"], "routes": any})));
}

#[test]
fn several_matcher_sets_and_hosts_each_give_a_route() {
    let config = json!({"apps": {"http": {"servers": {"s": {"listen": [":80"], "routes": [
        {"match": [{"host": ["a", "b"]}, {"host": ["c"], "path": ["/x*"]}],
         "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "u:1"}, {"dial": "u:2"}]}]}
    ]}}}}});
    let found = routes(&config, "caddy").unwrap();
    let keys: Vec<String> = found.iter().map(|f| f.route.key()).collect();
    assert_eq!(
        keys,
        ["caddy/caddy/a/", "caddy/caddy/b/", "caddy/caddy/c/x*"]
    );
    assert_eq!(found[0].route.upstream, "u:1, u:2");
}

#[test]
fn unexpected_shapes_are_reasons() {
    for bad in [
        json!({"apps": {"http": {"servers": []}}}),
        json!({"apps": {"http": {"servers": {"s": {"routes": {}}}}}}),
        json!({"apps": {"http": {"servers": {"s": {"routes": [{"match": [{"host": "a"}], "handle": []}]}}}}}),
        json!({"apps": {"http": {"servers": {"s": {"listen": 443}}}}}),
        json!({"apps": {"http": {"servers": {"s": {"routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": 5}]}]}}}}}),
    ] {
        assert!(routes(&bad, "host").is_err(), "{bad}");
    }
    assert!(routes(&Value::Null, "host").unwrap().is_empty());
    assert!(routes(&json!({"apps": {}}), "host").unwrap().is_empty());
}

#[test]
fn deep_subroutes_are_refused_not_overflowed() {
    let mut routes_v =
        json!([{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "a:1"}]}]}]);
    for _ in 0..100 {
        routes_v = json!([{"handle": [{"handler": "subroute", "routes": routes_v}]}]);
    }
    let config = json!({"apps": {"http": {"servers": {"s": {"routes": routes_v}}}}});
    assert!(routes(&config, "host").is_err());
}

/// Arbitrary JSON, biased towards the keys the walker reads.
fn arb_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("apps".to_string()),
        Just("http".to_string()),
        Just("servers".to_string()),
        Just("routes".to_string()),
        Just("match".to_string()),
        Just("host".to_string()),
        Just("path".to_string()),
        Just("handle".to_string()),
        Just("handler".to_string()),
        Just("upstreams".to_string()),
        Just("dial".to_string()),
        Just("listen".to_string()),
        Just("http_port".to_string()),
        Just("automatic_https".to_string()),
        "[a-z_]{1,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just("subroute".to_string()),
            Just("reverse_proxy".to_string()),
            Just(":443".to_string()),
            ".{0,8}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn the_walker_never_panics(v in arb_json()) {
        let _ = routes(&v, "host");
        let wrapped = json!({"apps": {"http": {"servers": {"s": v.clone()}}}});
        let _ = routes(&wrapped, "host");
        let wrapped = json!({"apps": {"http": {"servers": {"s": {"routes": [v]}}}}});
        let _ = routes(&wrapped, "host");
    }

    #[test]
    fn every_generated_proxy_is_found(
        hosts in prop::collection::vec("[a-z]{1,8}\\.example", 1..4),
        path in "/[a-z]{0,6}",
        port in 1u16..,
        nest in 0usize..5,
    ) {
        let mut inner = json!([{"match": [{"path": [path.clone()]}],
            "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": format!("up:{port}")}]}]}]);
        for _ in 0..nest {
            inner = json!([{"handle": [{"handler": "subroute", "routes": inner}]}]);
        }
        let config = json!({"apps": {"http": {"servers": {"s": {"listen": [":443"], "routes": [
            {"match": [{"host": hosts.clone()}], "handle": [{"handler": "subroute", "routes": inner}]}
        ]}}}}});
        let found = routes(&config, "host").unwrap();
        prop_assert_eq!(found.len(), hosts.len());
        for (f, h) in found.iter().zip(&hosts) {
            prop_assert_eq!(&f.route.host, h);
            prop_assert_eq!(&f.route.path, &path);
            prop_assert!(f.route.tls);
            let dial = format!("up:{port}");
            prop_assert_eq!(f.dial.as_deref(), Some(dial.as_str()));
        }
    }
}
