pub mod d1;
