//! Vectorize: the vector index. So far: the SIMD distance [`kernels`] and an in-memory
//! [`hnsw`] graph. Persistence (WAL and segments), metadata filters, namespaces and the
//! binding's API build on them (see the open Vectorize issue).

pub mod hnsw;
pub mod kernels;
