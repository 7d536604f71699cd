using ERCache.Diagnostics;

namespace ERCache.Tiers;

/// <summary>One entry of a tier, as <see cref="EmbeddingTier.ForEachEntry"/> visits it.</summary>
internal delegate void TierEntryVisitor(long userId, long writtenAt, ReadOnlySpan<byte> row);

/// <summary>
/// One tier of one model version. The tier instance itself stands for the (model, version) part of the
/// key, so entries are looked up by user id and compared in full; a version or dimension change builds a
/// new tier. All times are <see cref="TimeProvider.GetTimestamp"/> values.
/// </summary>
internal abstract class EmbeddingTier : IDisposable
{
    protected EmbeddingTier(string model, TierPolicy policy, int dimensions, ERCacheMetrics metrics)
    {
        Model = model;
        Policy = policy;
        Dimensions = dimensions;
        Metrics = metrics;
        MetricTags = ERCacheMetrics.TierTags(model, policy.Kind);
    }

    public string Model { get; }

    /// <summary>The storage settings this tier was built with (its TTL is read from the live policy instead).</summary>
    public TierPolicy Policy { get; }

    public int Dimensions { get; }

    /// <summary>Most entries held: the configured <c>Capacity</c>, or fewer when <c>MaxBytes</c> binds.</summary>
    public abstract int Capacity { get; }

    /// <summary>Bytes one entry takes when the tier is full (slot header and row, index, eviction bookkeeping).</summary>
    public abstract double BytesPerEntry { get; }

    /// <summary>Bytes the tier has allocated so far (slabs are allocated page by page as it fills).</summary>
    public abstract long AllocatedBytes { get; }

    /// <summary>Entries reclaimed because they had expired (counted in <see cref="Evictions"/> too).</summary>
    public abstract long ExpiredReclaimed { get; }

    protected ERCacheMetrics Metrics { get; }

    protected System.Diagnostics.TagList MetricTags { get; }

    /// <summary>Entries currently held.</summary>
    public abstract int Count { get; }

    /// <summary>Entries evicted to make room since the tier was built.</summary>
    public abstract long Evictions { get; }

    /// <summary>
    /// Copies the user's vector into <paramref name="destination"/> when the tier holds one whose age
    /// (<paramref name="now"/> minus its write time) is less than <paramref name="ttl"/>.
    /// On <see langword="false"/> the destination may hold garbage and must not be used.
    /// </summary>
    public abstract bool TryRead(long userId, long now, long ttl, Span<float> destination, out long writtenAt);

    /// <summary>Whether the tier holds an entry for the user younger than <paramref name="ttl"/>, and its write time,
    /// without copying the row or counting a hit for eviction.</summary>
    public abstract bool TryGetWrittenAt(long userId, long now, long ttl, out long writtenAt);

    /// <summary>
    /// Calls <paramref name="visitor"/> for every entry held (a rollout's warm-up list, a snapshot), with its encoded
    /// row (<see cref="TierPolicy.Format"/>, <see cref="Storage.StorageFormats.RowBytes"/> bytes) when
    /// <paramref name="withRows"/>, else an empty span. Each entry is read whole; writes may run meanwhile, and an entry
    /// written or removed during the walk may or may not be visited. Counts no hit.
    /// </summary>
    public abstract void ForEachEntry(TierEntryVisitor visitor, bool withRows);

    /// <summary>
    /// <see cref="ForEachEntry"/> with rows, newest write first where the tier keeps a write order (a slab tier), so that a
    /// snapshot restored in file order (<see cref="Restore"/>) rebuilds that order, and a load cut short, or into a smaller
    /// tier, keeps the newest entries. This default visits in <see cref="ForEachEntry"/>'s order.
    /// </summary>
    public virtual void ForEachEntryNewestFirst(TierEntryVisitor visitor) => ForEachEntry(visitor, withRows: true);

    /// <summary>Hints the processor to start loading what reading <paramref name="users"/> will touch (at most
    /// <see cref="PrefetchBatch"/> of them), so their cache misses overlap instead of following one another, and writes
    /// each user's likely slot into <paramref name="candidates"/> (<see cref="NoCandidate"/> when there is none, or the
    /// tier has no slots) for <see cref="TryReadFrom"/>. Changes nothing; a tier without a layout to prefetch only
    /// fills <paramref name="candidates"/>.</summary>
    public virtual void Prefetch(ReadOnlySpan<long> users, Span<int> candidates) =>
        candidates[..Math.Min(users.Length, PrefetchBatch)].Fill(NoCandidate);

    /// <summary>Hints the processor to start loading what writing a new <paramref name="userId"/> will touch: its place in
    /// the index and the slot it will most likely take (the next victim's, in a full tier), so that a write made once
    /// the user's inference returns finds them cached instead of waiting for each under the tier's lock. Changes
    /// nothing; nothing in a tier without a layout to prefetch.</summary>
    public virtual void PrefetchWrite(long userId)
    {
    }

    /// <summary>
    /// <see cref="TryRead"/> that first tries the slot this tier's <see cref="Prefetch"/> found for the user, so that a
    /// batch hashes and probes each user once. The candidate is only a hint, possibly stale: it is used when it holds the
    /// user (checked as every read checks a slot), and otherwise the user is looked up as by <see cref="TryRead"/>, so the
    /// answer is always <see cref="TryRead"/>'s. A negative candidate is looked up; a number that is not this tier's
    /// candidate (a bug) is read and checked like any candidate, or throws when it lies past the tier's pages: it never
    /// yields another user's entry.
    /// </summary>
    public virtual bool TryReadFrom(int candidate, long userId, long now, long ttl, Span<float> destination, out long writtenAt) =>
        TryRead(userId, now, ttl, destination, out writtenAt);

    /// <summary>The candidate of a user <see cref="Prefetch"/> found no slot for.</summary>
    public const int NoCandidate = -1;

    /// <summary>Most users one <see cref="Prefetch"/> call takes: enough loads in flight to cover memory latency, few
    /// enough that the first lines are still cached when the reads reach them.</summary>
    public const int PrefetchBatch = 16;

    /// <summary>
    /// Stores a validated vector for the user, stamped <paramref name="writtenAt"/>. When the tier is full it first
    /// reclaims an entry that is <paramref name="ttl"/> or more old, and only then evicts a live one.
    /// </summary>
    public abstract void Write(long userId, ReadOnlySpan<float> vector, long writtenAt, long ttl = long.MaxValue);

    /// <summary>
    /// Writes an entry that may be older than the tier's (a snapshot's, or a regional hit's) unless the tier already
    /// holds one for the user written at or after <paramref name="writtenAt"/> (a request inferred it meanwhile, or it
    /// was pushed), or <paramref name="removed"/> says an operation made the entry stale (the user was removed or cleared
    /// since a restore began; a removal, clear or push ran since a regional lookup began). Both are checked under the
    /// tier's write lock, so a removal either sees the entry and removes it, or is seen here: no reader ever finds the
    /// stale entry after the operation completed. Returns whether it wrote.
    /// </summary>
    public abstract bool TryWriteNewer(long userId, ReadOnlySpan<float> vector, long writtenAt, long ttl, Func<long, bool>? removed = null);

    /// <summary>
    /// <see cref="TryWriteNewer"/> for a bulk load that runs beside the requests (a snapshot restored at start-up, its
    /// entries newest first): the same checks, and the requests' writes waiting for the tier's lock go first, so that a
    /// load writing in a tight loop does not keep them waiting write after write. A slab tier puts the entry where its
    /// next victim is, as older than every entry it holds, and does not evict for it (<see cref="RestoreResult.TierFull"/>);
    /// this default writes it as <see cref="TryWriteNewer"/> does.
    /// </summary>
    public virtual RestoreResult Restore(long userId, ReadOnlySpan<float> vector, long writtenAt, long ttl, Func<long, bool>? removed = null) =>
        TryWriteNewer(userId, vector, writtenAt, ttl, removed) ? RestoreResult.Restored : RestoreResult.Kept;

    /// <summary>Removes the user's entry; a reader that races with it either copies the entry whole before the removal
    /// or misses. Returns whether there was one.</summary>
    public abstract bool Remove(long userId);

    /// <summary>Removes every entry; returns how many there were.</summary>
    public abstract int Clear();

    /// <summary>A snapshot of the tier's counters.</summary>
    public TierStatistics GetStatistics() =>
        new(Policy.Kind, Policy.Eviction, Policy.Format, Count, Capacity, Evictions, ExpiredReclaimed, BytesPerEntry, AllocatedBytes)
        {
            HugePageBytes = HugePageBytes,
        };

    /// <summary>Bytes the kernel took the huge-page advice for (see <see cref="TierStatistics.HugePageBytes"/>).</summary>
    public virtual long HugePageBytes => 0;

    protected void RecordEvictions(long count, bool expired) => Metrics.RecordEvictions(count, MetricTags, expired);

    /// <summary>Releases what the tier holds outside the managed heap's reach (MemoryCache's own resources); a slab
    /// tier has nothing to release.</summary>
    public virtual void Dispose()
    {
    }
}
