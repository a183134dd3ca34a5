//! A model test of the volume service: random sequences of volume and
//! sandbox operations run against the service (over `MemoryStore`) and
//! against a small model of the rules; every result and the whole state
//! after every step must agree.
//!
//! Some steps arm a backend failure: the next time the service reaches
//! that backend call it fails, and the model expects the operation to
//! fail with the backend's kind and change nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use kiln_core::model::{SandboxState, VolumeStatus};
use kiln_core::ErrorKind;
use proptest::prelude::*;

/// The pool's size and each owner's quota, small enough that random sizes
/// hit both limits.
const POOL: u64 = 50;
const QUOTA: u64 = 100;
const VOLUMES: usize = 4;
const SANDBOXES: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Create(usize, u64),
    Delete(usize),
    Resize(usize, u64),
    Clone(usize, usize),
    /// A sandbox with its volumes (`true`: read-only), mounted at
    /// `/m0`, `/m1`, ... in order.
    CreateSandbox(usize, Vec<(usize, bool)>),
    Stop(usize),
    Start(usize),
    Destroy(usize),
    /// Another owner tries to delete one of ours.
    ForeignDelete(usize),
    /// The next call of this backend method fails.
    Fail(&'static str),
}

/// The backend calls a step can be made to fail, one per volume operation.
const FAILABLE: [&str; 4] = ["create", "grow", "clone_volume", "delete"];

fn op() -> impl Strategy<Value = Op> {
    let vol = 0..VOLUMES;
    let sb = 0..SANDBOXES;
    let size = 1..=POOL + 10;
    prop_oneof![
        3 => (vol.clone(), size.clone()).prop_map(|(v, s)| Op::Create(v, s)),
        2 => vol.clone().prop_map(Op::Delete),
        2 => (vol.clone(), size).prop_map(|(v, s)| Op::Resize(v, s)),
        2 => (vol.clone(), vol.clone()).prop_map(|(a, b)| Op::Clone(a, b)),
        3 => (sb.clone(), prop::collection::vec((vol.clone(), any::<bool>()), 0..=2))
            .prop_map(|(s, v)| Op::CreateSandbox(s, v)),
        2 => sb.clone().prop_map(Op::Stop),
        2 => sb.clone().prop_map(Op::Start),
        1 => sb.prop_map(Op::Destroy),
        1 => vol.prop_map(Op::ForeignDelete),
        1 => prop::sample::select(FAILABLE.to_vec()).prop_map(Op::Fail),
    ]
}

fn vol_name(i: usize) -> String {
    format!("v{i}")
}

fn sb_name(i: usize) -> String {
    format!("s{i}")
}

#[derive(Debug, Default, Clone)]
struct ModelSandbox {
    running: bool,
    /// (volume, read_only), in order; mount `/m{i}`.
    list: Vec<(String, bool)>,
}

/// The rules, as plainly as they can be said.
#[derive(Debug, Default)]
struct Model {
    volumes: BTreeMap<String, u64>,
    sandboxes: BTreeMap<String, ModelSandbox>,
    /// Backend calls armed to fail.
    armed: BTreeSet<&'static str>,
}

type Expect = Result<(), ErrorKind>;

impl Model {
    /// (sandbox, read_only) of every attachment of `volume`.
    fn attachments(&self, volume: &str) -> Vec<(String, bool)> {
        self.sandboxes
            .iter()
            .filter(|(_, s)| s.running)
            .flat_map(|(name, s)| {
                s.list
                    .iter()
                    .filter(|(v, _)| v == volume)
                    .map(|(_, ro)| (name.clone(), *ro))
            })
            .collect()
    }

    /// The service has passed every check and calls the backend's
    /// `method`: an armed failure fires here.
    fn backend(&mut self, method: &'static str) -> Expect {
        if self.armed.remove(method) {
            return Err(ErrorKind::Internal);
        }
        Ok(())
    }

    fn used(&self) -> u64 {
        self.volumes.values().sum()
    }

    /// Whether `list` can be attached now (all of it).
    fn can_attach(&self, list: &[(String, bool)]) -> Expect {
        for (v, ro) in list {
            if !self.volumes.contains_key(v) {
                return Err(ErrorKind::NotFound);
            }
            let at = self.attachments(v);
            if (!ro && !at.is_empty()) || (*ro && at.iter().any(|(_, r)| !r)) {
                return Err(ErrorKind::Conflict);
            }
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Expect {
        match op {
            Op::Create(v, size) => {
                let v = vol_name(*v);
                if *size > POOL {
                    return Err(ErrorKind::InvalidInput);
                }
                if self.volumes.contains_key(&v) {
                    return Err(ErrorKind::AlreadyExists);
                }
                if self.used() + size > QUOTA {
                    return Err(ErrorKind::QuotaExceeded);
                }
                self.backend("create")?;
                self.volumes.insert(v, *size);
            }
            Op::Delete(v) => {
                let v = vol_name(*v);
                if !self.volumes.contains_key(&v) {
                    return Err(ErrorKind::NotFound);
                }
                if !self.attachments(&v).is_empty() {
                    return Err(ErrorKind::Conflict);
                }
                self.backend("delete")?;
                self.volumes.remove(&v);
            }
            Op::Resize(v, size) => {
                let v = vol_name(*v);
                let Some(&current) = self.volumes.get(&v) else {
                    return Err(ErrorKind::NotFound);
                };
                if *size > POOL {
                    return Err(ErrorKind::InvalidInput);
                }
                if !self.attachments(&v).is_empty() {
                    return Err(ErrorKind::Conflict);
                }
                if *size <= current {
                    return Err(ErrorKind::InvalidInput);
                }
                if self.used() - current + size > QUOTA {
                    return Err(ErrorKind::QuotaExceeded);
                }
                self.backend("grow")?;
                self.volumes.insert(v, *size);
            }
            Op::Clone(src, dst) => {
                let (src, dst) = (vol_name(*src), vol_name(*dst));
                let Some(&size) = self.volumes.get(&src) else {
                    return Err(ErrorKind::NotFound);
                };
                if !self.attachments(&src).is_empty() {
                    return Err(ErrorKind::Conflict);
                }
                if self.volumes.contains_key(&dst) {
                    return Err(ErrorKind::AlreadyExists);
                }
                if self.used() + size > QUOTA {
                    return Err(ErrorKind::QuotaExceeded);
                }
                self.backend("clone_volume")?;
                self.volumes.insert(dst, size);
            }
            Op::CreateSandbox(s, vols) => {
                let list: Vec<(String, bool)> =
                    vols.iter().map(|&(v, ro)| (vol_name(v), ro)).collect();
                let mut names: Vec<&String> = list.iter().map(|(v, _)| v).collect();
                names.sort();
                names.dedup();
                if names.len() != list.len() {
                    return Err(ErrorKind::InvalidInput);
                }
                if self.sandboxes.contains_key(&sb_name(*s)) {
                    return Err(ErrorKind::AlreadyExists);
                }
                self.can_attach(&list)?;
                self.sandboxes.insert(
                    sb_name(*s),
                    ModelSandbox {
                        running: true,
                        list,
                    },
                );
            }
            Op::Stop(s) => match self.sandboxes.get_mut(&sb_name(*s)) {
                None => return Err(ErrorKind::NotFound),
                Some(sb) => sb.running = false,
            },
            Op::Start(s) => {
                let Some(sb) = self.sandboxes.get(&sb_name(*s)).cloned() else {
                    return Err(ErrorKind::NotFound);
                };
                if !sb.running {
                    self.can_attach(&sb.list)?;
                    if let Some(sb) = self.sandboxes.get_mut(&sb_name(*s)) {
                        sb.running = true;
                    }
                }
            }
            Op::Destroy(s) => {
                if self.sandboxes.remove(&sb_name(*s)).is_none() {
                    return Err(ErrorKind::NotFound);
                }
            }
            Op::ForeignDelete(_) => return Err(ErrorKind::NotFound),
            Op::Fail(method) => {
                self.armed.insert(method);
            }
        }
        Ok(())
    }
}

async fn run(h: &Harness, op: &Op) -> Expect {
    let a = actor("a");
    let s = &h.service;
    let res = match op {
        Op::Create(v, size) => h.create(&a, &vol_name(*v), *size).await.map(drop),
        Op::Delete(v) => s.delete_volume(&a, &vname(&vol_name(*v))).await,
        Op::Resize(v, size) => s
            .resize_volume(&a, &vname(&vol_name(*v)), mib(*size))
            .await
            .map(drop),
        Op::Clone(src, dst) => s
            .clone_volume(&a, &vname(&vol_name(*src)), vname(&vol_name(*dst)))
            .await
            .map(drop),
        Op::CreateSandbox(sb, vols) => {
            let reqs = vols
                .iter()
                .enumerate()
                .map(|(i, &(v, ro))| req(&vol_name(v), &format!("/m{i}"), ro))
                .collect();
            s.create_sandbox(&a, sname(&sb_name(*sb)), reqs)
                .await
                .map(drop)
        }
        Op::Stop(sb) => s.stop_sandbox(&a, &sname(&sb_name(*sb))).await.map(drop),
        Op::Start(sb) => s.start_sandbox(&a, &sname(&sb_name(*sb))).await.map(drop),
        Op::Destroy(sb) => s.destroy_sandbox(&a, &sname(&sb_name(*sb))).await,
        Op::ForeignDelete(v) => s.delete_volume(&actor("b"), &vname(&vol_name(*v))).await,
        Op::Fail(method) => {
            h.store.fail_next(method, ErrorKind::Internal);
            Ok(())
        }
    };
    res.map_err(|e| e.kind())
}

/// Compares everything the service shows with the model.
async fn check_state(h: &Harness, model: &Model) -> Result<(), TestCaseError> {
    let a = actor("a");
    let volumes = h
        .service
        .list_volumes(&a, false)
        .await
        .expect("list volumes");
    let got: BTreeMap<String, u64> = volumes
        .iter()
        .map(|v| (v.name.to_string(), v.size_mib.get()))
        .collect();
    prop_assert_eq!(&got, &model.volumes);
    for v in &volumes {
        prop_assert_eq!(v.status, VolumeStatus::Ready);
        let mut got: Vec<(String, bool)> = v
            .attachments
            .iter()
            .map(|at| (at.sandbox.to_string(), at.read_only))
            .collect();
        got.sort();
        let mut want = model.attachments(v.name.as_str());
        want.sort();
        prop_assert_eq!(got, want, "attachments of {}", v.name);
        prop_assert_eq!(h.store.size_of(&v.id), Some(v.size_mib.bytes()));
    }
    prop_assert_eq!(
        h.store.ids().len(),
        volumes.len(),
        "backend and catalog agree"
    );

    let sandboxes = h
        .service
        .list_sandboxes(&a, false)
        .await
        .expect("list sandboxes");
    prop_assert_eq!(sandboxes.len(), model.sandboxes.len());
    for sb in &sandboxes {
        let want = model
            .sandboxes
            .get(sb.name.as_str())
            .ok_or_else(|| TestCaseError::fail(format!("unexpected sandbox {}", sb.name)))?;
        let running = sb.state == SandboxState::Running;
        prop_assert_eq!(running, want.running);
        let list: Vec<(String, bool)> = sb
            .volumes
            .iter()
            .map(|v| (v.volume.to_string(), v.read_only))
            .collect();
        prop_assert_eq!(&list, &want.list);
        prop_assert!(sb.volumes.iter().all(|v| v.device.is_some() == running));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_service_follows_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let h = Harness::with(POOL, QUOTA).await;
            let mut model = Model::default();
            for (i, op) in ops.iter().enumerate() {
                let want = model.apply(op);
                let got = run(&h, op).await;
                prop_assert_eq!(got, want, "step {}: {:?}", i, op);
                check_state(&h, &model).await?;
            }
            Ok(())
        })?;
    }
}
