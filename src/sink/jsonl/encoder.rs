//! A batch as JSON lines: one serialised [`Record`](crate::sink::Record) per line.

use crate::sink::record::Batch;

/// The lines for a batch, each ending in `\n`.
pub(crate) fn encode(batch: &Batch) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(batch.len() * 300);
    for r in batch {
        serde_json::to_writer(&mut out, &**r).map_err(|e| e.to_string())?;
        out.push(b'\n');
    }
    Ok(out)
}
