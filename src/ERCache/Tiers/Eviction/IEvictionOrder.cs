namespace ERCache.Tiers.Eviction;

/// <summary>
/// Orders a slab tier's slots for eviction. Implemented by structs so <see cref="SlabTier{TPolicy, TCodec}"/>
/// gets a specialised copy per strategy. Every member runs under the tier's write lock, except <see cref="RecordHit"/>
/// and <see cref="PrefetchHit"/> (the lock-free read path) and the racy reads of a write's prefetch
/// (<see cref="VictimHint"/>, <see cref="OldestWritten"/>), which change nothing.
/// </summary>
internal interface IEvictionOrder
{
    /// <summary>Bookkeeping bytes per entry once the tier is full (for the tier's bytes-per-entry figure).</summary>
    static abstract int BytesPerEntry { get; }

    /// <summary>Bytes of bookkeeping allocated right now.</summary>
    long AllocatedBytes { get; }

    /// <summary>The slot written longest ago (rewrites count as writes), or -1 when empty. All entries of a tier share
    /// one TTL, so if any entry has expired this one has: the tier reclaims it before asking for a victim.</summary>
    int OldestWritten { get; }

    /// <summary>A new key was written into <paramref name="slot"/>.</summary>
    void OnInsert(int slot);

    /// <summary>A key restored from a snapshot was written into <paramref name="slot"/>: written before every key in the
    /// order (a snapshot is loaded newest first, and the requests' writes meanwhile are newer still), so it goes where
    /// the next victim is, and the order stays in write order.</summary>
    void OnRestore(int slot);

    /// <summary>An existing key in <paramref name="slot"/> was rewritten.</summary>
    void OnUpdate(int slot);

    /// <summary>A reader hit <paramref name="slot"/>. Returns <see langword="true"/> when buffered hits should be
    /// drained soon (the caller then tries to take the lock and call <see cref="DrainHits"/>).</summary>
    bool RecordHit(int slot);

    /// <summary>Starts loading what <see cref="RecordHit"/> reads for <paramref name="slot"/>, without waiting for it (a
    /// batch's prefetch: in a large tier that per-slot state is a cache miss of its own). No lock; changes nothing.</summary>
    void PrefetchHit(int slot);

    /// <summary>Applies buffered hits to the order.</summary>
    void DrainHits();

    /// <summary>The live slot to evict next; the caller then calls <see cref="Remove"/> and reuses it.</summary>
    int SelectVictim();

    /// <summary>The slot <see cref="SelectVictim"/> would most likely take, read without the lock and without changing
    /// anything (for a write's prefetch): possibly stale, or -1.</summary>
    int VictimHint { get; }

    /// <summary>Unlinks <paramref name="slot"/> from the order (before it is reused).</summary>
    void Remove(int slot);
}
