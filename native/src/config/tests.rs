//! The config module's pure parts: flag text round trips and taking `--config` out.

use super::*;

#[test]
fn typed_values_read_back_to_the_same_flag_text() {
    for text in ["30", "0.001", "1e-3", "8/255", "pgd", "-2", "inf", "nan"] {
        let v = typed(text);
        let back = scalar(v.clone()).unwrap();
        // Numbers may change spelling (1e-3 -> 0.001) but never value.
        match v {
            toml::Value::Float(f) => assert_eq!(back.parse::<f64>().unwrap(), f),
            toml::Value::Integer(i) => assert_eq!(back, i.to_string()),
            _ => assert_eq!(back, text),
        }
    }
    assert!(matches!(typed("inf"), toml::Value::String(_)));
}

#[test]
fn the_config_flag_is_taken_out_once() {
    let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
    let (rest, file) = take_config_flag(args(&[
        "hashguard",
        "attack",
        "--config=a.toml",
        "--steps",
        "3",
    ]))
    .unwrap();
    assert_eq!(rest, args(&["hashguard", "attack", "--steps", "3"]));
    assert_eq!(file, Some(PathBuf::from("a.toml")));
    assert!(take_config_flag(args(&["h", "attack", "--config"])).is_err());
    assert!(take_config_flag(args(&["h", "--config", "a", "--config", "b"])).is_err());
}
