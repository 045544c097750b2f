//! The demo's typeface: egui's Ubuntu Light cut to Latin, Greek, Cyrillic and the symbols text
//! uses (`web/fonts/subset.py`), for proportional and monospace text, with egui's small icon font
//! behind it. egui's default set (full Ubuntu Light and Hack) is 319 KB of the gzipped module.

use std::sync::Arc;

use eframe::egui;
use egui::{FontData, FontDefinitions, FontFamily, FontTweak};

/// Ubuntu Light without its hinting bytecode, cut to the scripts a user's text can bring and
/// renamed as the Ubuntu Font Licence asks of a modified version (`web/fonts/`: the script that
/// writes it and the licence).
const UBUNTU_LIGHT_SUBSET: &[u8] =
    include_bytes!("../../fonts/UbuntuLight-derivative-hashguard.ttf");

/// Installs the demo's fonts in `ctx`; call it before the first frame (the app's creator), as
/// eframe is built without egui's default fonts.
pub fn install_fonts(ctx: &egui::Context) {
    let mut fonts = FontDefinitions::empty();
    fonts.font_data.insert(
        "Ubuntu-Light".into(),
        Arc::new(FontData::from_static(UBUNTU_LIGHT_SUBSET)),
    );
    // The handful of icons egui's widgets draw (as egui's default set scales them).
    fonts.font_data.insert(
        "egui-icons".into(),
        Arc::new(
            FontData::from_static(epaint_default_fonts::EGUI_ICONS).tweak(FontTweak {
                scale: 0.90,
                ..Default::default()
            }),
        ),
    );
    for family in [FontFamily::Proportional, FontFamily::Monospace] {
        fonts
            .families
            .insert(family, vec!["Ubuntu-Light".into(), "egui-icons".into()]);
    }
    ctx.set_fonts(fonts);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every non-ASCII character in the demo's source (its labels and explanations), and file
    /// names in Latin, Greek and Cyrillic, have a glyph in the installed fonts: none is drawn as
    /// egui's replacement box.
    #[test]
    fn the_fonts_cover_every_character_the_demo_writes() {
        let ctx = egui::Context::default();
        install_fonts(&ctx);
        let mut wanted = std::collections::BTreeSet::new();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let mut stack = vec![std::path::PathBuf::from(dir)];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if path.extension().is_some_and(|e| e == "rs") {
                wanted.extend(
                    std::fs::read_to_string(&path)
                        .unwrap()
                        .chars()
                        .filter(|c| !c.is_ascii()),
                );
            }
        }
        assert!(wanted.contains(&'ε'), "the scan found the demo's sources");
        // And what an uploaded file's name can bring in the scripts the subset keeps.
        wanted.extend("Ünïcødé_čžł_ελληνικά_кириллица_€×".chars());
        let _ = ctx.run_ui(Default::default(), |_| {});
        let missing: Vec<char> = ctx.fonts_mut(|fonts| {
            let font = egui::FontId::proportional(14.0);
            wanted
                .iter()
                .copied()
                .filter(|&c| !fonts.has_glyph(&font, c))
                .collect()
        });
        assert!(missing.is_empty(), "no glyph for {missing:?}");
    }
}
