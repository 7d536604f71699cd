using System.Runtime.InteropServices;
using ERCache.Storage;

namespace ERCache.Tiers;

/// <summary>
/// The counters a slab tier's writer changes on every insert and eviction, with 128 bytes (a cache line and the one the
/// processor may fetch with it) between them and the tier's other fields. Every lookup reads those fields from another
/// thread, so counters on their line would take it from the readers' caches at each write: a miss whose inference runs on
/// another thread paid that on its next lookup.
/// </summary>
/// <remarks>Not nested in the generic tier: the runtime allows no explicit layout in a generic type.</remarks>
[StructLayout(LayoutKind.Explicit, Size = (2 * Prefetch.PairBytes) + 24)]
internal struct SlabCounters
{
    /// <summary>Entries evicted (expired ones included).</summary>
    [FieldOffset(Prefetch.PairBytes)]
    public long Evictions;

    /// <summary>Evictions that took an expired entry.</summary>
    [FieldOffset(Prefetch.PairBytes + 8)]
    public long Expired;

    /// <summary>Slots handed out so far (the high-water mark).</summary>
    [FieldOffset(Prefetch.PairBytes + 16)]
    public int Used;

    /// <summary>Slots holding an entry.</summary>
    [FieldOffset(Prefetch.PairBytes + 20)]
    public int Count;
}
