//! The memory cap of one invocation.

/// A `ResourceLimiter` that refuses growth past the cap and remembers that
/// it did, so the host can tell a memory-limit trap from any other.
pub struct MemoryLimiter {
    cap_bytes: usize,
    pub exceeded: bool,
    /// The largest linear memory the invocation asked for.
    pub peak: usize,
}

/// Tables hold function references; this bound is generous for real code
/// and stops a component from using table growth to exhaust host memory.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl MemoryLimiter {
    pub fn new(cap_bytes: u64) -> Self {
        Self {
            cap_bytes: usize::try_from(cap_bytes).unwrap_or(usize::MAX),
            exceeded: false,
            peak: 0,
        }
    }

    pub fn cap(&self) -> usize {
        self.cap_bytes
    }
}

#[derive(Debug, thiserror::Error)]
#[error("memory limit of {cap} bytes exceeded (wanted {desired})")]
pub struct MemoryLimitExceeded {
    pub cap: usize,
    pub desired: usize,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap_bytes {
            self.exceeded = true;
            // Trap rather than return -1 from memory.grow: the guest's
            // allocator would abort anyway, with a less useful message.
            return Err(MemoryLimitExceeded {
                cap: self.cap_bytes,
                desired,
            }
            .into());
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
