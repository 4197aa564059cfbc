//! Text from the data (business names, error types, statuses) on its way
//! to a terminal or a picture: control characters could move the cursor,
//! rewrite earlier lines, set a terminal's title or break an SVG (XML
//! forbids most of them even escaped), and bidirectional overrides can make
//! a name read as another. Each one is shown as U+FFFD instead.

use std::borrow::Cow;

/// Whether `c` may not reach a terminal or an SVG as it is.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
        || matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

/// `text` with every control character and bidirectional override
/// replaced by U+FFFD; borrowed when there is none.
pub fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(is_unsafe) {
        Cow::Owned(
            text.chars()
                .map(|c| if is_unsafe(c) { '\u{FFFD}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_overrides_are_replaced() {
        assert_eq!(printable("Acme Plumbing"), "Acme Plumbing");
        assert!(matches!(printable("Zürich Ärzte 診療所"), Cow::Borrowed(_)));
        assert_eq!(
            printable("a\u{1b}[2J\u{7}b\r\nc\u{202E}d\u{85}"),
            "a\u{FFFD}[2J\u{FFFD}b\u{FFFD}\u{FFFD}c\u{FFFD}d\u{FFFD}"
        );
    }
}
