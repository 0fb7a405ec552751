//! The arrival inspection: `--item NAME=RESULT` arguments, checked against the configured
//! checklist.

use tsagent_bundle::event::InspectionItem as ItemRecord;

use crate::config::{InspectionItem, ItemKind};

use super::error::CustodyError;

/// Reads `NAME=RESULT`: split at the first `=`, both sides trimmed and not empty.
pub fn parse_item(text: &str) -> Result<(String, String), CustodyError> {
    let bad = |reason: &str| CustodyError::Item {
        text: text.to_owned(),
        reason: reason.to_owned(),
    };
    let (name, result) = text
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=RESULT, e.g. \"battery indicator=ok\""))?;
    let (name, result) = (name.trim(), result.trim());
    if name.is_empty() {
        return Err(bad("the item's name is empty"));
    }
    if result.is_empty() {
        return Err(bad("the result is empty"));
    }
    Ok((name.to_owned(), result.to_owned()))
}

/// The inspection record of `given` items against `checklist`: every item named once, none
/// unknown, none missing; a `value` item's result is a number, with the item's unit if it gives
/// one (`10.02 kOhm` or `10.02`).
pub fn inspect(
    checklist: &[InspectionItem],
    given: &[(String, String)],
) -> Result<Vec<ItemRecord>, CustodyError> {
    let fail = |reason: String| Err(CustodyError::Checklist { reason });
    if checklist.is_empty() {
        return fail("the config has no [[artefact.inspection]] items".to_owned());
    }
    for (i, (name, _)) in given.iter().enumerate() {
        if !checklist.iter().any(|c| &c.item == name) {
            let known: Vec<&str> = checklist.iter().map(|c| c.item.as_str()).collect();
            return fail(format!(
                "no item `{name}` (the checklist has: {})",
                known.join(", ")
            ));
        }
        if given[..i].iter().any(|(n, _)| n == name) {
            return fail(format!("item `{name}` is given twice"));
        }
    }
    let mut out = Vec::with_capacity(checklist.len());
    for item in checklist {
        let Some((_, result)) = given.iter().find(|(n, _)| n == &item.item) else {
            return fail(format!("item `{}` is missing", item.item));
        };
        let (value, unit) = match item.kind {
            ItemKind::Check => (None, None),
            ItemKind::Value => {
                let (number, unit) = match result.split_once(char::is_whitespace) {
                    Some((n, u)) => (n, Some(u.trim())),
                    None => (result.as_str(), None),
                };
                let value = number.parse::<f64>().ok().filter(|v| v.is_finite());
                let Some(value) = value else {
                    return fail(format!(
                        "item `{}` takes a number, e.g. \"{}=10.02{}\", not `{result}`",
                        item.item,
                        item.item,
                        item.unit
                            .as_deref()
                            .map(|u| format!(" {u}"))
                            .unwrap_or_default()
                    ));
                };
                if let (Some(given), Some(expected)) = (unit, item.unit.as_deref())
                    && given != expected
                {
                    return fail(format!(
                        "item `{}` is in {expected}, not {given}",
                        item.item
                    ));
                }
                (Some(value), item.unit.clone().or(unit.map(str::to_owned)))
            }
        };
        out.push(ItemRecord {
            item: item.item.clone(),
            kind: match item.kind {
                ItemKind::Check => "check",
                ItemKind::Value => "value",
            }
            .to_owned(),
            result: result.clone(),
            value,
            unit,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn checklist() -> Vec<InspectionItem> {
        vec![
            InspectionItem {
                item: "battery indicator".into(),
                kind: ItemKind::Check,
                unit: None,
            },
            InspectionItem {
                item: "thermistor".into(),
                kind: ItemKind::Value,
                unit: Some("kOhm".into()),
            },
        ]
    }

    fn given(items: &[&str]) -> Result<Vec<(String, String)>, CustodyError> {
        items.iter().map(|i| parse_item(i)).collect()
    }

    #[test]
    fn items_parse_at_the_first_equals_sign() {
        assert_eq!(
            parse_item(" battery indicator = ok ").unwrap(),
            ("battery indicator".into(), "ok".into())
        );
        assert_eq!(parse_item("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        for bad in ["ok", "=ok", "thermistor=", " = "] {
            let err = parse_item(bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid item"), "{err}");
        }
    }

    #[test]
    fn the_checklist_is_matched_item_by_item() {
        let items = inspect(
            &checklist(),
            &given(&["thermistor=10.02 kOhm", "battery indicator=ok"]).unwrap(),
        )
        .unwrap();
        assert_eq!(
            items[0].item, "battery indicator",
            "in the checklist's order"
        );
        assert_eq!(items[1].value, Some(10.02));
        assert_eq!(items[1].unit.as_deref(), Some("kOhm"));
        let bare = inspect(
            &checklist(),
            &given(&["thermistor=10.02", "battery indicator=ok"]).unwrap(),
        )
        .unwrap();
        assert_eq!(bare[1].unit.as_deref(), Some("kOhm"));
        let cases: [(&[&str], &str); 5] = [
            (&["battery indicator=ok"], "item `thermistor` is missing"),
            (
                &["battery indicator=ok", "thermistor=warm"],
                "takes a number",
            ),
            (
                &["battery indicator=ok", "thermistor=10 Ohm"],
                "is in kOhm, not Ohm",
            ),
            (&["battery=ok"], "no item `battery`"),
            (
                &["battery indicator=ok", "battery indicator=ok"],
                "given twice",
            ),
        ];
        for (items, expected) in cases {
            let err = inspect(&checklist(), &given(items).unwrap()).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,40}") {
            let _ = parse_item(&text);
        }

        #[test]
        fn names_and_results_round_trip(
            name in "[a-z][a-z ]{0,15}[a-z]",
            result in "[A-Za-z0-9.][A-Za-z0-9. =]{0,15}[A-Za-z0-9.]",
        ) {
            let (n, r) = parse_item(&format!("{name}={result}")).unwrap();
            prop_assert_eq!(n, name);
            prop_assert_eq!(r, result);
        }
    }
}
