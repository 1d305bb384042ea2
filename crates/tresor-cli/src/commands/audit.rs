//! `tresor audit` and `tresor audit verify`.

use crate::exit::CliError;
use crate::*;

use tresor::model::AuditOp;
use tresor::vault::format_time;

/// `tresor audit verify`: proves the chains and every value whole.
pub(crate) fn verify(ctx: &mut Ctx, json: bool) -> Result<(), CliError> {
    let r = call(ctx, tresor_wire::Verify)?;
    if json {
        print_json(&r)?;
        if r.damaged.is_empty() {
            return Ok(());
        }
        return Err(CliError::from_category(
            tresor::Category::Integrity,
            format!("{} of {} versions have a missing or damaged value", r.damaged.len(), r.values),
        ));
    }
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
            errln!(
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
            outln!(
                "DAMAGED {} version {}: {} ({})",
                crate::shown::text(&d.path),
                d.version,
                d.detail,
                d.object
            );
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
pub(crate) fn show(ctx: &mut Ctx, filter: crate::cli::AuditFilterArgs, json: bool) -> Result<(), CliError> {
    let now = tresor::model::now_ms();
    // An operation no record can name would show nothing, as if nothing had happened.
    if let Some(op) = &filter.op
        && tresor::model::AuditOp::parse(op).is_none()
    {
        let known: Vec<&str> = tresor::model::AuditOp::ALL.iter().map(|o| o.as_str()).collect();
        return Err(CliError::input(format!("--op {op}: no such operation (one of: {})", known.join(", "))));
    }
    let filter = tresor::model::AuditFilter {
        path: filter.path,
        actor: filter.actor,
        op: filter.op,
        since_ms: filter.since.as_deref().map(|w| when(w, now, "--since", false)).transpose()?,
        until_ms: filter.until.as_deref().map(|w| when(w, now, "--until", true)).transpose()?,
        limit: filter.limit,
    };
    let records = filter.apply(call(ctx, tresor_wire::ReadAudit)?);
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
            let detail = r.detail.map(|d| format!(" ({})", crate::shown::text(&d))).unwrap_or_default();
            outln!(
                "{at:>8}  {}  {}  {} {}  {}{detail}",
                format_time(r.time_ms),
                crate::shown::text(&r.actor),
                op_name(&r.op),
                crate::shown::text(r.path.as_deref().unwrap_or("-")),
                crate::shown::text(&outcome)
            );
        }
        Ok(())
    }
}

/// A moment as `--since`/`--until` take it: RFC 3339, a date (UTC), or a time ago. As an
/// `end` (`--until`), a time given to the second takes in that whole second, and a date that
/// whole day, as they are shown.
fn when(text: &str, now_ms: u64, flag: &str, end: bool) -> Result<u64, CliError> {
    let ms = |t: chrono::DateTime<chrono::Utc>| u64::try_from(t.timestamp_millis()).unwrap_or(0);
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        let whole_second = end && t.timestamp_subsec_millis() == 0 && !text.contains('.');
        return Ok(ms(t.with_timezone(&chrono::Utc)) + if whole_second { 999 } else { 0 });
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(ms(day.and_time(chrono::NaiveTime::MIN).and_utc()) + if end { 86_399_999 } else { 0 });
    }
    match crate::config::parse_duration_or_zero(text) {
        Ok(ago) => Ok(now_ms.saturating_sub(u64::try_from(ago.as_millis()).unwrap_or(u64::MAX))),
        Err(_) => Err(CliError::input(format!(
            "{flag} {text}: give RFC 3339 (2026-12-01T08:00:00Z), a date (2026-12-01) or a time ago (2h, 7d)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::when;

    #[test]
    fn moments_are_read_in_three_forms() {
        let now = 1_780_000_000_000;
        assert_eq!(when("2026-12-01T08:00:00Z", now, "--since", false).unwrap(), 1_796_112_000_000);
        assert_eq!(when("2026-12-01T09:00:00+01:00", now, "--since", false).unwrap(), 1_796_112_000_000);
        assert_eq!(when("2h", now, "--since", false).unwrap(), now - 7_200_000);
        assert_eq!(when("1970-01-02", now, "--since", false).unwrap(), 86_400_000);
        assert_eq!(when("yesterday", now, "--since", false).unwrap_err().code, 7);
        // Regression (new-user review): --until left out the second and the day it named.
        assert_eq!(when("2026-12-01T08:00:00Z", now, "--until", true).unwrap(), 1_796_112_000_999);
        assert_eq!(when("2026-12-01T08:00:00.250Z", now, "--until", true).unwrap(), 1_796_112_000_250);
        assert_eq!(when("1970-01-02", now, "--until", true).unwrap(), 2 * 86_400_000 - 1);
    }
}
