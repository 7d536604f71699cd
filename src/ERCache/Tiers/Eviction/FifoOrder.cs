namespace ERCache.Tiers.Eviction;

/// <summary>
/// First in, first out by write: a rewrite moves a slot to the tail (its TTL restarts), reads change nothing,
/// and the head, the entry written longest ago and so the closest to expiry, is evicted.
/// </summary>
internal readonly struct FifoOrder : IEvictionOrder
{
    private readonly SlotList _order;

    public FifoOrder(int capacity) => _order = new SlotList(capacity);

    public static int BytesPerEntry => 2 * sizeof(int);

    public long AllocatedBytes => _order.AllocatedBytes;

    public int OldestWritten => _order.Head;

    internal SlotList Order => _order;

    public void OnInsert(int slot) => _order.AddLast(slot);

    public void OnRestore(int slot) => _order.AddFirst(slot);

    public void OnUpdate(int slot) => _order.MoveToLast(slot);

    public bool RecordHit(int slot) => false;

    public void PrefetchHit(int slot)
    {
    }

    public void DrainHits()
    {
    }

    public int SelectVictim() => _order.Head;

    public int VictimHint => _order.Head;

    public void Remove(int slot) => _order.Remove(slot);
}
