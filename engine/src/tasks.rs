//! The task layer over the shard's state core: the state core ([`Shard`])
//! describes the work it wants done as [`Task`] values, and this module
//! turns each into a spawned task running the connection handler that does
//! it. The only module that knows both the state core and the handlers, so
//! the handlers may call into the shard without the shard calling up.

use crate::shard::{Shard, Task};
use std::rc::Rc;

/// Spawns `task` on the current shard's executor.
pub fn spawn(shard: &Rc<Shard>, task: Task) {
    match task {
        Task::Adopt(a) => (a.resume)(shard.clone(), *a),
        Task::Pull { req, hub } => {
            glommio::spawn_local(crate::upstream::pull(shard.clone(), req, hub)).detach();
        }
        Task::Forward { hub, req, dest } => {
            glommio::spawn_local(crate::forward::forward(shard.clone(), hub, req, dest)).detach();
        }
        Task::DisposeHls {
            key,
            generation,
            after,
            files,
        } => {
            let store = shard.global.hls.clone();
            let task = crate::segmenter::dispose_later(store, key, generation, after, files);
            glommio::spawn_local(task).detach();
        }
    }
}
