//! `Arbitrary` impls for the fuzz targets (private `arbitrary` feature).
