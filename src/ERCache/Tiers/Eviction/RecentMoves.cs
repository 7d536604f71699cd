namespace ERCache.Tiers.Eviction;

/// <summary>
/// When each slot last moved to the tail of an LRU order, counted in moves (inserts, rewrites and promoted hits), so
/// that a reader can skip recording a hit on an entry that is still among the newest quarter of the order. Promoting
/// such an entry would only move it from near the tail to the tail, and each promotion costs the drain several random
/// memory accesses (the list's links, megabytes apart in a large tier), which at a million entries was a quarter of a
/// hit's time. The order stays close to exact LRU: an entry that was hit is evicted at most a quarter of the capacity
/// in moves earlier than exact LRU would evict it, and a tier of fewer than 8 entries skips nothing that would change
/// its order (the window is then 0 or 1 move: the tail itself).
/// </summary>
internal sealed class RecentMoves(int capacity)
{
    private readonly int _window = capacity / 4;
    private readonly int[] _movedAt = new int[capacity]; // at capacity from the start, like the order's links (see SlotList)
    private int _moves;

    /// <summary>Bytes per entry.</summary>
    public const int BytesPerEntry = sizeof(int);

    public long AllocatedBytes => (long)_movedAt.Length * sizeof(int);

    /// <summary>Records that <paramref name="slot"/> moved to the tail. Under the tier lock.</summary>
    public void Moved(int slot) => _movedAt[slot] = unchecked(++_moves);

    /// <summary>Records that <paramref name="slot"/> went to the head (a restored entry): as if it had moved a whole window
    /// ago, so it is not recent. Under the tier lock.</summary>
    public void Oldest(int slot) => _movedAt[slot] = unchecked(_moves - _window);

    /// <summary>Starts loading <paramref name="slot"/>'s entry for <see cref="IsRecent"/> (a batch's prefetch).</summary>
    public void Prefetch(int slot)
    {
        if ((uint)slot < (uint)_movedAt.Length)
        {
            Storage.Prefetch.Line(ref _movedAt[slot]);
        }
    }

    /// <summary>Whether <paramref name="slot"/> moved to the tail within the last quarter of the capacity in moves. No
    /// lock: a stale answer (a slot reused or moved meanwhile) only records or skips one hit, which the lossy hit buffer
    /// already allows. The difference is taken modulo 2^32, so the counter may wrap: an entry unmoved for more moves
    /// than the capacity has been evicted.</summary>
    public bool IsRecent(int slot) =>
        (uint)slot < (uint)_movedAt.Length && unchecked(Volatile.Read(ref _moves) - _movedAt[slot]) < _window;
}
