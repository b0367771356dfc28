//! idgen scenarios against real `gru` processes (see `gru-testkit`).

mod failover_leader_kill;
mod http_api;
mod ids_rate;
mod partition;
mod stream;
mod unique_mode;
mod workload;
