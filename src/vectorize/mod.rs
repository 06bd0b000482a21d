//! Vectorize: the vector index. So far only its distance kernels exist; the HNSW graph,
//! persistence and the binding's API build on them (see the open Vectorize issue).

pub mod kernels;
