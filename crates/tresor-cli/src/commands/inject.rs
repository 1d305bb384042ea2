//! `tresor inject` (a template with its `{{ tresor://… }}` placeholders filled in) and
//! `tresor read` (what one reference names, as `get` prints a value).

use crate::exit::CliError;
use crate::refs::{self, Reference};
use crate::resolve::Resolver;
use crate::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// `tresor inject`: reads the template (a file, or stdin for none or `-`), checks every
/// placeholder, reads every value, then writes the result to stdout or to a new file (0600).
pub(crate) fn inject(
    ctx: &mut Ctx,
    input: Option<PathBuf>,
    output: Option<PathBuf>,
    force: bool,
    stdin: impl Read,
) -> Result<(), CliError> {
    let output = output.filter(|o| o.as_os_str() != "-");
    // Refused before the vault is touched.
    if let Some(out) = &output
        && !force
        && std::fs::symlink_metadata(out).is_ok()
    {
        return Err(CliError::input(format!("{} exists: give --force to replace it", out.display())));
    }
    let template = read_template(input.as_deref(), stdin)?;
    let shown =
        input.as_deref().filter(|i| i.as_os_str() != "-").map_or("stdin".into(), |i| i.display().to_string());
    let places = refs::placeholders(&template).map_err(|e| CliError::input(format!("{shown}: {e}")))?;
    let mut resolver = Resolver::new(ctx)?;
    // Each reference is read once (one read, one audit record), however often the template
    // names it, and its value is held once (not copied per placeholder: a small template naming
    // a large value many times took gigabytes); lines are counted as the placeholders come, not
    // from the start each time (a template of many placeholders took quadratic time).
    let mut values: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut which = Vec::with_capacity(places.len());
    let mut read: std::collections::HashMap<&refs::Reference, usize> = std::collections::HashMap::new();
    let (mut line, mut counted) = (1, 0);
    for (range, reference) in &places {
        line += template[counted..range.start].iter().filter(|b| **b == b'\n').count();
        counted = range.start;
        let index = match read.get(reference) {
            Some(&first) => first,
            None => {
                let value =
                    resolver.read(reference).map_err(|e| e.context(&format!("{shown}: line {line}")))?;
                values.push(value);
                read.insert(reference, values.len() - 1);
                values.len() - 1
            }
        };
        which.push(index);
    }
    resolver.finish();
    let per_place: Vec<&[u8]> = which.iter().map(|i| values[*i].as_slice()).collect();
    let size = refs::rendered_len(&template, &places, &per_place);
    if size > MAX_RENDERED {
        return Err(CliError::input(format!(
            "{shown}: filled in, the template would be {} MiB, more than inject writes ({} MiB)",
            size >> 20,
            MAX_RENDERED >> 20
        )));
    }
    let rendered = refs::render(&template, &places, &per_place);
    match output {
        None => outln_bytes(&rendered),
        Some(out) if force => write_private_file(&out, &rendered),
        Some(out) => write_new_private_file(&out, &rendered),
    }
}

fn read_template(input: Option<&Path>, stdin: impl Read) -> Result<Zeroizing<Vec<u8>>, CliError> {
    crate::input::read_limited(crate::input::Source::of(input), stdin, MAX_TEMPLATE, "the largest template")
}

/// The largest template `inject` reads: configuration files are far smaller.
const MAX_TEMPLATE: usize = 64 << 20;

/// The largest file `inject` writes (the template with its values in: held whole in memory).
const MAX_RENDERED: usize = 256 << 20;

/// `tresor read`: what one reference (or plain path) names, exact bytes on stdout.
pub(crate) fn read(ctx: &mut Ctx, reference: String, json: bool) -> Result<(), CliError> {
    let reference = Reference::parse_or_path(&reference).map_err(CliError::input)?;
    let mut resolver = Resolver::new(ctx)?;
    let value = resolver.read(&reference)?;
    resolver.finish();
    if json {
        return crate::commands::secrets::print_values_json(&[(&reference, value.as_slice())], false);
    }
    outln_bytes(&value)
}
