namespace ERCache.Tiers.Eviction;

/// <summary>
/// An intrusive doubly linked list over slot numbers, held in two int arrays (no node objects).
/// Head is the next eviction victim; tail is the most recently ordered slot. Used under the tier lock only,
/// so the arrays may grow as the tier fills.
/// </summary>
internal sealed class SlotList
{
    private const int None = -1;
    private const int Unlinked = -2;
    private int[] _prev;
    private int[] _next;
    private readonly int _capacity;

    public SlotList(int capacity)
    {
        _capacity = capacity;
        int initial = Math.Min(capacity, 1024);
        _prev = new int[initial];
        _next = new int[initial];
    }

    public int Head { get; private set; } = None;

    public int Tail { get; private set; } = None;

    public int Count { get; private set; }

    /// <summary>Bytes of the two link arrays right now (8 per slot once the tier is full).</summary>
    public long AllocatedBytes => (long)_prev.Length * 2 * sizeof(int);

    /// <summary>The slot after <paramref name="slot"/> towards the tail, or -1 at the tail.</summary>
    public int Next(int slot) => _next[slot];

    public void AddLast(int slot)
    {
        EnsureRoom(slot);
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

    /// <summary>Whether <paramref name="slot"/> is linked (it was added and not removed since).</summary>
    public bool Contains(int slot) => slot < _prev.Length && _prev[slot] != Unlinked;

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

    private void EnsureRoom(int slot)
    {
        if (slot < _prev.Length)
        {
            return;
        }

        int size = (int)Math.Min(_capacity, Math.Max((long)_prev.Length * 2, slot + 1L));
        Array.Resize(ref _prev, size);
        Array.Resize(ref _next, size);
    }
}
