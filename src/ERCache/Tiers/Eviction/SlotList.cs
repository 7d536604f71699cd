namespace ERCache.Tiers.Eviction;

/// <summary>
/// An intrusive doubly linked list over slot numbers, held in two int arrays (no node objects).
/// Head is the next eviction victim; tail is the most recently ordered slot. Used under the tier lock only.
/// </summary>
/// <remarks>
/// The arrays are allocated at the tier's capacity when it is built. They used to start at 1,024 and double as the
/// tier filled; each doubling copied them under the tier's write lock, and at 65,536 entries and beyond one write took
/// 0.5–3 ms (the copy, the fresh memory and the collection a large allocation brings). Allocated at once, their pages
/// are still mapped only as slots are first linked: a tier that never fills does not keep them resident.
/// </remarks>
internal sealed class SlotList
{
    private const int None = -1;
    private const int Unlinked = -2;
    private readonly int[] _prev;
    private readonly int[] _next;
    private int _reached; // one past the highest slot ever linked: slots beyond it were never added

    public SlotList(int capacity)
    {
        _prev = new int[capacity];
        _next = new int[capacity];
    }

    public int Head { get; private set; } = None;

    public int Tail { get; private set; } = None;

    public int Count { get; private set; }

    /// <summary>Bytes of the two link arrays (8 per slot of the capacity).</summary>
    public long AllocatedBytes => (long)_prev.Length * 2 * sizeof(int);

    /// <summary>The slot after <paramref name="slot"/> towards the tail, or -1 at the tail.</summary>
    public int Next(int slot) => _next[slot];

    public void AddLast(int slot)
    {
        _reached = Math.Max(_reached, slot + 1);
        _prev[slot] = Tail;
        _next[slot] = None;
        if (Tail == None)
        {
            Head = slot;
        }
        else
        {
            _next[Tail] = slot;
        }

        Tail = slot;
        Count++;
    }

    /// <summary>Links <paramref name="slot"/> at the head, before every slot in the list (the next victim).</summary>
    public void AddFirst(int slot)
    {
        _reached = Math.Max(_reached, slot + 1);
        _prev[slot] = None;
        _next[slot] = Head;
        if (Head == None)
        {
            Tail = slot;
        }
        else
        {
            _prev[Head] = slot;
        }

        Head = slot;
        Count++;
    }

    /// <summary>Whether <paramref name="slot"/> is linked (it was added and not removed since).</summary>
    public bool Contains(int slot) => slot < _reached && _prev[slot] != Unlinked;

    /// <summary>Starts loading <paramref name="slot"/>'s links (what <see cref="Contains"/> and <see cref="MoveToLast"/>
    /// read first). Only a hint: any slot number.</summary>
    public void PrefetchLinks(int slot)
    {
        if ((uint)slot < (uint)_prev.Length)
        {
            Storage.Prefetch.Line(ref _prev[slot]);
            Storage.Prefetch.Line(ref _next[slot]);
        }
    }

    /// <summary>Starts loading the links <see cref="MoveToLast"/> of <paramref name="slot"/> rewrites: its neighbours'.
    /// Only a hint: reads <paramref name="slot"/>'s links as they are now, whatever they hold.</summary>
    public void PrefetchNeighbours(int slot)
    {
        if ((uint)slot >= (uint)_reached)
        {
            return;
        }

        int previous = _prev[slot], next = _next[slot];
        if ((uint)previous < (uint)_next.Length)
        {
            Storage.Prefetch.Line(ref _next[previous]);
        }

        if ((uint)next < (uint)_prev.Length)
        {
            Storage.Prefetch.Line(ref _prev[next]);
        }
    }

    public void Remove(int slot)
    {
        int p = _prev[slot], n = _next[slot];
        _prev[slot] = Unlinked;
        _next[slot] = Unlinked;
        if (p == None)
        {
            Head = n;
        }
        else
        {
            _next[p] = n;
        }

        if (n == None)
        {
            Tail = p;
        }
        else
        {
            _prev[n] = p;
        }

        Count--;
    }

    public void MoveToLast(int slot)
    {
        if (slot == Tail)
        {
            return;
        }

        Remove(slot);
        AddLast(slot);
    }

    /// <summary>Slots from head (next victim) to tail, for tests and diagnostics.</summary>
    public IEnumerable<int> FromHead()
    {
        for (int s = Head; s != None; s = _next[s])
        {
            yield return s;
        }
    }
}
