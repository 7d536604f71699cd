using System.Collections.Concurrent;
using System.Numerics;
using ERCache.Diagnostics;
using ERCache.Policies;
using ERCache.Storage;

namespace ERCache.Tiers;

/// <summary>
/// A tier whose vectors live in contiguous per-page slabs, ordered for eviction by <typeparamref name="TPolicy"/>
/// and stored in the <typeparamref name="TCodec"/> format.
/// </summary>
/// <remarks>
/// Concurrency: writes (misses, after inference) take one lock per tier; reads take none. A reader finds a
/// slot through the index, then reads it under the slot's sequence lock: it accepts the copy only when the
/// sequence was even before and unchanged after, and the slot's key equals the requested user. A slot being
/// rewritten or reused for another user is therefore never returned, half old and half new or as the wrong
/// user's vector. The index may briefly point at a slot that was reused; the key check catches that.
/// </remarks>
internal sealed class SlabTier<TPolicy, TCodec> : EmbeddingTier
    where TPolicy : struct, IEvictionPolicy
    where TCodec : struct, IRowCodec
{
    private const int TargetPageBytes = 4 << 20;

    private readonly Lock _sync = new();
    private readonly ConcurrentDictionary<long, int> _index;
    private readonly SlotPage?[] _pages;
    private readonly int _pageShift;
    private readonly int _pageMask;
    private readonly int _rowBytes;
    private TPolicy _policy;
    private int _used;
    private long _evictions;

    public SlabTier(string model, TierPolicy policy, int dimensions, TPolicy evictionPolicy, ERCacheMetrics metrics)
        : base(model, policy, dimensions, metrics)
    {
        _policy = evictionPolicy;
        _rowBytes = TCodec.RowBytes(dimensions);
        int slotsPerPage = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, TargetPageBytes / _rowBytes));
        slotsPerPage = Math.Clamp(slotsPerPage, 16, 4096);
        slotsPerPage = Math.Min(slotsPerPage, (int)BitOperations.RoundUpToPowerOf2((uint)policy.Capacity));
        _pageShift = BitOperations.Log2((uint)slotsPerPage);
        _pageMask = slotsPerPage - 1;
        _pages = new SlotPage?[(policy.Capacity + slotsPerPage - 1) / slotsPerPage];
        _index = new ConcurrentDictionary<long, int>(concurrencyLevel: Environment.ProcessorCount, capacity: Math.Min(policy.Capacity, 1024));
    }

    public override int Count => Volatile.Read(ref _used);

    public override long Evictions => Interlocked.Read(ref _evictions);

    /// <summary>The eviction policy, for tests that check the order (read under no concurrency).</summary>
    internal TPolicy EvictionPolicy => _policy;

    public override bool TryRead(long userId, long now, long ttl, Span<float> destination, out long writtenAt)
    {
        writtenAt = 0;
        if (!_index.TryGetValue(userId, out int slot))
        {
            return false;
        }

        var page = Volatile.Read(ref _pages[slot >> _pageShift])!;
        int i = slot & _pageMask;
        ref int sequence = ref page.Sequence(i);
        var spin = default(SpinWait);
        while (true)
        {
            int before = Volatile.Read(ref sequence);
            if ((before & 1) == 0)
            {
                long key = page.Key(i);
                long written = page.WrittenAt(i);
                bool match = before != 0 && key == userId && IsFresh(now, written, ttl);
                if (match)
                {
                    TCodec.Decode(page.Row(i), destination);
                }

                // Every load above completes before the sequence is read again (a compiler-only fence on x86/x64).
                Volatile.ReadBarrier();
                if (Volatile.Read(ref sequence) == before)
                {
                    if (!match)
                    {
                        return false; // a stable slot of another user, or expired
                    }

                    writtenAt = written;
                    if (_policy.RecordHit(slot))
                    {
                        TryDrainHits();
                    }

                    return true;
                }
            }

            spin.SpinOnce(); // a writer holds the slot; it finishes one row copy and releases
        }
    }

    public override void Write(long userId, ReadOnlySpan<float> vector, long writtenAt)
    {
        lock (_sync)
        {
            _policy.DrainHits();
            if (_index.TryGetValue(userId, out int slot))
            {
                WriteSlot(slot, userId, vector, writtenAt);
                _policy.OnUpdate(slot);
                return;
            }

            if (_used < Capacity)
            {
                slot = _used;
                EnsurePage(slot);
                Volatile.Write(ref _used, _used + 1);
            }
            else
            {
                slot = _policy.SelectVictim();
                _policy.Remove(slot);
                var page = _pages[slot >> _pageShift]!;
                _index.TryRemove(page.Key(slot & _pageMask), out _);
                Interlocked.Increment(ref _evictions);
                RecordEvictions(1);
            }

            WriteSlot(slot, userId, vector, writtenAt);
            _index[userId] = slot;
            _policy.OnInsert(slot);
        }
    }

    private void WriteSlot(int slot, long userId, ReadOnlySpan<float> vector, long writtenAt)
    {
        var page = _pages[slot >> _pageShift]!;
        int i = slot & _pageMask;
        ref int sequence = ref page.Sequence(i);
        int current = sequence;

        // Odd = write in progress. Interlocked makes the odd value visible before any byte of the row changes.
        Interlocked.Exchange(ref sequence, current + 1);
        try
        {
            page.Key(i) = userId;
            page.WrittenAt(i) = writtenAt;
            TCodec.Encode(vector, page.Row(i));
        }
        catch
        {
            Volatile.Write(ref sequence, 0); // a half-written row must read as empty, never spin readers forever
            throw;
        }

        int next = unchecked(current + 2);
        Volatile.Write(ref sequence, next == 0 ? 2 : next); // release: the row is visible before the even value
    }

    private void EnsurePage(int slot)
    {
        ref SlotPage? page = ref _pages[slot >> _pageShift];
        if (page is null)
        {
            Volatile.Write(ref page, new SlotPage(_pageMask + 1, _rowBytes));
        }
    }

    private void TryDrainHits()
    {
        if (_sync.TryEnter())
        {
            try
            {
                _policy.DrainHits();
            }
            finally
            {
                _sync.Exit();
            }
        }
    }
}
