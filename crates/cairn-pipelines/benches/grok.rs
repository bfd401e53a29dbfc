//! Speed of a realistic grok parser (3 rules, nginx access lines), measured against a
//! reference from the same run: one hand-written anchored regex with captures over the same
//! line. `cargo bench -p cairn-pipelines --bench grok`.

use std::hint::black_box;
use std::time::Instant;

use cairn_pipelines::grok::Grok;

// Datadog's nginx rules, as the tests read them.
const RULES: &str = include_str!("../tests/data/nginx.match_rules");
const HELPERS: &str = include_str!("../tests/data/nginx.support_rules");

const COMBINED: &str = r#"93.180.71.3 - - [17/May/2015:08:05:32 +0000] "GET /downloads/product_1 HTTP/1.1" 304 0 "-" "Debian APT-HTTP/1.3 (0.8.16~exp12ubuntu10.21)""#;
const ERROR: &str = "2015/05/17 08:05:32 [error] 1234#0: *1 open() \"/var/www/favicon.ico\" failed (2: No such file or directory)";

fn per_call_ns(iterations: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn main() {
    let grok = Grok::compile(RULES, HELPERS).expect("compiles");
    let (name, attrs) = grok.parse(COMBINED).expect("combined line matches");
    assert_eq!(name, "access.combined");
    assert_eq!(attrs["http"]["status_code"], 304);
    assert_eq!(grok.parse(ERROR).map(|(n, _)| n), Some("error.format"));

    let reference = regex::Regex::new(
        r#"\A(\S+) (\S+) (\S+) \[([^\]]+)\] "(?:(\w+) |)(\S+)(?: HTTP/(\d+\.\d+))?" (\d+) (?:(\d+)|-) "(\S+)" "([^"]*)"\z"#,
    )
    .expect("reference regex");
    assert!(reference.is_match(COMBINED));

    let n = 200_000;
    for _ in 0..3 {
        let reference_ns = per_call_ns(n, || {
            black_box(reference.captures(black_box(COMBINED)).map(|c| c.len()));
        });
        let first_rule_ns = per_call_ns(n, || {
            black_box(grok.parse(black_box(COMBINED)).map(|(_, a)| a.len()));
        });
        let third_rule_ns = per_call_ns(n, || {
            black_box(grok.parse(black_box(ERROR)).map(|(_, a)| a.len()));
        });
        println!(
            "reference regex captures {:.2} µs | grok, 1st rule matches (11 attributes) {:.2} µs | grok, 3rd rule matches {:.2} µs",
            reference_ns / 1000.0,
            first_rule_ns / 1000.0,
            third_rule_ns / 1000.0
        );
    }
}
