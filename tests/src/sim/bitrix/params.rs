//! REST request parameters as Bitrix24 (PHP) sees them: the query string
//! merged with the body, where the body is JSON or a form with PHP-style
//! nested keys (`fields[PHONE][0][VALUE]=...`, `values[]=...`).

use serde_json::{Map, Value};

/// The query string merged with the body (body keys win). `Err` with a
/// description when the body claims to be JSON but is not a JSON object.
pub(crate) fn request_params(query: &str, body: &str) -> Result<Map<String, Value>, String> {
    let mut params = php_form(query);
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return Ok(params);
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Object(object)) => params.extend(object),
            Ok(_) => return Err("The request body must be a JSON object".to_owned()),
            Err(error) => return Err(format!("Invalid JSON body: {error}")),
        }
    } else {
        params.extend(php_form(trimmed));
    }
    Ok(params)
}

/// Decode `a=1&b[c]=2&d[]=x&d[]=y` into `{"a":"1","b":{"c":"2"},"d":["x","y"]}`.
/// Objects whose keys are exactly `0..n` become arrays.
pub(crate) fn php_form(text: &str) -> Map<String, Value> {
    let mut root = Value::Object(Map::new());
    for (key, value) in url::form_urlencoded::parse(text.as_bytes()) {
        let path = split_key(&key);
        insert(&mut root, &path, Value::String(value.into_owned()));
    }
    match listify(root) {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// `a[b][]` → `["a", "b", ""]`; a key with unbalanced brackets stays whole.
fn split_key(key: &str) -> Vec<String> {
    let Some(open) = key.find('[') else {
        return vec![key.to_owned()];
    };
    if open == 0 {
        return vec![key.to_owned()];
    }
    let mut parts = vec![key[..open].to_owned()];
    let mut rest = &key[open..];
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            return vec![key.to_owned()];
        };
        parts.push(inner[..close].to_owned());
        rest = &inner[close + 1..];
    }
    if !rest.is_empty() {
        return vec![key.to_owned()];
    }
    parts
}

fn insert(node: &mut Value, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *node = value;
        return;
    };
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    let Value::Object(map) = node else {
        return;
    };
    let key = if first.is_empty() {
        // `[]`: the next free integer key, as PHP appends.
        let next = map
            .keys()
            .filter_map(|k| k.parse::<usize>().ok())
            .map(|n| n + 1)
            .max()
            .unwrap_or(0);
        next.to_string()
    } else {
        first.clone()
    };
    let child = map.entry(key).or_insert(Value::Null);
    insert(child, rest, value);
}

fn listify(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let sequential =
                !map.is_empty() && (0..map.len()).all(|index| map.contains_key(&index.to_string()));
            if sequential {
                let mut map = map;
                Value::Array(
                    (0..map.len())
                        .map(|index| listify(map.remove(&index.to_string()).unwrap_or_default()))
                        .collect(),
                )
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, listify(v))).collect())
            }
        }
        other => other,
    }
}

/// A top-level parameter by name, case-insensitively (Bitrix24 upper-cases
/// the parameters of its CRM methods).
pub(crate) fn param<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    params.get(name).or_else(|| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

/// An id given as a JSON number or a numeric string (`0` included).
pub(crate) fn as_id(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|id| *id >= 0)
}

/// A scalar as Bitrix24 stores it: strings as they are, numbers as text,
/// booleans as `Y`/`N`; arrays, objects and `null` unchanged.
pub(crate) fn scalar_string(value: &Value) -> Value {
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(if *b { "Y" } else { "N" }.to_owned()),
        other => other.clone(),
    }
}

/// A value's text (`""` for `null`, arrays and objects).
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => if *b { "Y" } else { "N" }.to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn php_style_forms_nest() {
        let form = php_form(
            "auth=tok&fields[NAME]=Ada&fields[EMAIL][0][VALUE]=a%40x.io&fields[EMAIL][0][VALUE_TYPE]=WORK\
             &values[]=1&values[]=2&fields[PHONE][n0][VALUE]=%2B1+555",
        );
        assert_eq!(
            Value::Object(form),
            json!({
                "auth": "tok",
                "fields": {
                    "NAME": "Ada",
                    "EMAIL": [{"VALUE": "a@x.io", "VALUE_TYPE": "WORK"}],
                    "PHONE": {"n0": {"VALUE": "+1 555"}},
                },
                "values": ["1", "2"],
            })
        );
        assert_eq!(split_key("a[b"), vec!["a[b".to_owned()]);
    }

    #[test]
    fn body_wins_over_query_and_bad_json_is_an_error() {
        let params = request_params("auth=q&id=1", r#"{"id": 2}"#).unwrap();
        assert_eq!(params["auth"], "q");
        assert_eq!(params["id"], 2);
        assert!(request_params("", "{nope").is_err());
        assert_eq!(as_id(&json!("12")), Some(12));
        assert_eq!(as_id(&json!(0)), Some(0));
        assert_eq!(as_id(&json!("x")), None);
        assert_eq!(param(&params, "ID"), Some(&json!(2)));
    }
}
