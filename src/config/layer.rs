//! Stage 1: merging the TOML layers (defaults, file, environment).

use std::path::Path;

use toml::{Table, Value};

use super::ConfigError;

/// The documented default configuration, embedded in the binary.
pub const DEFAULT_TOML: &str = include_str!("../../config/yizhan.toml");

const ENV_PREFIX: &str = "YIZHAN_";

/// The merged table of all layers.
pub(super) fn layered(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Table, ConfigError> {
    let mut table: Table =
        DEFAULT_TOML
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: "<embedded defaults>".into(),
                message: e.to_string(),
            })?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        merge(&mut table, parse_file(path, &text)?);
    }
    let problems: Vec<String> = env
        .into_iter()
        .filter_map(|(name, value)| apply_env(&mut table, &name, &value).err())
        .collect();
    if problems.is_empty() {
        Ok(table)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// The defaults with `text` (a configuration file's content) over them, and
/// no environment.
pub(super) fn layered_text(text: &str) -> Result<Table, ConfigError> {
    let mut table = layered(None, std::iter::empty())?;
    merge(&mut table, parse_file(Path::new("<text>"), text)?);
    Ok(table)
}

fn parse_file(path: &Path, text: &str) -> Result<Table, ConfigError> {
    text.parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else
/// (arrays included, so `[[carriers]]` replaces the list) is replaced.
fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Applies one `YIZHAN_SECTION__KEY[__SUBKEY]` variable. Its value is read
/// as the type the default has at that key (number, boolean or text).
fn apply_env(table: &mut Table, name: &str, value: &str) -> Result<(), String> {
    let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
        return Ok(());
    };
    if !rest.contains("__") {
        return Ok(()); // YIZHAN_CONFIG and friends are not config keys
    }
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    let (last, parents) = path
        .split_last()
        .ok_or_else(|| format!("{name}: empty key"))?;
    let mut node = table;
    for key in parents {
        let entry = node
            .entry(key.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        node = entry
            .as_table_mut()
            .ok_or_else(|| format!("{name}: {key} is not a section"))?;
    }
    let typed = match node.get(last) {
        Some(Value::Integer(_)) => value
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("{name} = {value:?}: expected a whole number"))?,
        Some(Value::Boolean(_)) => value
            .trim()
            .parse::<bool>()
            .map(Value::Boolean)
            .map_err(|_| format!("{name} = {value:?}: expected true or false"))?,
        // A list of text (`sync.mqtt.urls`): comma-separated.
        Some(Value::Array(a)) if a.iter().all(Value::is_str) => Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| Value::String(v.to_owned()))
                .collect(),
        ),
        Some(Value::Table(_) | Value::Array(_)) => {
            return Err(format!(
                "{name}: {last} is a section or list; set its keys one by one"
            ));
        }
        _ => Value::String(value.to_owned()),
    };
    node.insert(last.clone(), typed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_replaces_arrays_and_merges_tables() {
        let mut base: Table = "a = [1, 2]\n[t]\nx = 1\ny = 2\n".parse().unwrap();
        merge(&mut base, "a = [3]\n[t]\ny = 5\n".parse().unwrap());
        assert_eq!(base.to_string(), "a = [3]\n\n[t]\nx = 1\ny = 5\n");
    }

    #[test]
    fn env_values_take_the_type_of_the_default() {
        let mut t: Table = "[s]\nn = 1\nb = false\ntext = \"x\"\n".parse().unwrap();
        apply_env(&mut t, "YIZHAN_S__N", "7").unwrap();
        apply_env(&mut t, "YIZHAN_S__B", "true").unwrap();
        apply_env(&mut t, "YIZHAN_S__TEXT", "0001").unwrap();
        apply_env(&mut t, "YIZHAN_CONFIG", "ignored").unwrap();
        apply_env(&mut t, "OTHER__X", "ignored").unwrap();
        assert_eq!(t["s"]["n"].as_integer(), Some(7));
        assert_eq!(t["s"]["b"].as_bool(), Some(true));
        assert_eq!(t["s"]["text"].as_str(), Some("0001"));
        let mut l: Table = "[s]\nurls = []\n".parse().unwrap();
        apply_env(&mut l, "YIZHAN_S__URLS", "mqtt://a:1, mqtt://b:2,").unwrap();
        assert_eq!(
            l["s"]["urls"].to_string(),
            r#"["mqtt://a:1", "mqtt://b:2"]"#
        );
        assert!(
            apply_env(&mut t, "YIZHAN_S__N", "x")
                .unwrap_err()
                .contains("whole number")
        );
        assert!(apply_env(&mut t, "YIZHAN_S", "x").is_ok());
    }
}
