namespace ERCache.Inference;

/// <summary>
/// The users waiting for a delegate slot, most urgent first (DESIGN §2 rule 12): a user with no failover vector (who
/// would fall back) before a user with one (who would be served stale), within each group the oldest vector first,
/// background work last; equal urgency in arrival order. When the queue is full, a more urgent miss takes the place of
/// the least urgent one. Not thread-safe: the scheduler holds its lock.
/// </summary>
internal sealed class MissQueue
{
    private readonly SortedSet<PendingInference> _items = new(UrgencyOrder.Instance);
    private long _arrivals;

    /// <summary>Users queued.</summary>
    public int Count => _items.Count;

    /// <summary>Queues <paramref name="item"/> behind every item at least as urgent.</summary>
    public void Enqueue(PendingInference item)
    {
        item.Arrival = ++_arrivals;
        _items.Add(item);
    }

    /// <summary>The most urgent item's urgency, or null when the queue is empty.</summary>
    public long? MostUrgent => _items.Min?.Urgency;

    /// <summary>Takes the most urgent item.</summary>
    public bool TryDequeue(out PendingInference item)
    {
        if (_items.Count == 0)
        {
            item = null!;
            return false;
        }

        item = _items.Min!;
        _items.Remove(item);
        return true;
    }

    /// <summary>Takes the least urgent item when <paramref name="urgency"/> is strictly more urgent than it (a full
    /// queue makes room for a user who needs the slot more).</summary>
    public bool TryTakeLessUrgentThan(long urgency, out PendingInference item)
    {
        var last = _items.Max;
        if (last is null || last.Urgency >= urgency)
        {
            item = null!;
            return false;
        }

        _items.Remove(last);
        item = last;
        return true;
    }

    /// <summary>Larger urgency first, then earlier arrival; arrivals are unique, so no two items compare equal.</summary>
    private sealed class UrgencyOrder : IComparer<PendingInference>
    {
        public static readonly UrgencyOrder Instance = new();

        public int Compare(PendingInference? x, PendingInference? y)
        {
            int byUrgency = y!.Urgency.CompareTo(x!.Urgency);
            return byUrgency != 0 ? byUrgency : x.Arrival.CompareTo(y.Arrival);
        }
    }
}
