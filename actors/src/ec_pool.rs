//! The erasure-coding worker: Reed-Solomon encode and reconstruct, one job at a time per worker.
//!
//! Fault point: `ec.encode` (before each encode).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hoard_storage::ec::Codec;
use ractor::Actor;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use ractor::RpcReplyPort;

use crate::blocking;
use crate::error::Result;
use crate::faults;
use crate::faults::FaultInjector;
use crate::pool::Pool;

/// Deadline for one coding job (a 1 MiB block codes in well under a millisecond when the node is healthy).
pub const EC_DEADLINE: Duration = Duration::from_secs(30);

pub struct EcWorker;

pub struct EcState {
    faults: Arc<dyn FaultInjector>,
    codecs: HashMap<(u8, u8), Arc<Codec>>,
}

pub enum EcMsg {
    Encode {
        data: u8,
        parity: u8,
        /// The block, in consecutive parts.
        block: Vec<Bytes>,
        reply: RpcReplyPort<Result<Vec<Bytes>>>,
    },
    Decode {
        data: u8,
        parity: u8,
        pieces: Vec<Option<Vec<u8>>>,
        block_len: usize,
        reply: RpcReplyPort<Result<Vec<u8>>>,
    },
    ReconstructAll {
        data: u8,
        parity: u8,
        pieces: Vec<Option<Vec<u8>>>,
        reply: RpcReplyPort<Result<Vec<Vec<u8>>>>,
    },
}

impl EcState {
    fn codec(&mut self, data: u8, parity: u8) -> Result<Arc<Codec>> {
        if let Some(c) = self.codecs.get(&(data, parity)) {
            return Ok(c.clone());
        }
        let c = Arc::new(Codec::new(data as usize, parity as usize)?);
        self.codecs.insert((data, parity), c.clone());
        Ok(c)
    }
}

impl Actor for EcWorker {
    type Msg = EcMsg;
    type State = EcState;
    type Arguments = Arc<dyn FaultInjector>;

    async fn pre_start(
        &self,
        _me: ActorRef<EcMsg>,
        faults: Self::Arguments,
    ) -> std::result::Result<EcState, ActorProcessingErr> {
        Ok(EcState { faults, codecs: HashMap::new() })
    }

    async fn handle(
        &self,
        _me: ActorRef<EcMsg>,
        msg: EcMsg,
        state: &mut EcState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match msg {
            EcMsg::Encode { data, parity, block, reply } => {
                faults::hit(state.faults.as_ref(), "ec.encode").await?;
                let r = match state.codec(data, parity) {
                    Ok(codec) => blocking::run(move || Ok(codec.encode_bytes(&block)?)).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            EcMsg::Decode { data, parity, pieces, block_len, reply } => {
                let r = match state.codec(data, parity) {
                    Ok(codec) => blocking::run(move || Ok(codec.decode(pieces, block_len)?)).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            EcMsg::ReconstructAll { data, parity, mut pieces, reply } => {
                let r = match state.codec(data, parity) {
                    Ok(codec) => {
                        blocking::run(move || {
                            codec.reconstruct_all(&mut pieces)?;
                            Ok(pieces.into_iter().flatten().collect())
                        })
                        .await
                    }
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
        }
        Ok(())
    }
}

/// The handle of the EC pool.
#[derive(Clone)]
pub struct EcPool {
    pub pool: Pool<EcMsg>,
}

impl EcPool {
    pub fn new(workers: usize) -> Self {
        EcPool { pool: Pool::new("ec pool", workers) }
    }

    /// The pieces of a block given in consecutive parts (see [`hoard_storage::ec::Codec::encode_bytes`]).
    pub async fn encode(&self, data: u8, parity: u8, block: Vec<Bytes>) -> Result<Vec<Bytes>> {
        self.pool.call(|reply| EcMsg::Encode { data, parity, block, reply }, EC_DEADLINE).await?
    }

    pub async fn decode(
        &self,
        data: u8,
        parity: u8,
        pieces: Vec<Option<Vec<u8>>>,
        block_len: usize,
    ) -> Result<Vec<u8>> {
        self.pool.call(|reply| EcMsg::Decode { data, parity, pieces, block_len, reply }, EC_DEADLINE).await?
    }

    /// Every piece of the block, data and parity, rebuilt from any `data` of them.
    pub async fn reconstruct_all(&self, data: u8, parity: u8, pieces: Vec<Option<Vec<u8>>>) -> Result<Vec<Vec<u8>>> {
        self.pool.call(|reply| EcMsg::ReconstructAll { data, parity, pieces, reply }, EC_DEADLINE).await?
    }
}
