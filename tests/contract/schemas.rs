//! The schemas themselves: valid draft 2020-12, registered, and every property documented.

use super::*;

#[test]
fn schemas_are_valid_draft_2020_12_and_documented() {
    let listed: BTreeSet<String> = std::fs::read_dir(root().join("proto"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".schema.json"))
        .collect();
    let known: BTreeSet<String> = SCHEMAS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        listed, known,
        "every proto/*.schema.json must be covered by this test"
    );
    for name in SCHEMAS {
        let s = schema::schema_json(name);
        assert_eq!(
            s["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "proto/{name}: $schema"
        );
        let stem = name.trim_end_matches(".schema.json");
        assert_eq!(
            s["$id"],
            format!("urn:toolgate:proto:{stem}:1"),
            "proto/{name}: $id (other schemas $ref it by this)"
        );
        if let Err(e) = jsonschema::draft202012::meta::validate(&s) {
            panic!("proto/{name} is not a valid 2020-12 schema: {e}");
        }
        schema::compile(&s);
        let mut undocumented = Vec::new();
        find_undocumented(&s, "", &mut undocumented);
        assert!(
            undocumented.is_empty(),
            "proto/{name}: properties without a description (they are the reference docs): {undocumented:?}"
        );
        assert!(
            read("proto/README.md").contains(name),
            "proto/README.md does not mention {name}"
        );
    }
}

/// Every member of every `properties` map carries a `description`.
fn find_undocumented(node: &Value, at: &str, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                for (k, p) in props {
                    // Members of branch-local `properties` (inside oneOf/allOf/not/if/then/
                    // else) and of `properties` beside a `$ref` only narrow a property
                    // documented where it is defined.
                    let local = ["/oneOf/", "/allOf/", "/not", "/if", "/then", "/else"]
                        .iter()
                        .any(|b| at.contains(b))
                        || map.contains_key("$ref");
                    if !local && p.get("description").is_none() {
                        out.push(format!("{at}/properties/{k}"));
                    }
                }
            }
            for (k, v) in map {
                find_undocumented(v, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                find_undocumented(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}
