//! The record of an `iface-bridge`/`-unbridge` in progress (RUN_DIR/iface-change.json):
//! its plan, written before the first step, and how many steps are done, rewritten after
//! each. A kvnetd killed midway leaves it behind; the next one reads it and decides here
//! (pure) what brings the host back: the undo of every step that may have run, or, when
//! only the final link deletion was left, that deletion.
//!
//! A kill can fall between a step and its record, so the step after the recorded ones
//! may have run or not. Recovery steps are therefore run only when not already in
//! effect (the executor's `ensure`): the undo of a step that never ran is skipped.

use super::plan::Step;
use crate::store::{self, Durability};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// What was asked, for the log ("iface-bridge eth0 br0").
    pub what: String,
    pub steps: Vec<Step>,
    /// Steps known to be done, in order.
    pub done: usize,
}

pub fn save(path: &Path, rec: &Record) -> Result<()> {
    store::write_atomic(path, &serde_json::to_vec(rec)?, 0o600, Durability::Runtime)
        .context("cannot record the iface change's progress")
}

/// The record left by an interrupted change, if any.
pub fn load(path: &Path) -> Result<Option<Record>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).with_context(|| {
            format!("{}: not an iface change record", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// What recovering from `rec` takes.
#[derive(Debug, PartialEq, Eq)]
pub enum Recovery {
    /// All but the final link deletion was done (an unbridge past its check): finish.
    Finish(Vec<Step>),
    /// Undo, latest first, every step that may have run.
    Undo(Vec<Step>),
}

pub fn recovery(rec: &Record) -> Recovery {
    let done = rec.done.min(rec.steps.len());
    let rest = &rec.steps[done..];
    if rest.iter().all(|s| matches!(s, Step::DeleteLink(_))) {
        return Recovery::Finish(rest.to_vec());
    }
    Recovery::Undo(
        rec.steps[..=done]
            .iter()
            .rev()
            .filter_map(Step::undo)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ifbridge::plan::tests::{
        Model, apply, bridged_unbridge_input, in_effect, input, start,
    };
    use crate::ifbridge::plan::{plan_bridge, plan_unbridge};

    /// Recovery in the model of links: a step runs unless already in effect.
    fn recover(m: &mut Model, rec: &Record) {
        let steps = match recovery(rec) {
            Recovery::Finish(s) | Recovery::Undo(s) => s,
        };
        for s in &steps {
            if !in_effect(m, s) {
                apply(m, s);
            }
        }
    }

    /// A kill after any step, recorded or not: the next kvnetd's recovery brings every
    /// link back to where it was, or (an unbridge whose last step alone was left) to
    /// where the change was going. Recovering twice (a kill during recovery) changes
    /// nothing more.
    #[test]
    fn a_kill_anywhere_recovers_to_the_start_or_the_end() {
        let bridge = plan_bridge(&input()).unwrap();
        let unbridge = plan_unbridge(&bridged_unbridge_input()).unwrap();
        let s0 = start();
        let mut bridged = s0.clone();
        for s in &bridge {
            apply(&mut bridged, s);
        }
        for (steps, before, after) in [(&bridge, &s0, &bridged), (&unbridge, &bridged, &s0)] {
            for ran in 0..=steps.len() {
                // The last step that ran may be unrecorded.
                for recorded in [ran, ran.saturating_sub(1)] {
                    let mut m = before.clone();
                    for s in &steps[..ran] {
                        apply(&mut m, s);
                    }
                    let rec = Record {
                        what: "test".into(),
                        steps: steps.clone(),
                        done: recorded,
                    };
                    recover(&mut m, &rec);
                    let finished = matches!(recovery(&rec), Recovery::Finish(_));
                    let want = if finished { after } else { before };
                    assert_eq!(&m, want, "ran {ran}, recorded {recorded}");
                    recover(&mut m, &rec);
                    assert_eq!(&m, want, "twice: ran {ran}, recorded {recorded}");
                    // Only a plan done but for its link deletion is finished.
                    let only_deletion_left = recorded == steps.len()
                        || (recorded + 1 == steps.len()
                            && matches!(steps.last(), Some(Step::DeleteLink(_))));
                    assert_eq!(
                        finished, only_deletion_left,
                        "ran {ran}, recorded {recorded}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_record_round_trips() {
        let (_d, p) = crate::store::testdir::paths();
        let path = p.iface_journal();
        assert_eq!(load(&path).unwrap(), None);
        let rec = Record {
            what: "iface-bridge eth0 br0".into(),
            steps: plan_bridge(&input()).unwrap(),
            done: 3,
        };
        save(&path, &rec).unwrap();
        assert_eq!(load(&path).unwrap(), Some(rec));
        std::fs::write(&path, "{\"what\":").unwrap();
        assert!(load(&path).is_err());
    }
}
