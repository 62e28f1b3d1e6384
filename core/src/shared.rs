//! Shared segments: read-only memory that a phase fills once in the parent and every worker
//! reads without copying (the interpolation mesh is the main user).
//!
//! The parent's allocator ([`SegmentAllocator`], implemented by the host) hands out writable
//! buffers during `create_shared_data`; after that call returns the host seals them. Workers
//! receive [`SharedSegment`]s in `attach_shared`: read-only byte slices that stay mapped for the
//! life of the worker process, with typed views that check element type, length and alignment.

use crate::error::PhaseError;
use abi_stable::{
    sabi_trait,
    std_types::{RResult, RSlice, RSliceMut, RStr, RString, RVec},
    StableAbi,
};
use std::io::Read;

/// Element type of a segment.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementType {
    /// Raw bytes.
    U8,
    /// i8
    I8,
    /// u16
    U16,
    /// i16
    I16,
    /// u32
    U32,
    /// i32
    I32,
    /// u64
    U64,
    /// i64
    I64,
    /// f32
    F32,
    /// f64
    F64,
}

impl ElementType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            ElementType::U8 | ElementType::I8 => 1,
            ElementType::U16 | ElementType::I16 => 2,
            ElementType::U32 | ElementType::I32 | ElementType::F32 => 4,
            ElementType::U64 | ElementType::I64 | ElementType::F64 => 8,
        }
    }
    /// numpy-style name (`float64`, `int16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ElementType::U8 => "uint8",
            ElementType::I8 => "int8",
            ElementType::U16 => "uint16",
            ElementType::I16 => "int16",
            ElementType::U32 => "uint32",
            ElementType::I32 => "int32",
            ElementType::U64 => "uint64",
            ElementType::I64 => "int64",
            ElementType::F32 => "float32",
            ElementType::F64 => "float64",
        }
    }
}

mod sealed {
    /// Only the plain number types below implement [`super::Element`]: the trait is sealed, so no
    /// code outside this module (a plugin included) can claim that an arbitrary type may be read
    /// from segment bytes.
    pub trait Sealed {}
}

/// A plain number type that can be viewed in a segment: every bit pattern of its size is a valid
/// value, so reading it from arbitrary segment bytes is sound.
///
/// The trait is sealed (implemented here for `u8`..`u64`, `i8`..`i64`, `f32` and `f64` only):
/// safe code cannot implement it for a type with invalid bit patterns (a `bool`, an enum, a
/// reference) and so cannot use [`SharedSegment::as_slice`] to cause undefined behaviour.
///
/// ```compile_fail
/// // A plugin cannot declare its own type readable from segment bytes.
/// #[derive(Clone, Copy)]
/// struct Flag(bool);
/// impl spyral_core::shared::Element for Flag {
///     const TYPE: spyral_core::shared::ElementType = spyral_core::shared::ElementType::U8;
/// }
/// ```
///
/// ```
/// // The plain number types are available.
/// fn element_name<T: spyral_core::shared::Element>() -> &'static str {
///     T::TYPE.name()
/// }
/// assert_eq!(element_name::<f64>(), "float64");
/// ```
pub trait Element: sealed::Sealed + Copy + 'static {
    /// The matching element type.
    const TYPE: ElementType;
}
macro_rules! element {
    ($($t:ty => $e:ident),*) => { $(
        impl sealed::Sealed for $t {}
        impl Element for $t { const TYPE: ElementType = ElementType::$e; }
    )* };
}
element!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, u64 => U64, i64 => I64, f32 => F32, f64 => F64);

/// Description of a segment: owner phase, name, element type, shape and byte length.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The phase that created it.
    pub phase: RString,
    /// Its name, unique within the phase.
    pub name: RString,
    /// Element type.
    pub element: ElementType,
    /// Shape (C order).
    pub shape: RVec<u64>,
    /// Length in bytes (= product of shape x element size).
    pub len: u64,
}

/// A sealed, read-only segment as a worker sees it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct SharedSegment<'a> {
    /// What it is.
    pub info: &'a SegmentInfo,
    /// Its bytes, mapped read-only; they stay mapped until the worker process exits.
    pub bytes: RSlice<'a, u8>,
}

impl<'a> SharedSegment<'a> {
    /// The segment's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes.as_slice()
    }
    /// The segment as a slice of `T`, checking element type, length and alignment.
    pub fn as_slice<T: Element>(&self) -> Result<&'a [T], PhaseError> {
        let info = self.info;
        if info.element != T::TYPE {
            return Err(PhaseError::invalid_input(format!(
                "shared segment `{}` of phase {} holds {}, not {}",
                info.name,
                info.phase,
                info.element.name(),
                T::TYPE.name()
            )));
        }
        let bytes = self.bytes.as_slice();
        let size = std::mem::size_of::<T>();
        if bytes.len() % size != 0 || bytes.len() as u64 != info.len {
            return Err(PhaseError::invalid_input(format!(
                "shared segment `{}`: {} bytes mapped, {} declared",
                info.name,
                bytes.len(),
                info.len
            )));
        }
        if (bytes.as_ptr() as usize) % std::mem::align_of::<T>() != 0 {
            return Err(PhaseError::internal(format!(
                "shared segment `{}` is not aligned for {}",
                info.name,
                T::TYPE.name()
            )));
        }
        // SAFETY: the type, length (a whole number of T) and alignment were checked above; T is
        // a plain number type for which every bit pattern is valid, and the bytes are borrowed
        // for 'a and never written while mapped (the segment is sealed read-only).
        Ok(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), bytes.len() / size) })
    }
    /// The segment as an n-dimensional array view with its declared shape.
    pub fn view<T: Element>(&self) -> Result<ndarray::ArrayViewD<'a, T>, PhaseError> {
        let data = self.as_slice::<T>()?;
        let shape: Vec<usize> = self.info.shape.iter().map(|&d| d as usize).collect();
        ndarray::ArrayViewD::from_shape(shape, data).map_err(|e| {
            PhaseError::invalid_input(format!(
                "shared segment `{}`: shape {:?} does not fit {} elements: {e}",
                self.info.name,
                self.info.shape,
                data.len()
            ))
        })
    }
}

/// The host's allocator, used by a phase in `create_shared_data` (parent process only).
#[sabi_trait]
pub trait SegmentAllocator {
    /// Reserves a segment `name` of `shape` elements of `element`; returns its id.
    fn allocate(
        &mut self,
        name: RStr<'_>,
        element: ElementType,
        shape: RSlice<'_, u64>,
    ) -> RResult<u32, PhaseError>;
    /// The writable bytes of segment `id` (valid until `create_shared_data` returns).
    fn buffer(&mut self, id: u32) -> RResult<RSliceMut<'_, u8>, PhaseError>;
    /// Shares the bytes of the file at `path` from `offset` (as many as `shape` elements of
    /// `element` take) read-only as segment `name`: every worker maps them straight from the
    /// page cache, and no copy is made. The file must never be modified in place afterwards
    /// (assets are replaced by renaming a new file over them, which leaves mappings intact).
    #[sabi(last_prefix_field)]
    fn share_file(
        &mut self,
        name: RStr<'_>,
        element: ElementType,
        shape: RSlice<'_, u64>,
        path: RStr<'_>,
        offset: u64,
    ) -> RResult<(), PhaseError>;
}

/// A borrowed allocator, as passed across the boundary.
pub type SegmentAllocatorMut<'a> = SegmentAllocator_TO<'a, abi_stable::sabi_types::RMut<'a, ()>>;

/// Idiomatic wrapper around the host's allocator.
pub struct SharedAllocator<'a, 'b> {
    inner: &'b mut SegmentAllocatorMut<'a>,
}

impl<'a, 'b> SharedAllocator<'a, 'b> {
    /// Wraps the host's allocator.
    pub fn new(inner: &'b mut SegmentAllocatorMut<'a>) -> Self {
        SharedAllocator { inner }
    }
    /// Reserves a segment and returns its writable buffer.
    pub fn allocate(
        &mut self,
        name: &str,
        element: ElementType,
        shape: &[u64],
    ) -> Result<&mut [u8], PhaseError> {
        let id = self
            .inner
            .allocate(name.into(), element, shape.into())
            .into_result()?;
        Ok(self.inner.buffer(id).into_result()?.into_mut_slice())
    }
    /// Shares `shape` elements of `element` stored in the file at `path` from byte `offset`,
    /// read-only and without copying: workers map the file from the page cache. For large
    /// assets already on disk (an interpolation mesh) this costs no time and no memory in the
    /// parent. The data must be aligned for `element` within the file.
    pub fn share_file(
        &mut self,
        name: &str,
        element: ElementType,
        shape: &[u64],
        path: &std::path::Path,
        offset: u64,
    ) -> Result<(), PhaseError> {
        let path = path.to_str().ok_or_else(|| {
            PhaseError::invalid_input(format!(
                "shared segment `{name}`: path {} is not UTF-8",
                path.display()
            ))
        })?;
        self.inner
            .share_file(name.into(), element, shape.into(), path.into(), offset)
            .into_result()
    }
    /// Reserves a segment and fills it from `reader` in chunks (the parent never holds a second
    /// copy). The reader must yield exactly the segment's byte length.
    pub fn allocate_from_reader(
        &mut self,
        name: &str,
        element: ElementType,
        shape: &[u64],
        reader: &mut dyn Read,
    ) -> Result<u64, PhaseError> {
        let buf = self.allocate(name, element, shape)?;
        let len = buf.len();
        let mut filled = 0usize;
        while filled < len {
            let end = (filled + (8 << 20)).min(len);
            match reader.read(&mut buf[filled..end]) {
                Ok(0) => {
                    return Err(PhaseError::invalid_input(format!(
                        "shared segment `{name}`: the source ended after {filled} of {len} bytes"
                    )))
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(PhaseError::io(format!(
                    "shared segment `{name}`: reading the source failed after {filled} bytes: {e}"
                )))
                }
            }
        }
        Ok(len as u64)
    }
}

/// The segments a worker hands a phase in `attach_shared`.
pub type SegmentList<'a> = RVec<SharedSegment<'a>>;
