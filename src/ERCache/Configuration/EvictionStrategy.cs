namespace ERCache;

/// <summary>How a full tier chooses the entry to drop.</summary>
public enum EvictionStrategy
{
    /// <summary>Least recently used (written or read) goes first.</summary>
    Lru,

    /// <summary>Least recently written goes first: the entry closest to expiry under a write-stamped TTL.
    /// Reads do not reorder.</summary>
    Fifo,

    /// <summary>The tier is a <c>Microsoft.Extensions.Caching.Memory.MemoryCache</c> with
    /// <c>SizeLimit = Capacity</c>; when full it compacts by its own rules (lowest priority, then least
    /// recently accessed) before a write.</summary>
    MemoryCache,

    /// <summary>SIEVE (NSDI 2024): a hit sets a bit; the eviction hand walks from the oldest write, clearing set bits
    /// and taking the first clear one. Scan-resistant, and cheaper on the hit path than LRU (no reordering).</summary>
    Sieve,
}
