//! Pinning capture threads to CPUs (core_affinity), and parsing CPU lists
//! written the way the kernel prints them (`0-3,6`).

use std::fmt;

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> Result<(), PinError> {
    let available = core_affinity::get_core_ids().unwrap_or_default();
    if !available.iter().any(|core| core.id == cpu) {
        return Err(PinError {
            cpu,
            available: available.len(),
        });
    }
    if core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        Ok(())
    } else {
        Err(PinError {
            cpu,
            available: available.len(),
        })
    }
}

/// A thread could not be pinned to a CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinError {
    /// The CPU asked for.
    pub cpu: usize,
    /// How many CPUs this process may run on.
    pub available: usize,
}

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot pin to CPU {}: this process may run on {} CPUs",
            self.cpu, self.available
        )
    }
}

impl std::error::Error for PinError {}

/// Parses a CPU list such as `0`, `0,2` or `0-3,6`, in the order written.
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("{s:?} is not a CPU number"))
        };
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (number(first)?, number(last)?);
                if first > last || last - first > 4096 {
                    return Err(format!("{part:?} is not an increasing CPU range"));
                }
                cpus.extend(first..=last);
            }
            None => cpus.push(number(part)?),
        }
    }
    if cpus.is_empty() {
        return Err("the CPU list is empty".into());
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_ranges() {
        assert_eq!(parse_cpu_list("0"), Ok(vec![0]));
        assert_eq!(parse_cpu_list("1,0"), Ok(vec![1, 0]));
        assert_eq!(parse_cpu_list("0-2,5"), Ok(vec![0, 1, 2, 5]));
        for bad in ["", "a", "3-1", "1-", "-1", "0-99999"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pinning_to_a_missing_cpu_is_an_error() {
        assert!(pin_current_thread(100_000).is_err());
        assert!(pin_current_thread(0).is_ok());
    }
}
