use std::path::PathBuf;

use proptest::prelude::*;

use super::*;

fn words(text: &str) -> Vec<Token> {
    tokenize(text)
        .unwrap()
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

fn w(s: &str) -> Token {
    Token::Word(s.into())
}

#[test]
fn tokens_quotes_comments_and_variables() {
    assert_eq!(
        words("set $a \"x y\"; # comment ; {\nlocation ~ ^/(a|b)$ { return 200 '\\'q\\''; }"),
        [
            w("set"),
            w("$a"),
            w("x y"),
            Token::Semicolon,
            w("location"),
            w("~"),
            w("^/(a|b)$"),
            Token::Open,
            w("return"),
            w("200"),
            w("'q'"),
            Token::Semicolon,
            Token::Close,
        ]
    );
    assert_eq!(
        words("proxy_pass http://${up}:80;")[1],
        w("http://${up}:80")
    );
    assert_eq!(words("a b#c;"), [w("a"), w("b#c"), Token::Semicolon]);
    let lines: Vec<usize> = tokenize("a;\n\n\"x\ny\";\nb;")
        .unwrap()
        .iter()
        .map(|t| t.1)
        .collect();
    assert_eq!(lines, [1, 1, 3, 4, 5, 5]);
}

#[test]
fn malformed_text_is_an_error_with_a_line() {
    for (text, needle) in [
        ("server {\n listen 80;\n", "\"}\" is missing"),
        ("a;\n}\n", "line 2: unexpected \"}\""),
        ("listen 80 }", "not ended by \";\""),
        ("return 'x;", "unterminated quote"),
        ("listen 80", "not ended by \";\""),
        ("; a;", "unexpected \";\""),
        ("{ }", "unexpected \"{\""),
    ] {
        let e = parse(text).unwrap_err();
        assert!(e.contains(needle), "{text:?}: {e}");
    }
    let deep = "a{".repeat(200) + &"}".repeat(200);
    assert!(parse(&deep).unwrap_err().contains("nested deeper"));
}

const SITE: &str = r#"
http {
    upstream backend {
        server 127.0.0.1:9001 weight=5;
        server 127.0.0.1:9002;
    }
    server {
        listen 80;
        server_name a.example www.a.example;
        location / { proxy_pass http://backend; }
        location = /exact { proxy_pass http://127.0.0.1:9003/x; }
        location ~* \.php$ { proxy_pass http://php:9000; }
        location /static/ { root /srv; }
    }
    server {
        listen 443 ssl http2;
        server_name b.example;
        set $up app:8080;
        location /api/ {
            set $ver v2;
            proxy_pass http://$up/$ver/;
            location /api/inner { proxy_pass https://inner.example; }
        }
        location /unset { proxy_pass http://$nowhere; }
    }
    server {
        server_name _;
        ssl_certificate /etc/ssl/x.pem;
        location / { proxy_pass http://unix:/run/app.sock:/; }
    }
}
"#;

#[test]
fn servers_and_locations_give_routes() {
    let found = routes(&parse(SITE).unwrap());
    let got: Vec<(String, String, String, bool, Option<String>)> = found
        .iter()
        .map(|f| {
            let r = &f.route;
            (
                r.host.clone(),
                r.path.clone(),
                r.upstream.clone(),
                r.tls,
                f.dial.clone(),
            )
        })
        .collect();
    let row = |h: &str, p: &str, u: &str, tls: bool, d: Option<&str>| {
        (
            h.to_string(),
            p.to_string(),
            u.to_string(),
            tls,
            d.map(str::to_string),
        )
    };
    assert_eq!(
        got,
        [
            row(
                "a.example",
                "/",
                "http://backend",
                false,
                Some("127.0.0.1:9001")
            ),
            row(
                "www.a.example",
                "/",
                "http://backend",
                false,
                Some("127.0.0.1:9001")
            ),
            row(
                "a.example",
                "= /exact",
                "http://127.0.0.1:9003/x",
                false,
                Some("127.0.0.1:9003")
            ),
            row(
                "www.a.example",
                "= /exact",
                "http://127.0.0.1:9003/x",
                false,
                Some("127.0.0.1:9003")
            ),
            row(
                "a.example",
                "~* \\.php$",
                "http://php:9000",
                false,
                Some("php:9000")
            ),
            row(
                "www.a.example",
                "~* \\.php$",
                "http://php:9000",
                false,
                Some("php:9000")
            ),
            row(
                "b.example",
                "/api/",
                "http://app:8080/v2/",
                true,
                Some("app:8080")
            ),
            row(
                "b.example",
                "/api/inner",
                "https://inner.example",
                true,
                Some("inner.example:443")
            ),
            row("b.example", "/unset", "http://$nowhere", true, None),
            row("", "/", "http://unix:/run/app.sock:/", true, None),
        ]
    );
    assert!(found.iter().all(|f| f.route.instance == "host"));
}

#[test]
fn substitution_knows_both_spellings_and_leaves_unknowns() {
    let vars: HashMap<String, String> = [("a".to_string(), "1".to_string())].into_iter().collect();
    assert_eq!(substitute("x$a/${a}y$b${c}$", &vars), "x1/1y$b${c}$");
    assert_eq!(substitute("${a", &vars), "${a");
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("twinbay-nginx-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("sites")).unwrap();
    d
}

#[test]
fn includes_follow_globs_relative_to_the_config_dir() {
    let d = tmp("include");
    std::fs::write(
        d.join("nginx.conf"),
        "events {}\nhttp {\n include mime.types;\n include sites/*.conf;\n include missing.conf;\n}\n",
    )
    .unwrap();
    std::fs::write(d.join("mime.types"), "types { text/html html; }").unwrap();
    std::fs::write(
        d.join("sites/a.conf"),
        "server { server_name a; location / { proxy_pass http://127.0.0.1:1; } }",
    )
    .unwrap();
    std::fs::write(
        d.join("sites/b.conf"),
        "server { server_name b; location / {",
    )
    .unwrap();
    std::fs::write(d.join("sites/ignored.txt"), "garbage {").unwrap();
    let loaded = load(&d.join("nginx.conf"));
    let found = routes(&loaded.directives);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].route.host, "a");
    assert_eq!(loaded.dirs, [d.join("sites")]);
    assert!(loaded.files.contains(&d.join("sites/b.conf")));
    assert_eq!(loaded.problems.len(), 2, "{:?}", loaded.problems);
    assert!(loaded.problems[0].contains("b.conf: unexpected end of file"));
    assert!(loaded.problems[1].contains("missing.conf: no such file"));
}

#[test]
fn an_include_loop_stops() {
    let d = tmp("loop");
    std::fs::write(d.join("nginx.conf"), "include nginx.conf;").unwrap();
    let loaded = load(&d.join("nginx.conf"));
    assert!(
        loaded
            .problems
            .iter()
            .any(|p| p.contains("nested too deep"))
    );
}

/// A generated configuration and the routes it must give.
fn arb_site() -> impl Strategy<Value = (String, Vec<(String, String, u16)>)> {
    let name = "[a-z]{1,10}(\\.[a-z]{2,5})?";
    let path = "/[a-z0-9_/.-]{0,12}";
    prop::collection::vec((name, prop::collection::vec((path, 1u16..), 1..4)), 1..4).prop_map(
        |servers| {
            let mut text = String::from("# generated\nhttp {\n");
            let mut want = Vec::new();
            for (i, (name, locations)) in servers.iter().enumerate() {
                text.push_str(&format!("  server {{\n    server_name \"{name}\";\n"));
                text.push_str(&format!("    set $p{i} {};\n", locations[0].1));
                for (j, (path, port)) in locations.iter().enumerate() {
                    // Mix literal ports and the server's variable.
                    let upstream = match j {
                        0 => format!("http://127.0.0.1:$p{i}"),
                        _ => format!("'http://127.0.0.1:{port}'"),
                    };
                    text.push_str(&format!(
                        "    location {path} {{ # {path}\n      proxy_pass {upstream};\n    }}\n"
                    ));
                    want.push((name.clone(), path.clone(), *port));
                }
                text.push_str("  }\n");
            }
            text.push_str("}\n");
            (text, want)
        },
    )
}

proptest! {
    #[test]
    fn the_tokenizer_and_parser_never_panic(text in ".{0,400}") {
        let _ = tokenize(&text);
        if let Ok(d) = parse(&text) {
            let _ = routes(&d);
        }
    }

    #[test]
    fn syntax_soup_never_panics(text in "[a-z ;{}\"'#$\\\\\n]{0,300}") {
        if let Ok(d) = parse(&text) {
            let _ = routes(&d);
        }
    }

    #[test]
    fn generated_sites_give_their_routes((text, want) in arb_site()) {
        let found = routes(&parse(&text).unwrap());
        let got: Vec<(String, String, u16)> = found
            .iter()
            .map(|f| {
                let port = f.dial.as_deref().and_then(|d| d.rsplit_once(':')?.1.parse().ok());
                (f.route.host.clone(), f.route.path.clone(), port.unwrap_or(0))
            })
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn quoting_a_word_keeps_it(word in "[^\"\\\\]{0,20}") {
        let text = format!("a \"{word}\";");
        prop_assert_eq!(words(&text), vec![w("a"), w(&word), Token::Semicolon]);
    }
}

/// Writes directives back as nginx text, every word quoted.
fn render(directives: &[Directive], out: &mut String) {
    for d in directives {
        out.push_str(&quote(&d.name));
        for a in &d.args {
            out.push(' ');
            out.push_str(&quote(a));
        }
        match &d.block {
            None => out.push_str(";\n"),
            Some(b) => {
                out.push_str(" {\n");
                render(b, out);
                out.push_str("}\n");
            }
        }
    }
}

fn quote(word: &str) -> String {
    format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
}

fn arb_tree() -> impl Strategy<Value = Vec<Directive>> {
    let word = "[a-z$_{}#;/ '\"\\\\.-]{1,8}";
    let leaf = (word, prop::collection::vec(word, 0..3)).prop_map(|(name, args)| Directive {
        name,
        args,
        block: None,
        line: 0,
    });
    let one = leaf.prop_recursive(4, 32, 4, move |inner| {
        (
            word,
            prop::collection::vec(word, 0..2),
            prop::collection::vec(inner, 0..4),
        )
            .prop_map(|(name, args, block)| Directive {
                name,
                args,
                block: Some(block),
                line: 0,
            })
    });
    prop::collection::vec(one, 0..5)
}

fn without_lines(mut d: Vec<Directive>) -> Vec<Directive> {
    for x in &mut d {
        x.line = 0;
        if let Some(b) = x.block.take() {
            x.block = Some(without_lines(b));
        }
    }
    d
}

proptest! {
    #[test]
    fn rendered_trees_parse_back_to_themselves(tree in arb_tree()) {
        let mut text = String::new();
        render(&tree, &mut text);
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(without_lines(back), tree);
    }
}
