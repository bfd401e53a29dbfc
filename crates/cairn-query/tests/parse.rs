//! Attribute paths the store cannot address are refused when parsed, naming the column.

#[test]
fn an_attribute_path_with_a_nul_is_a_query_error() {
    for q in ["(@\0list:A)", "@a.\0b:x"] {
        let err = cairn_query::parse(q).expect_err(q);
        assert!(
            err.message.contains("is not an attribute path"),
            "{q:?}: {err}"
        );
    }
    cairn_query::parse("@list:A").expect("a plain path parses");
}
