namespace ERCache.Tiers.Eviction;

/// <summary>
/// Least recently used: writes and (buffered) reads move a slot to the tail of the recency order; its head is
/// evicted. A read of an entry still among the newest quarter of the order is not recorded (see
/// <see cref="RecentMoves"/>: 4 bytes per entry). A second list keeps write order, so an expired entry is found (and
/// reclaimed first) in O(1) even when it was read recently: 8 bytes per entry. So 12 more than <see cref="FifoOrder"/>.
/// </summary>
internal readonly struct LruOrder : IEvictionOrder
{
    private readonly SlotList _order;
    private readonly SlotList _written;
    private readonly HitBuffer _hits;
    private readonly RecentMoves _recent;
    private readonly bool _prefetchDrains;

    /// <param name="capacity">Slots of the tier.</param>
    /// <param name="prefetchDrains">Drain the buffered hits a group at a time, each group's links requested before it
    /// moves (<see cref="HitBuffer.DrainPrefetching{TApply}"/>): for a tier whose order is read from memory, where each
    /// promotion's links are cache misses (a million entries: a batch of reads from memory about 9 % faster); a small
    /// tier's links are in cache, where the extra work made a batch 10–15 % slower (docs/benchmarks.md).</param>
    public LruOrder(int capacity, bool prefetchDrains = false)
    {
        _order = new SlotList(capacity);
        _written = new SlotList(capacity);
        _hits = new HitBuffer();
        _recent = new RecentMoves(capacity);
        _prefetchDrains = prefetchDrains;
    }

    public static int BytesPerEntry => (4 * sizeof(int)) + RecentMoves.BytesPerEntry;

    public long AllocatedBytes => _order.AllocatedBytes + _written.AllocatedBytes + HitBuffer.AllocatedBytes + _recent.AllocatedBytes;

    public int OldestWritten => _written.Head;

    internal SlotList Order => _order;

    /// <summary>Whether <see cref="DrainHits"/> prefetches (for tests).</summary>
    internal bool PrefetchesDrains => _prefetchDrains;

    public void OnInsert(int slot)
    {
        _order.AddLast(slot);
        _written.AddLast(slot);
        _recent.Moved(slot);
    }

    /// <summary>Least recent and oldest written; not among the recent moves, so its first hit is recorded.</summary>
    public void OnRestore(int slot)
    {
        _order.AddFirst(slot);
        _written.AddFirst(slot);
        _recent.Oldest(slot);
    }

    public void OnUpdate(int slot)
    {
        _order.MoveToLast(slot);
        _written.MoveToLast(slot);
        _recent.Moved(slot);
    }

    /// <summary>Buffers the hit, unless the entry is still among the newest quarter of the order (see
    /// <see cref="RecentMoves"/>).</summary>
    public bool RecordHit(int slot) => !_recent.IsRecent(slot) && _hits.Add(slot);

    public void PrefetchHit(int slot) => _recent.Prefetch(slot);

    public void DrainHits()
    {
        var sink = new MoveToLast(_order, _recent);
        if (_prefetchDrains)
        {
            _hits.DrainPrefetching(ref sink);
        }
        else
        {
            _hits.Drain(ref sink);
        }
    }

    public int SelectVictim() => _order.Head;

    public int VictimHint => _order.Head;

    public void Remove(int slot)
    {
        _order.Remove(slot);
        _written.Remove(slot);
    }

    private readonly struct MoveToLast(SlotList order, RecentMoves recent) : IHitSink
    {
        public void Prefetch(int slot)
        {
            order.PrefetchLinks(slot);
            recent.Prefetch(slot);
        }

        public void PrefetchNeighbours(int slot) => order.PrefetchNeighbours(slot);

        public void Hit(int slot)
        {
            // A buffered slot may have been evicted and reused since the hit; promoting it then only
            // mis-orders one entry, which the lossy buffer already allows. A slot evicted and not yet reused
            // is unlinked: promoting it would relink a free slot, so it is skipped.
            if (order.Contains(slot))
            {
                order.MoveToLast(slot);
                recent.Moved(slot);
            }
        }
    }
}
