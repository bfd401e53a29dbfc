//! Datadog's grok parser, case by case: each row is a rule, a sample and the attributes
//! Datadog documents for it (samples written here; numbers checked against the documented
//! epoch values where the docs give one).

use cairn_pipelines::grok::{Grok, GrokError};
use serde_json::{json, Value};

struct Case {
    what: &'static str,
    rules: &'static str,
    helpers: &'static str,
    input: &'static str,
    /// `None`: no rule matches.
    want: Option<(&'static str, Value)>,
}

fn case(what: &'static str, rules: &'static str, input: &'static str, want: Value) -> Case {
    let name = rules.split_whitespace().next().unwrap_or("");
    Case {
        what,
        rules,
        helpers: "",
        input,
        want: Some((name, want)),
    }
}

fn cases() -> Vec<Case> {
    vec![
        // The overview example: word + date.
        case(
            "word and date",
            r#"MyParsingRule %{word:user} connected on %{date("MM/dd/yyyy"):connect_date}"#,
            "john connected on 11/08/2017",
            json!({"user": "john", "connect_date": 1_510_099_200_000i64}),
        ),
        // ---- date matcher, the documented patterns ----
        case("date: time of day only is on 1970-01-01", r#"r %{date("HH:mm:ss"):date}"#, "14:20:15", json!({"date": 51_615_000})),
        case("date: 12-hour clock with AM/PM", r#"r %{date("hh:mm:ss a"):date}"#, "02:20:15 PM", json!({"date": 51_615_000})),
        // ---- date locales: month and day names of the language ----
        case("date: French month in full, Paris time", r#"r %{date("dd MMMM yyyy HH:mm", "Europe/Paris", "fr"):d}"#, "14 juillet 2024 10:30", json!({"d": 1_720_945_800_000i64})),
        case("date: German abbreviation", r#"r %{date("dd. MMM yyyy", "UTC", "de_DE"):d}"#, "03. März 2025", json!({"d": 1_740_960_000_000i64})),
        case("date: Spanish weekday and month, any case", r#"r %{date("EEE, d MMM yyyy", "UTC", "es-ES"):d}"#, "MIÉ, 5 feb 2025", json!({"d": 1_738_713_600_000i64})),
        case("date: an abbreviation's dot before the pattern's own", r#"r %{date("d MMM. yyyy", "UTC", "fr"):d}"#, "2 sept. 2024", json!({"d": 1_725_235_200_000i64})),
        case("date: the abbreviation with its dot", r#"r %{date("d MMM yyyy HH:mm", "UTC", "fr"):d}"#, "1 déc. 2024 22:00", json!({"d": 1_733_090_400_000i64})),
        case(
            "date: weekday and month names",
            r#"r %{date("EEE MMM dd HH:mm:ss yyyy"):date}"#,
            "Thu Jun 16 08:29:03 2016",
            json!({"date": 1_466_065_743_000i64}),
        ),
        case(
            "date: one-digit day with `d`",
            r#"r %{date("EEE MMM d HH:mm:ss yyyy"):date}"#,
            "Tue Nov 1 08:29:03 2016",
            json!({"date": 1_477_988_943_000i64}),
        ),
        case(
            "date: access-log date with offset",
            r#"r %{date("dd/MMM/yyyy:HH:mm:ss Z"):date}"#,
            "06/Mar/2013:01:36:30 +0900",
            json!({"date": 1_362_501_390_000i64}),
        ),
        case(
            "date: ISO 8601 with millis and +0000",
            r#"r %{date("yyyy-MM-dd'T'HH:mm:ss.SSSZ"):date}"#,
            "2016-11-29T16:21:36.431+0000",
            json!({"date": 1_480_436_496_431i64}),
        ),
        case(
            "date: ISO 8601 with ZZ (+00:00)",
            r#"r %{date("yyyy-MM-dd'T'HH:mm:ss.SSSZZ"):date}"#,
            "2016-11-29T16:21:36.431+00:00",
            json!({"date": 1_480_436_496_431i64}),
        ),
        case(
            "date: millis without zone",
            r#"r %{date("dd/MMM/yyyy:HH:mm:ss.SSS"):date}"#,
            "06/Feb/2009:12:14:14.655",
            json!({"date": 1_233_922_454_655i64}),
        ),
        case(
            "date: zone abbreviation with z",
            r#"r %{date("yyyy-MM-dd HH:mm:ss.SSS z"):date}"#,
            "2007-08-31 19:22:22.427 ADT",
            json!({"date": 1_188_598_942_427i64}),
        ),
        case(
            "date: TZ database timezone argument (summer time)",
            r#"r %{date("EEE MMM dd HH:mm:ss yyyy","Europe/Paris"):date}"#,
            "Thu Jun 16 08:29:03 2016",
            json!({"date": 1_466_058_543_000i64}),
        ),
        case(
            "date: UTC+5 timezone argument",
            r#"r %{date("EEE MMM dd HH:mm:ss yyyy","UTC+5"):date}"#,
            "Thu Jun 16 08:29:03 2016",
            json!({"date": 1_466_047_743_000i64}),
        ),
        case(
            "date: bare +3 timezone argument",
            r#"r %{date("EEE MMM dd HH:mm:ss yyyy","+3"):date}"#,
            "Thu Jun 16 08:29:03 2016",
            json!({"date": 1_466_054_943_000i64}),
        ),
        case(
            "date: the offset in the text wins over the argument",
            r#"r %{date("yyyy-MM-dd HH:mm:ss Z","Europe/Paris"):date}"#,
            "2024-01-15 10:00:00 +0000",
            json!({"date": 1_705_312_800_000i64}),
        ),
        case(
            "date: microseconds are a fraction, kept to the millisecond",
            r#"r %{date("yyyy-MM-dd HH:mm:ss.SSSSSS"):date}"#,
            "2016-11-29 16:21:36.431999",
            json!({"date": 1_480_436_496_431i64}),
        ),
        case(
            "date: month and day names are read long or short",
            r#"r %{date("EEE, d MMM yyyy HH:mm:ss"):date}"#,
            "Thursday, 16 June 2016 08:29:03",
            json!({"date": 1_466_065_743_000i64}),
        ),
        case(
            "date: two-digit year, abutting fields",
            r#"r %{date("yyMMddHHmmss"):date}"#,
            "160616082903",
            json!({"date": 1_466_065_743_000i64}),
        ),
        case(
            "date: winter time in a TZ database zone",
            r#"r %{date("yyyy-MM-dd HH:mm:ss","America/New_York"):date}"#,
            "2024-01-15 05:00:00",
            json!({"date": 1_705_312_800_000i64}),
        ),
        case(
            "date: a zone id in the text, at that date's offset",
            r#"r %{date("yyyy-MM-dd HH:mm:ss z"):date}"#,
            "2016-06-16 10:29:03 Europe/Paris",
            json!({"date": 1_466_065_743_000i64}),
        ),
        // ---- regex, notSpace, data ----
        case(
            "regex matcher (the documented user id example)",
            r#"MyParsingRule %{regex("[a-z]*"):user.firstname}_%{regex("[a-zA-Z0-9]*"):user.id} .*"#,
            "john_1a2b3c4 connected on 11/08/2017",
            json!({"user": {"firstname": "john", "id": "1a2b3c4"}}),
        ),
        case(
            "regex matcher with a double-escaped class",
            r#"r %{regex("\\w"):level}%{integer:n}"#,
            "W0424",
            json!({"level": "W", "n": 424}),
        ),
        case("notSpace stops at a space", "r %{notSpace:path} %{data:rest}", "/a/b?c=1 tail text", json!({"path": "/a/b?c=1", "rest": "tail text"})),
        case("data spans newlines", "r start %{data:body}", "start line one\nline two", json!({"body": "line one\nline two"})),
        case("data is lazy: the first of two splits at the first space", "r %{data:a} %{data:b}", "x y z", json!({"a": "x", "b": "y z"})),
        // ---- boolean ----
        case("boolean defaults ignore case", "r ok=%{boolean:ok} ko=%{boolean:ko}", "ok=TRUE ko=false", json!({"ok": true, "ko": false})),
        case("boolean with own patterns", r#"r status %{boolean("up","down"):alive}"#, "status down", json!({"alive": false})),
        case("boolean with own patterns (true)", r#"r status %{boolean("up","down"):alive}"#, "status up", json!({"alive": true})),
        // ---- numbers ----
        case("number parses a double", "r took %{number:duration}s", "took 12.5s", json!({"duration": 12.5})),
        case("number: a whole double shows as an integer", "r took %{number:duration}s", "took -3s", json!({"duration": -3})),
        case("numberStr keeps the text", "r took %{numberStr:duration}s", "took 12.50s", json!({"duration": "12.50"})),
        case("numberExt reads scientific notation", "r v=%{numberExt:v}", "v=1.5e3", json!({"v": 1500})),
        case("numberExtStr keeps scientific text", "r v=%{numberExtStr:v}", "v=2.5E-2", json!({"v": "2.5E-2"})),
        case("integer parses an integer", "r code %{integer:code}", "code -42", json!({"code": -42})),
        case("integerStr keeps the text", "r code %{integerStr:code}", "code 007", json!({"code": "007"})),
        case("integerExt reads 1e3", "r n=%{integerExt:n}", "n=1e3", json!({"n": 1000})),
        case("integerExtStr keeps the text", "r n=%{integerExtStr:n}", "n=4e2", json!({"n": "4e2"})),
        // ---- word and strings ----
        case("word is letters, digits and underscore", "r %{word:a}-%{word:b}", "foo_1-Bar2", json!({"a": "foo_1", "b": "Bar2"})),
        case("doubleQuotedString keeps the quoted text", "r msg=%{doubleQuotedString:msg}", r#"msg="say \"hi\"""#, json!({"msg": r#""say \"hi\"""#})),
        case("singleQuotedString", "r msg=%{singleQuotedString:msg}", "msg='a b'", json!({"msg": "'a b'"})),
        case("quotedString takes either quote", "r %{quotedString:a} %{quotedString:b}", r#""x y" 'z'"#, json!({"a": "\"x y\"", "b": "'z'"})),
        // ---- identifiers and network ----
        case(
            "uuid",
            "r id=%{uuid:id}",
            "id=123e4567-e89b-12d3-a456-426614174000",
            json!({"id": "123e4567-e89b-12d3-a456-426614174000"}),
        ),
        case("mac with colons", "r %{mac:mac}", "00:1A:2b:3C:4d:5E", json!({"mac": "00:1A:2b:3C:4d:5E"})),
        case("mac in Cisco dotted form", "r %{mac:mac}", "001a.2b3c.4d5e", json!({"mac": "001a.2b3c.4d5e"})),
        case("ipv4", "r from %{ipv4:ip}", "from 192.168.0.255", json!({"ip": "192.168.0.255"})),
        case("ipv6 compressed", "r from %{ipv6:ip}", "from 2001:db8::8a2e:370:7334", json!({"ip": "2001:db8::8a2e:370:7334"})),
        case("ip takes v4", "r %{ip:a} %{ip:b}", "10.0.0.1 ::1", json!({"a": "10.0.0.1", "b": "::1"})),
        case("hostname", "r host %{hostname:host}", "host web-01.prod.example.com", json!({"host": "web-01.prod.example.com"})),
        case("ipOrHost with a name and a port", "r %{ipOrHost:h}:%{port:p}", "db.local:5432", json!({"h": "db.local", "p": 5432})),
        case("ipOrHost with an address", "r %{ipOrHost:h}:%{port:p}", "10.1.2.3:80", json!({"h": "10.1.2.3", "p": 80})),
        // ---- json and keyvalue ----
        case(
            "json filter after a text prefix merges into the root",
            r#"parsing_rule %{date("MMM dd HH:mm:ss yyyy"):timestamp} %{word:vm} %{word:app}\[%{number:logger.thread_id}\]: %{notSpace:server} %{data::json}"#,
            r#"Sep 06 09:13:38 2019 vagrant program[123]: server.1 {"method":"GET", "status_code":200, "duration":123456}"#,
            json!({
                "timestamp": 1_567_761_218_000i64, "vm": "vagrant", "app": "program",
                "logger": {"thread_id": 123}, "server": "server.1",
                "method": "GET", "status_code": 200, "duration": 123_456
            }),
        ),
        case("json matcher into an attribute", r#"r payload %{json:p}"#, r#"payload {"a":{"b":[1,2]}}"#, json!({"p": {"a": {"b": [1, 2]}}})),
        case(
            "keyvalue with defaults merges into the root",
            "rule %{data::keyvalue}",
            "user=john id=123 action=click",
            json!({"user": "john", "id": "123", "action": "click"}),
        ),
        case(
            "keyvalue into a named attribute",
            "rule %{data:my_attribute:keyvalue}",
            "user=john action=click",
            json!({"my_attribute": {"user": "john", "action": "click"}}),
        ),
        case(
            "keyvalue with `: ` as the separator",
            r#"rule %{data::keyvalue(": ")}"#,
            "user: john id: 123 action: click",
            json!({"user": "john", "id": "123", "action": "click"}),
        ),
        case(
            "keyvalue with `/` and `:` allowed in values",
            r#"rule %{data::keyvalue("=","/:")}"#,
            "url=https://app.example.com/event/stream user=john",
            json!({"url": "https://app.example.com/event/stream", "user": "john"}),
        ),
        case("keyvalue: <value> quotes", "rule %{data::keyvalue}", "key=<valueStr>", json!({"key": "valueStr"})),
        case("keyvalue: quoted key and value", "rule %{data::keyvalue}", r#""key"="value Str""#, json!({"key": "value Str"})),
        case("keyvalue: allowed char in the key", r#"rule %{data::keyvalue(":", "/")}"#, "/key:/valueStr", json!({"/key": "/valueStr"})),
        case("keyvalue: own quotes {}", r#"rule %{data::keyvalue(":=", "", "{}")}"#, "key:={valueStr}", json!({"key": "valueStr"})),
        case(
            "keyvalue: own quotes replace the defaults",
            r#"rule %{data::keyvalue(":=","","<>")}"#,
            r#"key1:=valueStr key2:=</valueStr2> key3:="valueStr3""#,
            json!({"key1": "valueStr", "key2": "/valueStr2"}),
        ),
        case(
            "keyvalue: `|` delimiter",
            r#"rule %{data::keyvalue("=", "", "", "|")}"#,
            r#"key1="value1"|key2=value2"#,
            json!({"key1": "value1", "key2": "value2"}),
        ),
        case("keyvalue: empty and null values are left out", "rule %{data::keyvalue}", "a= b=null c=3", json!({"c": "3"})),
        case("keyvalue: no pair at all gives nothing", r#"rule_test %{data::keyvalue("=")}"#, "key:=valueStr", json!({})),
        case("keyvalue matcher", r#"r %{keyvalue(":"):kv}"#, "a:1 b:2", json!({"kv": {"a": "1", "b": "2"}})),
        // ---- the other filters ----
        case("number filter", "r %{notSpace:n:number}", "3.25", json!({"n": 3.25})),
        case("integer filter", "r %{notSpace:n:integer}", "17", json!({"n": 17})),
        case("integer filter drops what is not an integer", "r %{notSpace:n:integer} %{word:w}", "1.5 x", json!({"w": "x"})),
        case("boolean filter", "r %{word:b:boolean}", "False", json!({"b": false})),
        case("nullIf drops the placeholder", r#"r %{notSpace:user:nullIf("-")} %{notSpace:ident:nullIf("-")}"#, "- bob", json!({"ident": "bob"})),
        case("json filter into an attribute", "r %{data:ctx:json}", r#"{"k":"v","n":1}"#, json!({"ctx": {"k": "v", "n": 1}})),
        case(
            "querystring filter",
            "r %{notSpace:query:querystring}",
            "/search?productId=superproduct&promotionCode=super%20promo",
            json!({"query": {"productId": "superproduct", "promotionCode": "super promo"}}),
        ),
        case("decodeuricomponent filter", "r %{notSpace:path:decodeuricomponent}", "%2Fservice%2Ftest", json!({"path": "/service/test"})),
        case(
            "useragent filter: the user-agent parser's browser, os and device",
            r#"r "%{regex("[^\"]*"):ua:useragent}""#,
            r#""Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36""#,
            json!({"ua": {
                "browser": {"family": "Chrome", "major": "120", "minor": "0", "patch": "6099"},
                "os": {"family": "Mac OS X", "major": "10", "minor": "15", "patch": "7"},
                "device": {"family": "Mac", "category": "Desktop"}
            }}),
        ),
        case(
            "useragent(true) decodes a URI-encoded agent first",
            "r %{notSpace:ua:useragent(true)}",
            "Mozilla%2F5.0%20(Windows%20NT%2010.0%3B%20Win64%3B%20x64%3B%20rv%3A121.0)%20Gecko%2F20100101%20Firefox%2F121.0",
            json!({"ua": {
                "browser": {"family": "Firefox", "major": "121", "minor": "0"},
                "os": {"family": "Windows", "major": "10"},
                "device": {"family": "Other", "category": "Desktop"}
            }}),
        ),
        case("lowercase filter", "r %{word:m:lowercase}", "GET", json!({"m": "get"})),
        case("uppercase filter", "r %{word:m:uppercase}", "post", json!({"m": "POST"})),
        case("scale filter", "r %{number:ms:scale(1000)}", "1.5", json!({"ms": 1500})),
        case("scale filter to a fraction", "r %{integer:s:scale(0.001)}", "250", json!({"s": 0.25})),
        case(
            "csv filter casts numbers",
            r#"myParsingRule %{data:user:csv("first_name,name,st_nb,st_name,city")}"#,
            "John,Doe,120,Jefferson St.,Riverside",
            json!({"user": {"first_name": "John", "name": "Doe", "st_nb": 120, "st_name": "Jefferson St.", "city": "Riverside"}}),
        ),
        case("csv doubled quotes", r#"r %{data::csv("firstname,name")}"#, r#""John ""Da Man""",Doe"#, json!({"firstname": "John \"Da Man\"", "name": "Doe"})),
        case("csv own separator and quote", r#"r %{data::csv("a,b", "|", "'")}"#, "'x|y'|z", json!({"a": "x|y", "b": "z"})),
        case("csv skips empty values", r#"r %{data::csv("key1,key2,key3")}"#, "value1,,value3", json!({"key1": "value1", "key3": "value3"})),
        case(
            "array filter with brackets",
            r#"myParsingRule Users %{data:users:array("[]",",")} have been added to the database"#,
            "Users [John, Oliver, Marc, Tom] have been added to the database",
            json!({"users": ["John", "Oliver", "Marc", "Tom"]}),
        ),
        case("array filter with braces and `-`", r#"r Users %{data:users:array("{}","-")} added"#, "Users {John-Oliver} added", json!({"users": ["John", "Oliver"]})),
        case("array filter with an item filter", r#"r %{data:ids:array(",", integer)}"#, "1, 2,3", json!({"ids": [1, 2, 3]})),
        case(
            "url filter",
            "r %{notSpace:u:url}",
            "https://api.example.com/v1/orders?user_id=12345&limit=20",
            json!({"u": {"scheme": "https", "host": "api.example.com", "port": 443, "path": "/v1/orders",
                         "queryString": {"user_id": "12345", "limit": "20"}}}),
        ),
        case(
            "url filter with an explicit port",
            "r %{notSpace:u:url}",
            "http://localhost:8080/health",
            json!({"u": {"scheme": "http", "host": "localhost", "port": 8080, "path": "/health"}}),
        ),
        case(
            "rubyhash filter (the documented shape)",
            "r %{data:user:rubyhash}",
            r#"{name => "John", "job" => {"company" => "Big Company", "title" => "CTO"}}"#,
            json!({"user": {"name": "John", "job": {"company": "Big Company", "title": "CTO"}}}),
        ),
        case(
            "rubyhash filter with symbols, numbers, nil and arrays",
            "r %{data::rubyhash}",
            r#"{:id => 7, :ratio => 0.5, :tags => ["a", 'b'], gone: nil}"#,
            json!({"id": 7, "ratio": 0.5, "tags": ["a", "b"]}),
        ),
        case(
            "xml filter (the documented book)",
            "rule %{data::xml}",
            "<book category=\"CHILDREN\">\n  <title lang=\"en\">Harry Potter</title>\n  <author>J K. Rowling</author>\n  <year>2005</year>\n</book>",
            json!({"book": {"year": "2005", "author": "J K. Rowling", "category": "CHILDREN",
                            "title": {"lang": "en", "value": "Harry Potter"}}}),
        ),
        case(
            "xml filter: repeated tags become an array",
            "rule %{data:x:xml}",
            "<bookstore><book>Harry Potter</book><book>Everyday Italian</book></bookstore>",
            json!({"x": {"bookstore": {"book": ["Harry Potter", "Everyday Italian"]}}}),
        ),
        case(
            "keyvalue into `.` merges into the root",
            "rule %{data:.:keyvalue}",
            "a=1 b=two",
            json!({"a": "1", "b": "two"}),
        ),
        // ---- rule shape ----
        case(
            "alternation: the integer branch",
            r#"MyParsingRule (%{integer:user.id}|%{word:user.firstname}) connected on %{date("MM/dd/yyyy"):connect_date}"#,
            "12345 connected on 11/08/2017",
            json!({"user": {"id": 12345}, "connect_date": 1_510_099_200_000i64}),
        ),
        case(
            "alternation: the word branch",
            r#"MyParsingRule (%{integer:user.id}|%{word:user.firstname}) connected on %{date("MM/dd/yyyy"):connect_date}"#,
            "john connected on 11/08/2017",
            json!({"user": {"firstname": "john"}, "connect_date": 1_510_099_200_000i64}),
        ),
        case(
            "optional part absent",
            r#"MyParsingRule %{word:user.firstname} (%{integer:user.id} )?connected on %{date("MM/dd/yyyy"):connect_date}"#,
            "john connected on 11/08/2017",
            json!({"user": {"firstname": "john"}, "connect_date": 1_510_099_200_000i64}),
        ),
        case(
            "optional part present",
            r#"MyParsingRule %{word:user.firstname} (%{integer:user.id} )?connected on %{date("MM/dd/yyyy"):connect_date}"#,
            "john 1234 connected on 11/08/2017",
            json!({"user": {"firstname": "john", "id": 1234}, "connect_date": 1_510_099_200_000i64}),
        ),
        case("matcher without attribute extracts nothing", "r %{word} %{integer:n}", "abc 5", json!({"n": 5})),
        case("deeply nested attribute", "r %{word:a.b.c}", "x", json!({"a": {"b": {"c": "x"}}})),
        case("the same attribute twice keeps both", "r %{word:tag} %{word:tag}", "a b", json!({"tag": ["a", "b"]})),
        Case {
            what: "helper rules (the documented example)",
            rules: "MyParsingRule %{user} %{connection} %{server}",
            helpers: "user %{word:user.name} id:%{integer:user.id}\nconnection connected on %{date(\"MM/dd/yyyy\"):connect_date}\nserver on server %{notSpace:server.name} in %{notSpace:server.env}",
            input: "john id:12345 connected on 11/08/2017 on server XYZ in production",
            want: Some((
                "MyParsingRule",
                json!({
                    "user": {"name": "john", "id": 12345},
                    "connect_date": 1_510_099_200_000i64,
                    "server": {"name": "XYZ", "env": "production"}
                }),
            )),
        },
        Case {
            what: "a helper that uses a helper, extracted whole",
            rules: "r %{pair:raw} end",
            helpers: "num %{integer:n}\npair %{num}/%{word:w}",
            input: "12/ab end",
            want: Some(("r", json!({"raw": "12/ab", "n": 12, "w": "ab"}))),
        },
        Case {
            what: "a match rule can use a match rule above it",
            rules: "first %{word:a}\nsecond %{first}-%{word:b}",
            helpers: "",
            input: "x-y",
            want: Some(("second", json!({"a": "x", "b": "y"}))),
        },
        Case {
            what: "first matching rule wins, in order",
            rules: "generic %{data:msg}\nspecific %{word:user} logged in",
            helpers: "",
            input: "bob logged in",
            want: Some(("generic", json!({"msg": "bob logged in"}))),
        },
        Case {
            what: "a later rule matches when the first does not",
            rules: "login %{word:user} logged in\n\nlogout %{word:user} logged out",
            helpers: "",
            input: "bob logged out",
            want: Some(("logout", json!({"user": "bob"}))),
        },
        Case {
            what: "rules are anchored at both ends",
            rules: "r %{word:user} logged in",
            helpers: "",
            input: "bob logged in twice",
            want: None,
        },
        Case {
            what: "no rule matches",
            rules: "r %{integer:n}",
            helpers: "",
            input: "abc",
            want: None,
        },
    ]
}

#[test]
fn table_of_documented_behaviour() {
    let mut failures = Vec::new();
    let mut count = 0;
    for c in cases() {
        count += 1;
        let grok = match Grok::compile(c.rules, c.helpers) {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{}: does not compile: {e}", c.what));
                continue;
            }
        };
        let got = grok
            .parse(c.input)
            .map(|(name, attrs)| (name.to_string(), Value::Object(attrs)));
        let want = c.want.map(|(name, v)| (name.to_string(), v));
        if got != want {
            failures.push(format!("{}:\n   got  {got:?}\n   want {want:?}", c.what));
        }
    }
    assert!(count >= 40, "the table has {count} cases");
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn nginx_access_line_is_parsed() {
    let rules = r#"access.common %{ipOrHost:network.client.ip} %{notSpace:http.ident:nullIf("-")} %{notSpace:http.auth:nullIf("-")} \[%{date("dd/MMM/yyyy:HH:mm:ss Z"):date_access}\] "(?:%{word:http.method} |)%{notSpace:http.url}(?: HTTP/%{regex("\\d+\\.\\d+"):http.version})?" %{integer:http.status_code} (?:%{integer:network.bytes_written}|-)"#;
    let grok = Grok::compile(rules, "").expect("compiles");
    let (name, attrs) = grok
        .parse(r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#)
        .expect("matches");
    assert_eq!(name, "access.common");
    assert_eq!(
        Value::Object(attrs),
        json!({
            "network": {"client": {"ip": "127.0.0.1"}, "bytes_written": 2326},
            "http": {"auth": "frank", "method": "GET", "url": "/apache_pb.gif", "version": "1.0", "status_code": 200},
            "date_access": 971_211_336_000i64
        })
    );
}

#[test]
fn a_date_without_a_year_is_in_the_current_year() {
    let grok =
        Grok::compile(r#"r %{date("MMdd HH:mm:ss.SSSSSS"):timestamp}"#, "").expect("compiles");
    let (_, attrs) = grok.parse("0424 11:47:41.605188").expect("matches");
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    // Year of `now` by counting days from 1970 (good to the day for this test's purpose).
    let mut year = 1970;
    let mut days = now_secs / 86_400;
    loop {
        let len = if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
            366
        } else {
            365
        };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let probe = Grok::compile(r#"r %{date("yyyy MMdd HH:mm:ss.SSS"):t}"#, "").expect("compiles");
    let (_, want) = probe
        .parse(&format!("{year} 0424 11:47:41.605"))
        .expect("matches");
    assert_eq!(attrs["timestamp"], want["t"]);
}

#[test]
fn an_unparseable_date_leaves_the_attribute_out() {
    // 13 matches the regex (two digits) but is no month: the rule still matches.
    let grok = Grok::compile(r#"r %{date("MM/dd/yyyy"):d} %{word:w}"#, "").expect("compiles");
    let (_, attrs) = grok.parse("13/01/2020 x").expect("matches");
    assert_eq!(Value::Object(attrs), json!({"w": "x"}));
}

fn compile_error(rules: &str, helpers: &str) -> GrokError {
    match Grok::compile(rules, helpers) {
        Ok(g) => panic!("expected an error, got {g:?}"),
        Err(e) => e,
    }
}

#[test]
fn compile_errors_name_the_rule_the_line_and_the_culprit() {
    struct Bad {
        rules: &'static str,
        helpers: &'static str,
        rule: &'static str,
        line: usize,
        says: &'static str,
    }
    let table = [
        Bad {
            rules: "ok %{word:a}\n\nbad %{wrod:a}",
            helpers: "",
            rule: "bad",
            line: 3,
            says: "wrod",
        },
        Bad {
            rules: "bad %{word:a:lowercse}",
            helpers: "",
            rule: "bad",
            line: 1,
            says: "unknown filter `lowercse`",
        },
        Bad {
            rules: "bad %{nothere}",
            helpers: "",
            rule: "bad",
            line: 1,
            says: "undefined helper rule `nothere`",
        },
        Bad {
            rules: r#"bad %{frobnicate("x"):a}"#,
            helpers: "",
            rule: "bad",
            line: 1,
            says: "unknown matcher `frobnicate`",
        },
        Bad {
            rules: "r %{a}",
            helpers: "a x%{b}\nb y%{a}",
            rule: "b",
            line: 2,
            says: "refers to itself (a → b → a)",
        },
        Bad {
            rules: "r %{a}",
            helpers: "a %{a}",
            rule: "a",
            line: 1,
            says: "refers to itself",
        },
        Bad {
            rules: "first ok\nbad %{word:a} (unclosed",
            helpers: "",
            rule: "bad",
            line: 2,
            says: "not a valid regular expression",
        },
        Bad {
            rules: r#"bad %{regex("[a-"):a}"#,
            helpers: "",
            rule: "bad",
            line: 1,
            says: "not a valid regular expression",
        },
        Bad {
            rules: r#"bad %{date("yyyy-MM-dd qq"):d}"#,
            helpers: "",
            rule: "bad",
            line: 1,
            says: "'q'",
        },
        Bad {
            rules: r#"bad %{date("yyyy","Mars/Olympus"):d}"#,
            helpers: "",
            rule: "bad",
            line: 1,
            says: "unknown timezone",
        },
        Bad {
            rules: "bad %{word:a",
            helpers: "",
            rule: "bad",
            line: 1,
            says: "not closed",
        },
        Bad {
            rules: "a %{word}\na %{integer}",
            helpers: "",
            rule: "a",
            line: 2,
            says: "defined above",
        },
        Bad {
            rules: "_bad %{word}",
            helpers: "",
            rule: "_bad",
            line: 1,
            says: "rule name",
        },
        Bad {
            rules: "lonely",
            helpers: "",
            rule: "lonely",
            line: 1,
            says: "no pattern",
        },
        Bad {
            rules: "r %{word}",
            helpers: "\nunused %{nope}",
            rule: "unused",
            line: 2,
            says: "helper rules",
        },
        Bad {
            rules: "bad %{word:a:scale(\"x\")}",
            helpers: "",
            rule: "bad",
            line: 1,
            says: "scale",
        },
        Bad {
            rules: "bad %{date(\"dd MMM\", \"UTC\", \"ja\"):d}",
            helpers: "",
            rule: "bad",
            line: 1,
            says: "date locale \"ja\" is not supported",
        },
        Bad {
            rules: "bad %{data:a:useragent(\"maybe\")}",
            helpers: "",
            rule: "bad",
            line: 1,
            says: "useragent",
        },
    ];
    for bad in table {
        let e = compile_error(bad.rules, bad.helpers);
        assert_eq!(
            (e.rule.as_str(), e.line),
            (bad.rule, bad.line),
            "{:?}: {e}",
            bad.rules
        );
        assert!(
            e.message.contains(bad.says),
            "{:?}: message {:?} lacks {:?}",
            bad.rules,
            e.message,
            bad.says
        );
        assert!(
            e.to_string().contains(bad.rule),
            "the Display form names the rule: {e}"
        );
    }
}

#[test]
fn rule_names_are_listed_in_order() {
    let grok = Grok::compile("b %{word}\n\na %{integer}", "").expect("compiles");
    assert_eq!(grok.rule_names().collect::<Vec<_>>(), vec!["b", "a"]);
}

#[test]
fn non_ascii_text_around_words_still_matches() {
    let grok = Grok::compile("r %{word:w} %{data:rest}", "").expect("compiles");
    // `word` is ASCII letters, digits and `_`, so `héllo` is not a word.
    assert!(grok.parse("héllo wörld").is_none());
    let grok = Grok::compile("r %{notSpace:a} %{data:rest}", "").expect("compiles");
    let (_, attrs) = grok.parse("héllo wörld").expect("matches");
    assert_eq!(Value::Object(attrs), json!({"a": "héllo", "rest": "wörld"}));
}

#[test]
fn odd_input_never_panics() {
    let rules = r#"dates %{date("EEE MMM dd HH:mm:ss z yyyy"):a} %{date("dd/MMM/yyyy:HH:mm:ss Z"):b}
kv %{data::keyvalue("=", "/:", "<>", ",")}
json %{data:j:json} %{data:x:xml}
ruby %{data:r:rubyhash} %{notSpace:u:url} %{notSpace:q:querystring}
all %{ip:ip} %{mac:m} %{uuid:id} %{number:n:scale(3)} %{data:d:decodeuricomponent} %{data:c:csv("a,b")} %{data:arr:array("[]", ",")}"#;
    let grok = Grok::compile(rules, "").expect("compiles");
    let samples = [
        "", " ", "é", "Ωmega Jün 16 08:29:03 ÉST 2016 06/Mär/2013:01:36:30 +0900",
        "Thu Jun 16 08:29:03 PSTX 2016 06/Mar/2013:01:36:30 +99:99",
        "a=<b c=\"d\" =e f= ,,, g=h%zz",
        "{\"a\": [1, {\"b\": null}]} <a><b x='1'>t&amp;&#x41;&#99999999;</b><b/></a>",
        "{a => {b => [1, :c, 'd\\'e']}} http://[::1]:99999/p?%%=%&&= ?a&b=",
        "::ffff:10.0.0.1 aa:bb:cc:dd:ee:ff 123e4567-e89b-12d3-a456-426614174000 1e308 %E2%82%AC%C3 \"x,\"\"y\" [a,,b",
        "\u{0}\u{7f}\u{10ffff}",
    ];
    for s in samples {
        let _ = grok.parse(s);
        let long = s.repeat(50);
        let _ = grok.parse(&long);
    }
}

#[test]
fn helpers_that_double_at_each_level_are_refused_at_once() {
    // Each helper uses the next twice: 2^40 copies of `%{word}` if expanded in full.
    let mut support = String::new();
    for i in 0..40 {
        support.push_str(&format!("_h{i} %{{_h{}}} %{{_h{}}}\n", i + 1, i + 1));
    }
    support.push_str("_h40 %{word}\n");
    let started = std::time::Instant::now();
    let err = Grok::compile("r %{_h0}", &support).expect_err("refused");
    assert!(
        err.message.contains("expands to more than"),
        "{}",
        err.message
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn an_unsupported_regex_is_named_without_the_compiled_pattern() {
    let err = Grok::compile(r"r (?<=x)%{word:w}", "").expect_err("look-behind");
    assert!(!err.message.contains("__grok"), "{}", err.message);
    assert!(err.message.contains("look-around"), "{}", err.message);
}

/// Every rule of the table, read by its plan and by its whole regex: the same answer.
#[test]
fn plans_agree_with_the_whole_regex_on_the_table() {
    let mut planned = 0;
    for c in cases() {
        let Ok(grok) = Grok::compile(c.rules, c.helpers) else {
            continue;
        };
        planned += grok.planned_rules();
        assert_eq!(
            grok.parse(c.input),
            grok.parse_by_regex(c.input),
            "{}",
            c.what
        );
    }
    assert!(planned >= 80, "only {planned} table rules have a plan");
}

// Datadog's nginx rules, shared with the grok bench.
const NGINX_RULES: &str = include_str!("data/nginx.match_rules");
const NGINX_HELPERS: &str = include_str!("data/nginx.support_rules");

/// Random edits of realistic lines, through rules that need the regex to give characters back
/// (a greedy run before a literal it can hold, a lazy gap, optional and alternative groups, word
/// boundaries, a helper captured whole, the author's own groups): the plan and the whole regex
/// agree on every one, and the plan answers most lines itself (checked by the bench's figure).
#[test]
fn plans_agree_with_the_whole_regex_on_edited_lines() {
    let rule_sets: [(&str, &str); 6] = [
        (NGINX_RULES, NGINX_HELPERS),
        (
            r#"digits %{integer:a}5 %{notSpace:b}" %{data:c}
quoted "%{notSpace:q}" %{word:w}
lazy %{data:x}:%{data:y}
tail %{data:t}"#,
            "",
        ),
        (
            r#"kv %{word:k}=%{notSpace:v}(?: %{word:k2}=%{notSpace:v2})? \[%{_inner:whole}\]"#,
            r#"_inner %{integer:n}/%{word:u}"#,
        ),
        (
            r#"own (\w+) %{regex("(a|ab)(c|bcd)"):r} %{number:n}
boundary a%{word:w} %{hostname:h}
alt %{ip:ip}|%{mac:m}"#,
            "",
        ),
        (
            r#"nl %{regex(".*"):line}\n%{data:rest}
space %{notSpace:a}\s+%{notSpace:b}\s*"#,
            "",
        ),
        (
            r#"kv2 %{data::keyvalue("=", "/:")} end
json %{data:j:json} tail
quotes %{quotedString:q} %{doubleQuotedString:d}"#,
            "",
        ),
    ];
    let seeds = [
        r#"93.180.71.3 - - [17/May/2015:08:05:32 +0000] "GET /downloads/product_1 HTTP/1.1" 304 0 "-" "Debian APT-HTTP/1.3 (0.8.16~exp12ubuntu10.21)""#,
        r#"10.0.0.1 - bob [01/Dec/2026:23:59:59 -0130] "POST /a?b=c HTTP/2.0" 500 - "http://x/" "curl/8""#,
        "2015/05/17 08:05:32 [error] 1234#0: *1 open() failed",
        "125 x\" y z",
        "\"a\"b\" cd",
        "a:b:c",
        "k=v k2=v2 [12/abc]",
        "own word ab 1.5",
        "own word abcd 7",
        "aword host.example.com",
        "10.1.2.3",
        "one\ntwo\nthree",
        "a \t b  ",
        "x=1 y=2 end",
        "{\"a\":1} tail",
        "\"q\\\"x\" \"d\"",
        "héllo wörld ünïcode",
    ];
    let mut edits = Edits::new(" \"'[]()/:=.-_+\n\t5aZé0é9\\");
    let mut compared = 0;
    for (rules, helpers) in rule_sets {
        let grok = Grok::compile(rules, helpers).expect("compiles");
        assert_eq!(
            grok.planned_rules(),
            grok.rule_names().count(),
            "every rule of {rules:?} has a plan"
        );
        for seed in seeds {
            for _ in 0..300 {
                let line = edits.of(seed);
                for input in [seed, line.as_str()] {
                    assert_eq!(
                        grok.parse(input),
                        grok.parse_by_regex(input),
                        "rules {rules:?} on {input:?}"
                    );
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 50_000);
}

/// Random edits of a line: one to three characters inserted, removed or replaced, drawn from
/// an alphabet (a fixed xorshift seed, so a failure repeats).
struct Edits {
    alphabet: Vec<char>,
    state: u64,
}

impl Edits {
    fn new(alphabet: &str) -> Edits {
        Edits {
            alphabet: alphabet.chars().collect(),
            state: 0x2545_F491_4F6C_DD1D,
        }
    }

    fn next(&mut self, n: usize) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state % n as u64) as usize
    }

    fn of(&mut self, seed: &str) -> String {
        let mut line: Vec<char> = seed.chars().collect();
        for _ in 0..1 + self.next(3) {
            let at = self.next(line.len() + 1);
            let pick = self.next(self.alphabet.len());
            let c = self.alphabet[pick];
            match self.next(3) {
                0 => line.insert(at, c),
                1 if at < line.len() => {
                    line.remove(at);
                }
                _ if at < line.len() => line[at] = c,
                _ => line.push(c),
            }
        }
        line.into_iter().collect()
    }
}

/// Every table rule that has a plan, on random edits of its own sample drawn from the
/// sample's characters and a few more: dates, addresses, key-values and quoted strings each
/// get lines that almost match.
#[test]
fn plans_agree_with_the_whole_regex_on_edited_table_samples() {
    let mut compared = 0;
    for c in cases() {
        let Ok(grok) = Grok::compile(c.rules, c.helpers) else {
            continue;
        };
        if grok.planned_rules() == 0 {
            continue;
        }
        let mut edits = Edits::new(&format!("{} :.-/\"=0a9Z", c.input));
        for _ in 0..500 {
            let line = edits.of(c.input);
            assert_eq!(
                grok.parse(&line),
                grok.parse_by_regex(&line),
                "{}: {:?}",
                c.what,
                line
            );
            compared += 1;
        }
    }
    assert!(compared > 38_000, "{compared}");
}
