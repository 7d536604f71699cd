using System.Runtime.CompilerServices;

namespace ERCache.Tiers;

/// <summary>
/// <see cref="EmbeddingTier.PrefetchBatch"/> values kept in a local, for a batch's per-group scratch (the users' hashes,
/// the slots found). A fixed-size struct instead of <c>stackalloc</c>: the runtime compiles a method with a loop and a
/// <c>stackalloc</c> once, optimized but without tiering's profile data (on-stack replacement cannot take such a method
/// to tier 1), so the batch's calls through the abstract tier were neither devirtualized nor inlined.
/// </summary>
/// <typeparam name="T">The element type.</typeparam>
[InlineArray(EmbeddingTier.PrefetchBatch)]
internal struct PrefetchBuffer<T>
{
    private T _element;
}
