//! Admission control for a thin pool: whether an operation may run
//! without eating into the reserve or overcommitting past the ratio.
//!
//! A thin pool that fills stops every volume in it (writes fail or hang,
//! depending on `--errorwhenfull`), so kiln refuses new commitments
//! before that point, while the pool still has room for the volumes it
//! already holds to grow into:
//!
//! - free data after the operation's immediate writes must stay at or
//!   above `reserve_data_percent` of the pool;
//! - free metadata must stay at or above `reserve_metadata_percent`;
//! - the provisioned sizes of all thin volumes in the pool, with the
//!   operation's addition, must stay at or under `max_overcommit_ratio`
//!   times the pool's data size.
//!
//! The checks are pure functions of a [`PoolState`] read just before the
//! operation, so they are tested without LVM.

/// What the pool looks like now.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolState {
    /// The thin pool's data size in bytes.
    pub data_bytes: u64,
    /// Percent of the data space in use.
    pub data_percent: f64,
    /// Percent of the metadata space in use.
    pub metadata_percent: f64,
    /// The sum of the virtual sizes of every thin volume in the pool
    /// (kiln's or not, snapshots included), in bytes.
    pub provisioned_bytes: u64,
}

/// The configured limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Percent of data space kept free.
    pub reserve_data_percent: f64,
    /// Percent of metadata space kept free.
    pub reserve_metadata_percent: f64,
    /// The most provisioned / data size may reach.
    pub max_overcommit_ratio: f64,
}

/// What an operation asks of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Virtual size it adds (a new volume's size, a grow's difference).
    pub adds_provisioned_bytes: u64,
    /// Data it writes at once (a new filesystem's metadata), an estimate.
    pub writes_bytes: u64,
}

/// An estimate of what `mkfs.ext4` with lazy initialisation writes into
/// a fresh volume of `size_bytes`: its superblocks, group descriptors and
/// bitmaps, well under 1/256 of the size, each write provisioning a whole
/// thin chunk.
pub fn mkfs_estimate(size_bytes: u64) -> u64 {
    size_bytes / 256
}

/// Whether `req` may run; `Err` says what is short, for the 507 body.
pub fn admit(limits: &Limits, state: &PoolState, req: &Request) -> Result<(), String> {
    let size = state.data_bytes as f64;
    if size <= 0.0 {
        return Err("the thin pool has no data space".to_string());
    }

    let used = size * state.data_percent / 100.0;
    let free_after = size - used - req.writes_bytes as f64;
    let reserve = size * limits.reserve_data_percent / 100.0;
    if free_after < reserve {
        return Err(format!(
            "data would be {:.1}% used, over the {:.1}% allowed (reserve_data_percent: {})",
            100.0 * (size - free_after) / size,
            100.0 - limits.reserve_data_percent,
            limits.reserve_data_percent
        ));
    }

    if 100.0 - state.metadata_percent < limits.reserve_metadata_percent {
        return Err(format!(
            "metadata is {:.1}% used, over the {:.1}% allowed (reserve_metadata_percent: {})",
            state.metadata_percent,
            100.0 - limits.reserve_metadata_percent,
            limits.reserve_metadata_percent
        ));
    }

    let provisioned = state
        .provisioned_bytes
        .saturating_add(req.adds_provisioned_bytes) as f64;
    let ratio = provisioned / size;
    if req.adds_provisioned_bytes > 0 && ratio > limits.max_overcommit_ratio {
        return Err(format!(
            "{} MiB would be provisioned on {} MiB of data space, a ratio of {ratio:.2} over \
             max_overcommit_ratio {}",
            provisioned as u64 >> 20,
            state.data_bytes >> 20,
            limits.max_overcommit_ratio
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn limits() -> Limits {
        Limits {
            reserve_data_percent: 10.0,
            reserve_metadata_percent: 10.0,
            max_overcommit_ratio: 2.0,
        }
    }

    fn state(data_percent: f64, metadata_percent: f64, provisioned_gib: u64) -> PoolState {
        PoolState {
            data_bytes: 10 * GIB,
            data_percent,
            metadata_percent,
            provisioned_bytes: provisioned_gib * GIB,
        }
    }

    fn req(adds_gib: u64, writes_mib: u64) -> Request {
        Request {
            adds_provisioned_bytes: adds_gib * GIB,
            writes_bytes: writes_mib << 20,
        }
    }

    #[test]
    fn a_roomy_pool_admits() {
        assert_eq!(admit(&limits(), &state(20.0, 5.0, 4), &req(4, 16)), Ok(()));
    }

    #[test]
    fn the_data_reserve_refuses_what_would_eat_into_it() {
        // 89% used + 1% written reaches exactly the 90% line: still allowed.
        assert_eq!(admit(&limits(), &state(89.0, 5.0, 1), &req(1, 102)), Ok(()));
        let err = admit(&limits(), &state(89.0, 5.0, 1), &req(1, 200)).expect_err("over");
        assert!(err.contains("reserve_data_percent"), "{err}");
    }

    #[test]
    fn the_metadata_reserve_refuses() {
        let err = admit(&limits(), &state(10.0, 91.0, 1), &req(1, 0)).expect_err("over");
        assert!(err.contains("metadata"), "{err}");
    }

    #[test]
    fn overcommit_past_the_ratio_is_refused_but_not_an_operation_adding_nothing() {
        assert_eq!(admit(&limits(), &state(10.0, 5.0, 16), &req(4, 0)), Ok(()));
        let err = admit(&limits(), &state(10.0, 5.0, 16), &req(5, 0)).expect_err("over");
        assert!(err.contains("max_overcommit_ratio"), "{err}");
        // A pool already past the ratio (the ratio was lowered) still lets
        // a clone-less, size-less operation through.
        assert_eq!(admit(&limits(), &state(10.0, 5.0, 30), &req(0, 0)), Ok(()));
    }
}
