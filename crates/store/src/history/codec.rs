//! The compact binary forms of metric history (pure, no I/O).
//!
//! - A **row** is one sample of one node: `(series index, value)` pairs, the
//!   index into the node's dictionary of series names (`history_series`),
//!   each value in the fewest bytes that keep it exactly (zero, an integer
//!   varint, an `f32`, or the whole `f64`). Rows are what the writer appends.
//! - A **chunk** is a window of a node's history: one timestamp column,
//!   delta-of-delta encoded, and per series a presence map and one or four
//!   value columns (a raw value, or a bucket's min, max, sum and count),
//!   XOR-encoded as in Facebook's Gorilla and Prometheus' chunks. Each
//!   series carries its byte length, so a query decodes only the series it
//!   asks for.
//!
//! Decoding never panics: a damaged blob is a [`CodecError`].

use std::collections::BTreeSet;

/// A value's columns: `[value, 0, 0, 0]` for raw points, `[min, max, sum,
/// count]` for rollup buckets.
pub type Columns = [f64; 4];

/// One series of a chunk: its dictionary index and its points in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    pub idx: u32,
    pub points: Vec<(i64, Columns)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("damaged history blob: {0}")]
pub struct CodecError(pub &'static str);

type Result<T> = std::result::Result<T, CodecError>;

const ROW_VERSION: u8 = 1;
const CHUNK_VERSION: u8 = 1;
/// More entries than any sample or window has; a count past it is damage.
const MAX_COUNT: u64 = 1 << 24;

// ---- rows ----------------------------------------------------------------

const KIND_ZERO: u64 = 0;
const KIND_INT: u64 = 1;
const KIND_F32: u64 = 2;
const KIND_F64: u64 = 3;

/// Encodes one sample. `values` need not be sorted; of repeated indexes the
/// last value wins (as a repeated write replaced the earlier one).
pub fn encode_row(values: &[(u32, f64)]) -> Vec<u8> {
    let mut sorted: Vec<(u32, f64)> = Vec::with_capacity(values.len());
    for &(idx, v) in values {
        sorted.push((idx, v));
    }
    // Stable: equal indexes keep their order, so the last is kept below.
    sorted.sort_by_key(|(idx, _)| *idx);
    let mut deduped: Vec<(u32, f64)> = Vec::with_capacity(sorted.len());
    for (idx, v) in sorted {
        match deduped.last_mut() {
            Some(last) if last.0 == idx => last.1 = v,
            _ => deduped.push((idx, v)),
        }
    }
    let mut out = Vec::with_capacity(2 + deduped.len() * 5);
    out.push(ROW_VERSION);
    put_varint(&mut out, deduped.len() as u64);
    let mut prev = 0u32;
    for (i, (idx, v)) in deduped.into_iter().enumerate() {
        let delta = if i == 0 { idx } else { idx - prev };
        prev = idx;
        let head = u64::from(delta) << 2;
        if v.to_bits() == 0 {
            put_varint(&mut out, head | KIND_ZERO);
        } else if v.fract() == 0.0 && v.abs() < 9.0e15 && v != 0.0 {
            // Whole numbers (byte counts, error counters) below 2^53; not -0.0.
            put_varint(&mut out, head | KIND_INT);
            put_varint(&mut out, zigzag(v as i64));
        } else if (v as f32 as f64).to_bits() == v.to_bits() {
            put_varint(&mut out, head | KIND_F32);
            out.extend_from_slice(&(v as f32).to_le_bytes());
        } else {
            put_varint(&mut out, head | KIND_F64);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// Decodes a row into `(index, value)` pairs, indexes ascending.
pub fn decode_row(blob: &[u8]) -> Result<Vec<(u32, f64)>> {
    let mut out = Vec::new();
    walk_row(blob, |idx, v| {
        out.push((idx, v));
        true
    })?;
    Ok(out)
}

/// The value of series `want` in a row, if it has one.
pub fn row_value(blob: &[u8], want: u32) -> Result<Option<f64>> {
    let mut found = None;
    walk_row(blob, |idx, v| {
        if idx == want {
            found = Some(v);
        }
        idx < want
    })?;
    Ok(found)
}

/// Calls `each` for every entry until it returns false.
fn walk_row(blob: &[u8], mut each: impl FnMut(u32, f64) -> bool) -> Result<()> {
    let mut r = Bytes { data: blob, pos: 0 };
    if r.byte()? != ROW_VERSION {
        return Err(CodecError("unknown row version"));
    }
    let n = r.count()?;
    let mut idx: u32 = 0;
    for i in 0..n {
        let head = r.varint()?;
        let delta = u32::try_from(head >> 2).map_err(|_| CodecError("series index too large"))?;
        if i > 0 && delta == 0 {
            return Err(CodecError("repeated series index"));
        }
        idx = idx
            .checked_add(delta)
            .ok_or(CodecError("series index too large"))?;
        let v = match head & 3 {
            KIND_ZERO => 0.0,
            KIND_INT => unzigzag(r.varint()?) as f64,
            KIND_F32 => f64::from(f32::from_le_bytes(r.array()?)),
            _ => f64::from_le_bytes(r.array()?),
        };
        if !each(idx, v) {
            return Ok(());
        }
    }
    if r.pos != blob.len() {
        return Err(CodecError("trailing bytes after the row"));
    }
    Ok(())
}

// ---- chunks --------------------------------------------------------------

/// Encodes series (each sorted by time, unique times) with `columns` value
/// columns each (1 or 4). An empty input gives an empty chunk.
pub fn encode_chunk(columns: u8, series: &[SeriesData]) -> Vec<u8> {
    let columns = columns.clamp(1, 4);
    let times: Vec<i64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut out = vec![CHUNK_VERSION, columns];
    put_varint(&mut out, times.len() as u64);
    let mut ts = BitWriter::default();
    let (mut prev, mut prev_delta) = (0i64, 0i64);
    for (i, &t) in times.iter().enumerate() {
        if i == 0 {
            ts.bits(t as u64, 64);
        } else {
            let delta = t.wrapping_sub(prev);
            put_dod(&mut ts, delta.wrapping_sub(prev_delta));
            prev_delta = delta;
        }
        prev = t;
    }
    put_blob(&mut out, &ts.finish());
    put_varint(&mut out, series.len() as u64);
    let mut sorted: Vec<&SeriesData> = series.iter().collect();
    sorted.sort_by_key(|s| s.idx);
    for s in sorted {
        put_varint(&mut out, u64::from(s.idx));
        let mut w = BitWriter::default();
        if s.points.len() == times.len() {
            w.bits(1, 1);
        } else {
            w.bits(0, 1);
            let mut at = s.points.iter().map(|p| p.0).peekable();
            for t in &times {
                let here = at.peek() == Some(t);
                if here {
                    at.next();
                }
                w.bits(u64::from(here), 1);
            }
        }
        for c in 0..usize::from(columns) {
            let mut x = XorWriter::default();
            for (_, v) in &s.points {
                x.put(&mut w, v[c]);
            }
        }
        put_blob(&mut out, &w.finish());
    }
    out
}

/// A chunk whose timestamps are decoded and whose series are located but
/// not yet decoded.
#[derive(Debug)]
pub struct Chunk<'a> {
    columns: u8,
    times: Vec<i64>,
    /// (index, payload) per series, indexes ascending.
    series: Vec<(u32, &'a [u8])>,
}

impl<'a> Chunk<'a> {
    pub fn parse(blob: &'a [u8]) -> Result<Chunk<'a>> {
        let mut r = Bytes { data: blob, pos: 0 };
        if r.byte()? != CHUNK_VERSION {
            return Err(CodecError("unknown chunk version"));
        }
        let columns = r.byte()?;
        if !(1..=4).contains(&columns) {
            return Err(CodecError("bad column count"));
        }
        let n = r.count()?;
        let mut bits = BitReader::new(r.blob()?);
        let mut times = Vec::with_capacity(n.min(blob.len() * 8));
        let (mut prev, mut prev_delta) = (0i64, 0i64);
        for i in 0..n {
            let t = if i == 0 {
                bits.bits(64)? as i64
            } else {
                let delta = prev_delta.wrapping_add(get_dod(&mut bits)?);
                prev_delta = delta;
                let t = prev.wrapping_add(delta);
                if t <= prev {
                    return Err(CodecError("timestamps out of order"));
                }
                t
            };
            times.push(t);
            prev = t;
        }
        let s = r.count()?;
        let mut series = Vec::with_capacity(s.min(blob.len()));
        for _ in 0..s {
            let idx =
                u32::try_from(r.varint()?).map_err(|_| CodecError("series index too large"))?;
            if series.last().is_some_and(|(last, _)| *last >= idx) {
                return Err(CodecError("series out of order"));
            }
            series.push((idx, r.blob()?));
        }
        if r.pos != blob.len() {
            return Err(CodecError("trailing bytes after the chunk"));
        }
        Ok(Chunk {
            columns,
            times,
            series,
        })
    }

    pub fn columns(&self) -> u8 {
        self.columns
    }

    pub fn times(&self) -> &[i64] {
        &self.times
    }

    /// The indexes of the series this chunk holds.
    pub fn indexes(&self) -> impl Iterator<Item = u32> + '_ {
        self.series.iter().map(|(idx, _)| *idx)
    }

    /// The points of series `idx`, or `None` when the chunk has none.
    pub fn series(&self, idx: u32) -> Result<Option<Vec<(i64, Columns)>>> {
        match self.series.binary_search_by_key(&idx, |(i, _)| *i) {
            Ok(at) => self.decode(self.series[at].1).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Every series, decoded.
    pub fn all(&self) -> Result<Vec<SeriesData>> {
        self.series
            .iter()
            .map(|(idx, payload)| {
                Ok(SeriesData {
                    idx: *idx,
                    points: self.decode(payload)?,
                })
            })
            .collect()
    }

    fn decode(&self, payload: &[u8]) -> Result<Vec<(i64, Columns)>> {
        let mut r = BitReader::new(payload);
        let times: Vec<i64> = if r.bits(1)? == 1 {
            self.times.clone()
        } else {
            let mut present = Vec::new();
            for t in &self.times {
                if r.bits(1)? == 1 {
                    present.push(*t);
                }
            }
            present
        };
        let mut points: Vec<(i64, Columns)> = times.iter().map(|t| (*t, [0.0; 4])).collect();
        for c in 0..usize::from(self.columns) {
            let mut x = XorReader::default();
            for p in points.iter_mut() {
                p.1[c] = x.get(&mut r)?;
            }
        }
        Ok(points)
    }
}

/// Decodes a whole chunk.
pub fn decode_chunk(blob: &[u8]) -> Result<(u8, Vec<SeriesData>)> {
    let chunk = Chunk::parse(blob)?;
    Ok((chunk.columns, chunk.all()?))
}

// ---- timestamps: delta of delta, Prometheus' buckets ----------------------

fn put_dod(w: &mut BitWriter, dod: i64) {
    let fits = |n: u32| (-(1i64 << (n - 1))..(1i64 << (n - 1))).contains(&dod);
    if dod == 0 {
        w.bits(0, 1);
    } else if fits(14) {
        w.bits(0b10, 2);
        w.bits(dod as u64, 14);
    } else if fits(17) {
        w.bits(0b110, 3);
        w.bits(dod as u64, 17);
    } else if fits(20) {
        w.bits(0b1110, 4);
        w.bits(dod as u64, 20);
    } else {
        w.bits(0b1111, 4);
        w.bits(dod as u64, 64);
    }
}

fn get_dod(r: &mut BitReader) -> Result<i64> {
    let mut ones = 0;
    while ones < 4 && r.bits(1)? == 1 {
        ones += 1;
    }
    let n = match ones {
        0 => return Ok(0),
        1 => 14,
        2 => 17,
        3 => 20,
        _ => 64,
    };
    let v = r.bits(n)?;
    // Sign-extend the n-bit value.
    let shift = 64 - n;
    Ok(((v << shift) as i64) >> shift)
}

// ---- values: Gorilla XOR ---------------------------------------------------

#[derive(Default)]
struct XorWriter {
    prev: Option<u64>,
    /// The current window of meaningful bits: (leading, trailing) zeros.
    window: Option<(u32, u32)>,
}

impl XorWriter {
    fn put(&mut self, w: &mut BitWriter, v: f64) {
        let bits = v.to_bits();
        let Some(prev) = self.prev.replace(bits) else {
            w.bits(bits, 64);
            return;
        };
        let x = bits ^ prev;
        if x == 0 {
            w.bits(0, 1);
            return;
        }
        let lead = x.leading_zeros().min(31);
        let trail = x.trailing_zeros();
        match self.window {
            Some((l, t)) if lead >= l && trail >= t => {
                w.bits(0b10, 2);
                w.bits(x >> t, 64 - l - t);
            }
            _ => {
                let sig = 64 - lead - trail;
                w.bits(0b11, 2);
                w.bits(u64::from(lead), 5);
                w.bits(u64::from(sig - 1), 6);
                w.bits(x >> trail, sig);
                self.window = Some((lead, trail));
            }
        }
    }
}

#[derive(Default)]
struct XorReader {
    prev: Option<u64>,
    window: Option<(u32, u32)>,
}

impl XorReader {
    fn get(&mut self, r: &mut BitReader) -> Result<f64> {
        let Some(prev) = self.prev else {
            let bits = r.bits(64)?;
            self.prev = Some(bits);
            return Ok(f64::from_bits(bits));
        };
        if r.bits(1)? == 0 {
            return Ok(f64::from_bits(prev));
        }
        let x = if r.bits(1)? == 0 {
            let (l, t) = self
                .window
                .ok_or(CodecError("value reuses a window it never set"))?;
            r.bits(64 - l - t)? << t
        } else {
            let lead = r.bits(5)? as u32;
            let sig = r.bits(6)? as u32 + 1;
            if lead + sig > 64 {
                return Err(CodecError("value window past 64 bits"));
            }
            let trail = 64 - lead - sig;
            self.window = Some((lead, trail));
            r.bits(sig)? << trail
        };
        let bits = prev ^ x;
        self.prev = Some(bits);
        Ok(f64::from_bits(bits))
    }
}

// ---- bits and bytes ----------------------------------------------------------

#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    /// Bits used in the last byte (0 = a new byte is needed).
    used: u32,
}

impl BitWriter {
    /// Appends the low `n` bits of `v`, most significant first.
    fn bits(&mut self, v: u64, n: u32) {
        let mut left = n;
        while left > 0 {
            if self.used == 0 {
                self.out.push(0);
            }
            let room = 8 - self.used;
            let take = room.min(left);
            let chunk = ((v >> (left - take)) & ((1u64 << take) - 1)) as u8;
            let last = self.out.len() - 1;
            self.out[last] |= chunk << (room - take);
            self.used = (self.used + take) % 8;
            left -= take;
        }
    }

    fn finish(self) -> Vec<u8> {
        self.out
    }
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    fn bits(&mut self, n: u32) -> Result<u64> {
        if n > 64 || self.pos + n as usize > self.data.len() * 8 {
            return Err(CodecError("bit stream ends early"));
        }
        let mut v: u64 = 0;
        let mut left = n;
        while left > 0 {
            let byte = self.data[self.pos / 8];
            let offset = (self.pos % 8) as u32;
            let avail = 8 - offset;
            let take = avail.min(left);
            let chunk = (byte >> (avail - take)) & (((1u16 << take) - 1) as u8);
            v = (v << take) | u64::from(chunk);
            self.pos += take as usize;
            left -= take;
        }
        Ok(v)
    }
}

struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self.data.get(self.pos).ok_or(CodecError("ends early"))?;
        self.pos += 1;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let end = self.pos.checked_add(N).ok_or(CodecError("ends early"))?;
        let bytes = self
            .data
            .get(self.pos..end)
            .ok_or(CodecError("ends early"))?;
        self.pos = end;
        bytes.try_into().map_err(|_| CodecError("ends early"))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError("varint too long"))
    }

    fn count(&mut self) -> Result<usize> {
        let n = self.varint()?;
        if n > MAX_COUNT {
            return Err(CodecError("count too large"));
        }
        Ok(n as usize)
    }

    fn blob(&mut self) -> Result<&'a [u8]> {
        let n = usize::try_from(self.varint()?).map_err(|_| CodecError("length too large"))?;
        let end = self.pos.checked_add(n).ok_or(CodecError("ends early"))?;
        let bytes = self
            .data
            .get(self.pos..end)
            .ok_or(CodecError("ends early"))?;
        self.pos = end;
        Ok(bytes)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_blob(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests;
