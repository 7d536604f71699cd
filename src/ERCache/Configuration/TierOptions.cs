namespace ERCache;

/// <summary>One tier of a model (<c>Direct</c> or <c>Failover</c>).</summary>
public sealed class TierOptions
{
    /// <summary>Default <see cref="Capacity"/>: 100,000 entries.</summary>
    public const int DefaultCapacity = 100_000;

    /// <summary>Whether the tier exists. Default <see langword="true"/>.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Entries younger than this are valid (an entry exactly this old is expired). Required when enabled.</summary>
    public TimeSpan Ttl { get; set; }

    /// <summary>Most entries the tier holds, 1..268,435,455. Default 100,000.</summary>
    public int Capacity { get; set; } = DefaultCapacity;

    /// <summary>Optional bound on the bytes the tier holds when full (slabs, index and eviction bookkeeping); the tier
    /// then holds fewer than <see cref="Capacity"/> entries if that many would not fit. Not supported with
    /// <c>MemoryCache</c> eviction. Default: none.</summary>
    public long? MaxBytes { get; set; }

    /// <summary>The eviction strategy, written by name in configuration (<c>Lru</c>, <c>Fifo</c>, <c>Sieve</c> or
    /// <c>MemoryCache</c>, any case). Default <c>Lru</c> for the direct tier and <c>Fifo</c> for the failover tier.</summary>
    public EvictionStrategy Eviction { get; set; } = EvictionStrategy.Lru;

    /// <summary>The storage format, written by name in configuration (<c>Float32</c>, <c>Float16</c> or <c>Int8</c>,
    /// any case). Default <c>Float32</c>.</summary>
    public StorageFormat Format { get; set; } = StorageFormat.Float32;

    /// <summary>
    /// Whether a large tier's slabs and index (32 MB or more, capacity × slot) ask the kernel for transparent huge pages
    /// (Linux, <c>madvise</c>): a read of a large tier from memory then rarely misses the TLB. With it the tier grows in slabs of 16–32 MB instead of
    /// about 4 MB, and the first write to each 2 MB of a slab pays the kernel's zeroing of the whole page (and, when
    /// memory is fragmented, its compaction). Where the kernel gives no huge pages, or off Linux, the tier uses ordinary
    /// pages. Ignored with <c>MemoryCache</c> eviction. Default <see langword="true"/>.
    /// </summary>
    public bool HugePages { get; set; } = true;
}
