//! docs/PROTOCOL.md stays true: every JSON example in it is a message that
//! encodes back to exactly the same JSON, and every message type has one.

use std::collections::BTreeSet;

use common::protocol::Message;

/// Every line of every ```json block of docs/PROTOCOL.md.
fn examples() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PROTOCOL.md"))
        .expect("docs/PROTOCOL.md");
    let mut out = Vec::new();
    let mut in_json = false;
    for line in doc.lines() {
        match line.trim() {
            "```json" => in_json = true,
            "```" => in_json = false,
            l if in_json && !l.is_empty() => out.push(l.to_string()),
            _ => {}
        }
    }
    out
}

/// Every message type, as serde names them (read from serde's own error
/// for an unknown type, so that a new message cannot be left out here).
fn all_types() -> BTreeSet<String> {
    let err = serde_json::from_str::<Message>(r#"{"type":"?"}"#).unwrap_err();
    let err = err.to_string();
    let list = err
        .split("expected one of ")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected serde error: {err}"));
    // "`hello`, `welcome`, ..., `want` at line 1 column 11": the quoted words.
    let types: BTreeSet<String> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect();
    assert!(
        types.contains("hello") && types.contains("list_request"),
        "{types:?}"
    );
    types
}

#[test]
fn every_example_is_a_message_that_round_trips() {
    let examples = examples();
    assert!(
        examples.len() > 20,
        "found only {} examples",
        examples.len()
    );
    for ex in &examples {
        let value: serde_json::Value =
            serde_json::from_str(ex).unwrap_or_else(|e| panic!("not JSON: {ex}: {e}"));
        let msg: Message = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("not a message: {ex}: {e}"));
        assert_eq!(serde_json::to_value(&msg).unwrap(), value, "{ex}");
    }
}

#[test]
fn every_message_type_has_an_example() {
    let documented: BTreeSet<String> = examples()
        .iter()
        .map(|ex| {
            let v: serde_json::Value = serde_json::from_str(ex).unwrap();
            v["type"].as_str().unwrap().to_string()
        })
        .collect();
    let missing: Vec<_> = all_types().difference(&documented).cloned().collect();
    assert!(
        missing.is_empty(),
        "docs/PROTOCOL.md has no example of {missing:?}"
    );
}
