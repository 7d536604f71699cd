namespace ERCache.Tiers;

/// <summary>Least recently used: writes and (buffered) reads move a slot to the tail; the head is evicted.</summary>
internal struct LruPolicy : IEvictionPolicy
{
    private readonly SlotList _order;
    private readonly HitBuffer _hits;

    public LruPolicy(int capacity)
    {
        _order = new SlotList(capacity);
        _hits = new HitBuffer();
    }

    internal readonly SlotList Order => _order;

    public readonly void OnInsert(int slot) => _order.AddLast(slot);

    public readonly void OnUpdate(int slot) => _order.MoveToLast(slot);

    public readonly bool RecordHit(int slot) => _hits.Add(slot);

    public readonly void DrainHits()
    {
        var sink = new MoveToLast(_order);
        _hits.Drain(ref sink);
    }

    public readonly int SelectVictim() => _order.Head;

    public readonly void Remove(int slot) => _order.Remove(slot);

    private readonly struct MoveToLast(SlotList order) : IHitSink
    {
        public void Hit(int slot)
        {
            // A buffered slot may have been evicted and reused since the hit; promoting it then only
            // mis-orders one entry, which the lossy buffer already allows.
            order.MoveToLast(slot);
        }
    }
}
