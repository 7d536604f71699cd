
namespace ERCache;

/// <summary>A snapshot of one tier of one model: what it holds and what it costs.</summary>
/// <param name="Kind">Direct or failover.</param>
/// <param name="Eviction">The tier's eviction strategy.</param>
/// <param name="Format">The tier's storage format.</param>
/// <param name="Count">Entries held.</param>
/// <param name="Capacity">Most entries held: the configured <c>Capacity</c>, or fewer when <c>MaxBytes</c> binds.</param>
/// <param name="Evictions">Entries removed to make room since the tier was built (expired ones included).</param>
/// <param name="ExpiredReclaimed">Of <paramref name="Evictions"/>, the entries that had already expired.</param>
/// <param name="BytesPerEntry">Bytes one entry takes in a full tier: slot header and row, index share and eviction
/// bookkeeping. <see cref="double.NaN"/> for the <c>MemoryCache</c> strategy, whose entry objects are not visible.</param>
/// <param name="AllocatedBytes">Bytes allocated so far (slab pages are allocated as the tier fills). For the
/// <c>MemoryCache</c> strategy, the vector objects only.</param>
public readonly record struct TierStatistics(
    TierKind Kind,
    EvictionStrategy Eviction,
    StorageFormat Format,
    int Count,
    int Capacity,
    long Evictions,
    long ExpiredReclaimed,
    double BytesPerEntry,
    long AllocatedBytes)
{
    /// <summary>Of the tier's slabs and index, the bytes the kernel took the huge-page advice for (see
    /// <c>HugePages</c> in the tier's settings): 0 with it off, off Linux, for the <c>MemoryCache</c> strategy, or for a
    /// tier under 32 MB. The kernel backs them with huge pages when it has them to give.</summary>
    public long HugePageBytes { get; init; }
}
