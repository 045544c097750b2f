//! Tests of the start factor: which rows pair up, the change of each lead, and its Markdown
//! and JSON.

use super::*;

#[test]
fn the_start_effect_pairs_each_method_with_itself_from_scratch() {
    let free = || {
        Some(AdvTraining::Free {
            eps: 8.0 / 255.0,
            replays: 4,
        })
    };
    let logit = AdvTraining::cgat().with_term(AdvTerm::Logit);
    let rows = vec![
        report("no AT", 0, &[0.8, 0.3, 0.3], &[(0.3, None), (0.1, None)]),
        trained("freeat-m4", 0, (0.76, 0.69), free(), 1, false),
        trained("freeat-m4", 1, (0.76, 0.70), free(), 1, false),
        trained("cgat", 0, (0.78, 0.71), None, 4, false),
        trained("cgat", 1, (0.78, 0.72), None, 4, false),
        // Fine-tuned only: nothing to pair with.
        trained("saat", 0, (0.78, 0.73), Some(AdvTraining::saat()), 4, false),
        // Another term of CgAT: not the same method as `cgat (scratch)`.
        trained("cgat-logit", 0, (0.78, 0.72), Some(logit), 4, false),
        // From scratch at a budget of 8: FreeAT m = 4 for 2 epochs, CgAT for 8.
        trained("freeat-m4 (scratch)", 0, (0.66, 0.64), free(), 2, true),
        trained("freeat-m4 (scratch)", 1, (0.66, 0.63), free(), 2, true),
        trained("cgat (scratch)", 0, (0.57, 0.56), None, 8, true),
        trained("cgat (scratch)", 1, (0.57, 0.57), None, 8, true),
        // From scratch only.
        trained(
            "pgd-at (scratch)",
            0,
            (0.6, 0.6),
            Some(AdvTraining::pgd_at()),
            8,
            true,
        ),
    ];
    let leads = Lead::all(&rows);
    let effects = StartEffect::all(&rows, &leads);
    assert_eq!(effects.len(), 1, "{effects:?}");
    let e = &effects[0];
    assert_eq!(
        (e.row.as_str(), e.scratch_row.as_str()),
        ("cgat", "cgat (scratch)")
    );
    assert_eq!(e.seeds, [2, 2, 2, 2]);
    // Clean: +2 points fine-tuned, −9 from scratch, no spread on either side.
    assert!((e.clean.mean + 0.11).abs() < 1e-12, "{:?}", e.clean);
    assert!(e.clean.se.unwrap().abs() < 1e-12);
    // 8/255: +2 fine-tuned, −7 from scratch; each lead's se is √(5e-5), combined √(1e-4).
    assert!((e.robust[0].pgd.mean + 0.09).abs() < 1e-12);
    assert!((e.robust[0].pgd.se.unwrap() - 0.01).abs() < 1e-9);
    assert!(e.robust[1].pgd.mean.abs() < 1e-12);
    // A lead with one seed on a side has no se, and neither has its change.
    let one = Difference {
        mean: 0.01,
        se: None,
    };
    assert_eq!(e.clean.minus(&one).se, None);

    let mut table = super::table3(rows, &[]);
    table.leads = leads;
    table.start = effects;
    let md = table3_markdown(&table);
    assert!(
        md.contains("## Start: from scratch against fine-tuned"),
        "{md}"
    );
    assert!(
        md.contains(
            "| cgat | cgat (scratch) | 2 / 2, 2 / 2 | -11.0 ± 0.0 | -9.0 ± 1.0 | +0.0 ± 0.0 |"
        ),
        "{md}"
    );
    let back: Table3Report = serde_json::from_str(&serde_json::to_string(&table).unwrap()).unwrap();
    // JSON keeps the pairing and the figures (to parsing precision).
    let (b, t) = (&back.start[0], &table.start[0]);
    assert_eq!(
        (&b.row, &b.scratch_row, b.seeds),
        (&t.row, &t.scratch_row, t.seeds)
    );
    assert!((b.robust[0].pgd.se.unwrap() - 0.01).abs() < 1e-9);
    assert!((b.clean.mean + 0.11).abs() < 1e-12);
    // A report written before the start factor still reads.
    table.start.clear();
    let old: Table3Report = serde_json::from_str(&serde_json::to_string(&table).unwrap()).unwrap();
    assert!(old.start.is_empty());
    assert!(!table3_markdown(&old).contains("## Start"));
}
