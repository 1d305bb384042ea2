//! `tresor audit` and `tresor audit verify`.

use crate::exit::CliError;
use crate::*;

use tresor::model::AuditOp;
use tresor::vault::format_time;

/// `tresor audit verify`: proves the chains and every value whole.
pub(crate) fn verify(ctx: &mut Ctx) -> Result<(), CliError> {
    let r = call(ctx, tresor_wire::Verify)?;
    {
        outln!(
            "audit trail verified: {} in {}, {}, {}, chains unbroken",
            plural(r.audit_records as usize, "entry"),
            plural(r.audit_lanes as usize, "lane"),
            plural(r.commits as usize, "commit"),
            plural(r.anchors as usize, "anchor"),
        );
        if r.snapshot > 0 {
            outln!("snapshot at commit {} matches the log replayed up to it", r.snapshot);
        }
        if r.torn_audit_entries > 0 {
            eprintln!(
                "tresor: warning: {} audit entries at the end of a lane do not authenticate, past every anchor and \
                 pin: what a power failure leaves of a machine's unsynced entries (that machine removes them at \
                 its next unlock)",
                r.torn_audit_entries
            );
        }
        if r.damaged.is_empty() {
            outln!(
                "values verified: {} in {}, every one authentic",
                plural(r.values as usize, "version"),
                plural(r.blobs as usize, "blob")
            );
            return Ok(());
        }
        for d in &r.damaged {
            outln!("DAMAGED {} version {}: {} ({})", d.path, d.version, d.detail, d.object);
        }
        Err(CliError::from_category(
            tresor::Category::Integrity,
            format!(
                "{} of {} versions have a missing or damaged value; the chains themselves are unbroken",
                r.damaged.len(),
                r.values
            ),
        ))
    }
}

/// `tresor audit`: the audit trail, every lane, oldest record first.
pub(crate) fn show(ctx: &mut Ctx, json: bool) -> Result<(), CliError> {
    let records = call(ctx, tresor_wire::ReadAudit)?;
    {
        // Operations under their current names, also in trails written before them.
        let op_name = |op: &str| AuditOp::parse(op).map_or_else(|| op.to_string(), |o| o.to_string());
        let outcome_text = |outcome: &tresor::model::Outcome| match outcome {
            tresor::model::Outcome::Ok => "ok".to_string(),
            tresor::model::Outcome::Failed(m) => format!("failed: {m}"),
            tresor::model::Outcome::Denied(m) => format!("denied: {m}"),
        };
        if json {
            let rows: Vec<_> = records
                .iter()
                .map(|t| {
                    let r = &t.record;
                    serde_json::json!({
                        "lane": t.lane, "seq": t.seq, "time": format_time(r.time_ms), "time_ms": r.time_ms,
                        "actor": r.actor, "op": op_name(&r.op), "path": r.path, "detail": r.detail,
                        "outcome": outcome_text(&r.outcome),
                    })
                })
                .collect();
            return print_json(&rows);
        }
        for t in records {
            // Entries of the main lane by number; of a machine's own lane, by the first
            // digits of its id and the number.
            let at = match t.lane.as_str() {
                "main" => t.seq.to_string(),
                lane => format!("{}:{}", &lane[..lane.len().min(6)], t.seq),
            };
            let r = t.record;
            let outcome = outcome_text(&r.outcome);
            let detail = r.detail.map(|d| format!(" ({d})")).unwrap_or_default();
            outln!(
                "{at:>8}  {}  {}  {} {}  {outcome}{detail}",
                format_time(r.time_ms),
                r.actor,
                op_name(&r.op),
                r.path.unwrap_or_else(|| "-".into())
            );
        }
        Ok(())
    }
}
