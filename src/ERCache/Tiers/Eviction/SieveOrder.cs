namespace ERCache.Tiers.Eviction;

/// <summary>
/// SIEVE (Zhang et al., NSDI 2024): a queue in write order, one "visited" bit per entry and a hand. A hit only sets
/// the bit (readers write one byte: no buffer, no lock, no reordering). To evict, the hand walks from the oldest
/// entry towards the newest, clearing bits, and takes the first unvisited entry; survivors keep their place, so a
/// scan of one-off users passes through the cache without flushing the users who return.
/// </summary>
/// <remarks>
/// A rewrite is treated as a new insertion (the vector and its TTL are new): the entry moves to the newest end
/// and its bit is cleared. That keeps the queue in write order, which is what lets the tier find its oldest,
/// possibly expired, entry in O(1).
/// </remarks>
internal struct SieveOrder : IEvictionOrder
{
    private readonly SlotList _order; // head = oldest write, tail = newest
    private readonly byte[] _visited; // indexed by slot; allocated up front so readers never see it replaced
    private int _hand;

    public SieveOrder(int capacity)
    {
        _order = new SlotList(capacity);
        _visited = new byte[capacity];
        _hand = -1;
    }

    public static int BytesPerEntry => (2 * sizeof(int)) + 1;

    public readonly long AllocatedBytes => _order.AllocatedBytes + _visited.Length;

    public readonly int OldestWritten => _order.Head;

    internal readonly SlotList Order => _order;

    internal readonly int Hand => _hand;

    internal readonly bool IsVisited(int slot) => _visited[slot] != 0;

    public readonly void OnInsert(int slot)
    {
        _visited[slot] = 0;
        _order.AddLast(slot);
    }

    /// <summary>At the oldest end, unvisited: the hand, which walks from the oldest towards the newest, reaches it
    /// after the entries it has not passed yet (it is behind a hand that has moved on).</summary>
    public readonly void OnRestore(int slot)
    {
        _visited[slot] = 0;
        _order.AddFirst(slot);
    }

    public void OnUpdate(int slot)
    {
        Unlink(slot);
        OnInsert(slot);
    }

    public readonly bool RecordHit(int slot)
    {
        // A racy byte store is enough: losing a bit only makes SIEVE a little more eager for one entry.
        if (_visited[slot] == 0)
        {
            _visited[slot] = 1;
        }

        return false;
    }

    public readonly void PrefetchHit(int slot)
    {
        if ((uint)slot < (uint)_visited.Length)
        {
            Storage.Prefetch.Line(ref _visited[slot]);
        }
    }

    public readonly void DrainHits()
    {
    }

    /// <summary>The hand's slot (the victim unless it was visited since).</summary>
    public readonly int VictimHint => _hand >= 0 ? _hand : _order.Head;

    public int SelectVictim()
    {
        int slot = _hand >= 0 ? _hand : _order.Head;
        while (_visited[slot] != 0)
        {
            _visited[slot] = 0;
            slot = _order.Next(slot);
            if (slot < 0)
            {
                slot = _order.Head; // wrap from the newest back to the oldest
            }
        }

        _hand = slot;
        return slot;
    }

    public void Remove(int slot) => Unlink(slot);

    private void Unlink(int slot)
    {
        if (_hand == slot)
        {
            _hand = _order.Next(slot); // the hand moves on towards the newest; -1 restarts at the oldest
        }

        _order.Remove(slot);
    }
}
