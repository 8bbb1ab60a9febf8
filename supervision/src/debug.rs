//! `hoard debug fault arm|disarm|list`: the client side of the fault admin API of a running node
//! (started with `--fault-injection`).

use clap::Args;
use clap::Subcommand;

use crate::admin_client::encode;
use crate::admin_client::ConnectArgs;

#[derive(Debug, Args)]
pub struct FaultArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub action: FaultAction,
}

#[derive(Debug, Subcommand)]
pub enum FaultAction {
    /// Arm a fault point: FAULT is panic, error or stall:<ms>.
    Arm {
        point: String,
        fault: String,
        /// Fire only this many times (default: until disarmed).
        #[arg(long)]
        times: Option<u32>,
    },
    /// Disarm a fault point.
    Disarm { point: String },
    /// List armed fault points.
    List,
}

pub async fn run(args: FaultArgs) -> anyhow::Result<String> {
    let (method, query) = match &args.action {
        FaultAction::Arm { point, fault, times } => {
            let mut q = format!("hoard-faults=&action=arm&point={}&fault={}", encode(point), encode(fault));
            if let Some(t) = times {
                q.push_str(&format!("&times={t}"));
            }
            ("POST", q)
        }
        FaultAction::Disarm { point } => ("POST", format!("hoard-faults=&action=disarm&point={}", encode(point))),
        FaultAction::List => ("GET", "hoard-faults=&action=list".to_string()),
    };
    args.connect.call(method, &query).await
}
