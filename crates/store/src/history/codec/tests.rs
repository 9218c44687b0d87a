use proptest::prelude::*;

use super::*;

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits()
}

fn special() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(0.0),
        Just(-0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
        (-1e6f64..1e6).prop_map(|v| (v * 10.0).round() / 10.0),
        (0u64..1 << 40).prop_map(|v| v as f64),
        any::<f32>().prop_map(f64::from),
        any::<u64>().prop_map(f64::from_bits),
    ]
}

fn series_set(columns: usize) -> impl Strategy<Value = Vec<SeriesData>> {
    // A shared time axis (arbitrary, strictly increasing), then per series a
    // subset of it with values.
    (
        proptest::collection::btree_set(any::<i64>(), 1..40),
        proptest::collection::btree_map(
            0u32..1000,
            proptest::collection::vec(
                (any::<bool>(), [special(), special(), special(), special()]),
                40,
            ),
            0..6,
        ),
    )
        .prop_map(move |(times, series)| {
            series
                .into_iter()
                .map(|(idx, picks)| SeriesData {
                    idx,
                    points: times
                        .iter()
                        .zip(picks)
                        .filter(|(_, (keep, _))| *keep)
                        .map(|(t, (_, mut v))| {
                            for c in v.iter_mut().skip(columns) {
                                *c = 0.0;
                            }
                            (*t, v)
                        })
                        .collect(),
                })
                .filter(|s| !s.points.is_empty())
                .collect()
        })
}

fn same_series(a: &[SeriesData], b: &[SeriesData]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.idx == y.idx
                && x.points.len() == y.points.len()
                && x.points.iter().zip(&y.points).all(|(p, q)| {
                    p.0 == q.0 && p.1.iter().zip(q.1.iter()).all(|(u, v)| same(*u, *v))
                })
        })
}

proptest! {
    #[test]
    fn rows_round_trip_every_f64(values in proptest::collection::btree_map(any::<u32>(), special(), 0..64)) {
        let values: Vec<(u32, f64)> = values.into_iter().collect();
        let blob = encode_row(&values);
        let back = decode_row(&blob).unwrap();
        prop_assert_eq!(back.len(), values.len());
        for ((i, v), (j, w)) in values.iter().zip(&back) {
            prop_assert_eq!(i, j);
            prop_assert!(same(*v, *w), "{} became {}", v, w);
            let one = row_value(&blob, *i).unwrap().unwrap();
            prop_assert!(same(one, *v));
        }
    }

    #[test]
    fn chunks_round_trip_every_f64_and_time(series in series_set(4), columns in 1u8..=4) {
        let series: Vec<SeriesData> = series
            .into_iter()
            .map(|mut s| {
                for p in &mut s.points {
                    for c in p.1.iter_mut().skip(usize::from(columns)) {
                        *c = 0.0;
                    }
                }
                s
            })
            .collect();
        let blob = encode_chunk(columns, &series);
        let (cols, back) = decode_chunk(&blob).unwrap();
        prop_assert_eq!(cols, columns);
        prop_assert!(same_series(&series, &back), "{:?} became {:?}", series, back);
        let chunk = Chunk::parse(&blob).unwrap();
        for s in &series {
            let one = chunk.series(s.idx).unwrap().unwrap();
            let one = [SeriesData { idx: s.idx, points: one }];
            prop_assert!(same_series(std::slice::from_ref(s), &one), "series {}", s.idx);
        }
    }

    #[test]
    fn damaged_blobs_are_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_row(&bytes);
        let _ = row_value(&bytes, 3);
        let _ = decode_chunk(&bytes);
    }

    #[test]
    fn a_flipped_or_cut_chunk_is_an_error_or_decodes(series in series_set(1), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let blob = encode_chunk(1, &series);
        let mut flipped = blob.clone();
        let i = at.index(flipped.len());
        flipped[i] ^= 1 << bit;
        let _ = decode_chunk(&flipped);
        let cut = &blob[..i];
        prop_assert!(decode_chunk(cut).is_err() || cut.len() == blob.len());
    }
}

#[test]
fn regular_samples_take_little_room() {
    // Five-second samples of a slowly moving gauge, a constant and a counter.
    let times: Vec<i64> = (0..120).map(|i| 1_700_000_000_000 + i * 5000).collect();
    let series = vec![
        SeriesData {
            idx: 0,
            points: times
                .iter()
                .enumerate()
                .map(|(i, t)| (*t, [((i % 7) as f64 * 1.5) + 10.0, 0.0, 0.0, 0.0]))
                .collect(),
        },
        SeriesData {
            idx: 1,
            points: times.iter().map(|t| (*t, [16e9, 0.0, 0.0, 0.0])).collect(),
        },
    ];
    let blob = encode_chunk(1, &series);
    // 240 points (16 bytes each as they come): about a byte a point, the
    // constant and the regular clock almost nothing.
    assert!(blob.len() < 260, "{} bytes", blob.len());
    assert!(same_series(&series, &decode_chunk(&blob).unwrap().1));
}

#[test]
fn rows_pick_the_smallest_exact_form() {
    let row = encode_row(&[(0, 0.0), (1, 12.5), (2, 8_589_934_592.0), (3, 0.1)]);
    // version, count, then 1 + 0, 1 + 4 (f32), 1 + 5 (varint), 1 + 8 (f64).
    assert_eq!(row.len(), 2 + 1 + 5 + 6 + 9);
    assert_eq!(
        decode_row(&row).unwrap(),
        vec![(0, 0.0), (1, 12.5), (2, 8_589_934_592.0), (3, 0.1)]
    );
    // A repeated index keeps the last value, as a replaced write would.
    assert_eq!(
        decode_row(&encode_row(&[(4, 1.0), (4, 2.0)])).unwrap(),
        vec![(4, 2.0)]
    );
}

#[test]
fn empty_input_gives_an_empty_chunk() {
    let blob = encode_chunk(4, &[]);
    let (cols, series) = decode_chunk(&blob).unwrap();
    assert_eq!(cols, 4);
    assert!(series.is_empty());
    assert!(decode_chunk(&[]).is_err());
    assert!(decode_row(&[]).is_err());
}
