using System.Numerics;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using ERCache.Tiers.Eviction;
using ERCache.Diagnostics;
using ERCache.Storage;

namespace ERCache.Tiers;

/// <summary>
/// A tier whose vectors live in contiguous per-page slabs, found through an open-addressing <see cref="SlotIndex"/>,
/// ordered for eviction by <typeparamref name="TPolicy"/> and stored in the <typeparamref name="TCodec"/> format.
/// No heap object per entry: an entry is a slot (header and row) in a slab, a 4-byte bucket and the policy's links.
/// </summary>
/// <remarks>
/// Concurrency: writes (misses, after inference) take one lock per tier; reads take none. A reader finds candidate
/// slots through the index, then reads each under the slot's sequence lock: it accepts a copy only when the sequence
/// was even before and unchanged after, and the slot's key equals the requested user. A slot being rewritten or
/// reused for another user is therefore never returned, half old and half new or as the wrong user's vector.
/// A miss is confirmed against the index's shift version (see <see cref="SlotIndex"/>); after two unlucky probes
/// the reader looks the key up under the lock, so a busy writer can cost a reader time but never a false miss.
/// </remarks>
internal sealed class SlabTier<TPolicy, TCodec> : EmbeddingTier
    where TPolicy : struct, IEvictionOrder
    where TCodec : struct, IRowCodec
{
    private const int TargetPageBytes = 4 << 20;

    // With huge pages: larger slabs, so that most of each is whole 2 MB pages (a slab's first and last pages straddle
    // its neighbours and stay small): 16–32 MB, of which 82–94 % at 1 KB rows. The tier still grows a slab at a time:
    // its memory is resident once written (2 MB at a time instead of 4 KB), the first slab from when the tier is built
    // and each next one from when half of the current one is (see _nextSlab).
    private const int TargetHugePageBytes = 32 << 20;

    /// <summary>The smallest tier (capacity × slot) that asks for huge pages. A smaller one is within what the TLB
    /// covers with 4 KB pages (8–12 MB on current x64 cores), so they gain it nothing: at 10,000 entries of 1 KB the
    /// benchmarks read no gain, and with every entry read a possible cost (docs/benchmarks.md).</summary>
    internal const long MinHugePageTierBytes = 32L << 20;

    /// <summary>The smallest tier (capacity × slot) whose batch reads prefetch each found slot whole, into the
    /// second-level cache (<see cref="SlotPage.PrefetchWholeSlot"/>). A larger tier than the last-level cache of a core
    /// complex (32 MB on the EPYC measured) serves a batch's rows mostly from memory, where that took a third off the
    /// batch (docs/benchmarks.md). A smaller one often finds them in the second level already, where the extra
    /// instructions (a prefetch per line) cost a batch about a fifth; it prefetches each slot's first lines, as before.</summary>
    internal const long MinWholeSlotPrefetchTierBytes = 32L << 20;

    /// <summary>The smallest tier (capacity × slot) whose LRU order drains its buffered hits a group at a time, each
    /// group's links requested first (<see cref="LruOrder"/>'s <c>prefetchDrains</c>): the rows such a tier streams
    /// through the last-level cache push its order's links out, so each promotion's links were cache misses taken one
    /// after another. The same bound as <see cref="MinWholeSlotPrefetchTierBytes"/>, for the same reason.</summary>
    internal const long MinDrainPrefetchTierBytes = MinWholeSlotPrefetchTierBytes;

    /// <summary>How many of a found slot's first cache lines a smaller tier's batch prefetches into the first-level
    /// cache: with 8 instead of 4, a batch of 1 KB rows at 10,000 entries took 5–9 % less time per user; the whole slot
    /// (17 lines) took as long as 4 (docs/benchmarks.md).</summary>
    internal const int SmallTierPrefetchLines = 8;

    private readonly Lock _sync = new();
    private readonly SlotIndex _index;
    private readonly byte[]?[] _slabs; // one per page: the page's slots, see SlotPage
    private readonly int _pageShift;
    private readonly int _pageMask;
    private readonly int _rowBytes;
    private readonly int _stride;
    private readonly int _slotLines; // cache lines of a slot, for prefetching it
    private readonly int _capacity;
    private readonly Stack<int> _free = new(); // slots emptied by a failed write, reused first
    private readonly bool _hugePages;
    private readonly bool _prefetchWholeSlots; // see MinWholeSlotPrefetchTierBytes
    private readonly TaskScheduler _slabPreparation; // where slabs are prepared ahead (the thread pool)
    private long _advisedSlabBytes; // under _sync

    // How many slots ahead a snapshot's walk in write order prefetches: enough for a slot's lines to arrive from memory
    // while the visits before it are written out.
    private const int SnapshotPrefetchDistance = 8;

    // Request writes that found the lock taken and wait for it. A restore (Restore) lets them go first: on two
    // vCPUs a load that took the lock again right after each of its writes kept a request's write waiting for up to
    // tens of milliseconds (docs/benchmarks.md). Written only on contention, so the uncontended write pays nothing.
    internal const int HandOffSpins = 1000; // turns of SpinWait (spins, then yields of the CPU), never a sleep
    private int _requestWritesWaiting;
    private volatile bool _restoreHoldsLock;

    // What the restore's thread did ahead of its writes (one restore at a time per tier; SnapshotKeeper loads in turn).
    private byte[]? _restoreTouchedSlab; // FaultInAhead faulted this slab in up to _restoreTouchedTo
    private long _restoreTouchedTo;
    private long _restoreFaultedInBytes;
    private long _restoreHandOffSpins;

    // With huge pages, the next slab is allocated and its pages faulted in on the thread pool once the tier has filled
    // half of the current one (see SlabPreparation). A huge page's first touch makes the kernel zero 2 MB (and compact
    // memory first when it has no free huge page): without this, a write stalled under the tier's lock once every 2 MB
    // of the fill, for 0.2–25 ms (docs/benchmarks.md). At most one slab ahead, taken once allocated; not even allocated
    // in time, the write allocates its slab as before (the late one is dropped). The first slab is prepared when the tier
    // is built; a first write that comes before it is allocated puts the first slab on ordinary pages (see EnsurePage).
    private SlabPreparation? _nextSlab; // under _sync
    private SlabPreparation? _fillingSlab; // under _sync: the preparation of the slab being filled, told how far the writes are
    private TPolicy _policy;
    private SlabCounters _counters; // written on every insert and eviction: away from the fields readers read

    /// <summary>A tier of <paramref name="policy"/>'s capacity (lowered to fit its <c>MaxBytes</c>).</summary>
    /// <param name="model">The model's name, for errors and metrics.</param>
    /// <param name="policy">The tier's settings.</param>
    /// <param name="dimensions">Floats per row.</param>
    /// <param name="createPolicy">Builds the eviction order for a capacity and whether the tier is read mostly from memory
    /// (<see cref="MinDrainPrefetchTierBytes"/>).</param>
    /// <param name="metrics">Where evictions are counted.</param>
    /// <param name="slabPreparation">Where slabs are prepared ahead with huge pages (null: the thread pool); tests pass
    /// a manual scheduler.</param>
    public SlabTier(
        string model, TierPolicy policy, int dimensions, Func<int, bool, TPolicy> createPolicy, ERCacheMetrics metrics, TaskScheduler? slabPreparation = null)
        : base(model, policy, dimensions, metrics)
    {
        _capacity = TierSizing.EffectiveCapacity(policy, dimensions);
        if (_capacity < 1)
        {
            throw new InvalidOperationException($"{policy.Kind} tier of model '{model}': MaxBytes {policy.MaxBytes} holds no entry.");
        }

        _rowBytes = TCodec.RowBytes(dimensions);
        _stride = SlotPage.StrideOf(_rowBytes);
        _slotLines = (_stride + Storage.Prefetch.LineBytes - 1) / Storage.Prefetch.LineBytes;
        long tierBytes = (long)_capacity * _stride;
        _policy = createPolicy(_capacity, tierBytes >= MinDrainPrefetchTierBytes);
        // Only a large tier changes its slabs; a smaller one keeps growing ~4 MB at a time, on ordinary pages.
        _hugePages = policy.HugePages && HugePages.Supported && tierBytes >= MinHugePageTierBytes;
        _prefetchWholeSlots = tierBytes >= MinWholeSlotPrefetchTierBytes;
        int slotsPerPage = _hugePages
            ? 1 << BitOperations.Log2((uint)Math.Max(16, TargetHugePageBytes / _stride)) // at most the target
            : Math.Clamp((int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, TargetPageBytes / _stride)), 16, 4096);
        slotsPerPage = Math.Min(slotsPerPage, (int)BitOperations.RoundUpToPowerOf2((uint)_capacity));
        _pageShift = BitOperations.Log2((uint)slotsPerPage);
        _pageMask = slotsPerPage - 1;
        _slabs = new byte[]?[(_capacity + slotsPerPage - 1) / slotsPerPage];
        _index = new SlotIndex(_capacity, KeyOfSlot, BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)), hugePages: _hugePages);
        _slabPreparation = slabPreparation ?? TaskScheduler.Default;
        if (_hugePages)
        {
            // Resident from now on (16–32 MB), as it would be after the tier's first 16,384–32,768 writes anyway; those
            // writes no longer fault its huge pages in under the lock, 2 MB each (up to 25 ms each was measured).
            lock (_sync)
            {
                PrepareSlab(0);
            }
        }
    }

    /// <summary>Whether a batch's prefetch loads each found slot whole (see <see cref="MinWholeSlotPrefetchTierBytes"/>).</summary>
    internal bool PrefetchesWholeSlots => _prefetchWholeSlots;

    /// <summary>Slots per slab.</summary>
    internal int SlotsPerPage => _pageMask + 1;

    /// <summary>The preparation of the next slab, if one is under way or ready and not yet taken (for tests).</summary>
    internal SlabPreparation? NextSlab
    {
        get
        {
            lock (_sync)
            {
                return _nextSlab;
            }
        }
    }

    /// <summary>The next slab once it is allocated (its pages may still be being faulted in) and until a write takes it
    /// (for tests).</summary>
    internal byte[]? ReadySlab
    {
        get
        {
            lock (_sync)
            {
                return _nextSlab?.Slab;
            }
        }
    }

    /// <summary>The preparation of the slab being filled, when it was taken from one (for tests).</summary>
    internal SlabPreparation? FillingSlab
    {
        get
        {
            lock (_sync)
            {
                return _fillingSlab;
            }
        }
    }

    /// <summary>The slab of page <paramref name="page"/>, or null before its first write (for tests).</summary>
    internal byte[]? SlabOf(int page) => Volatile.Read(ref _slabs[page]);

    /// <summary>Bytes a restore faulted in ahead of its writes, outside the lock (for tests; the restore's thread).</summary>
    internal long RestoreFaultedInBytes => _restoreFaultedInBytes;

    /// <summary>Turns a restore waited for request writes before its own (for tests; the restore's thread).</summary>
    internal long RestoreHandOffSpins => _restoreHandOffSpins;

    /// <summary>Request writes waiting for the lock now (for tests).</summary>
    internal int RequestWritesWaiting => Volatile.Read(ref _requestWritesWaiting);

    /// <summary>Takes the tier's write lock until the returned scope is disposed (for tests).</summary>
    internal Lock.Scope HoldWriteLock() => _sync.EnterScope();

    public override long HugePageBytes
    {
        get
        {
            lock (_sync)
            {
                return _advisedSlabBytes + _index.AdvisedBytes;
            }
        }
    }

    public override int Capacity => _capacity;

    public override int Count => Volatile.Read(ref _counters.Count);

    public override long Evictions => Interlocked.Read(ref _counters.Evictions);

    public override long ExpiredReclaimed => Interlocked.Read(ref _counters.Expired);

    public override double BytesPerEntry =>
        _stride + _index.BytesPerEntryAtCapacity(_capacity) + TPolicy.BytesPerEntry;

    public override long AllocatedBytes
    {
        get
        {
            lock (_sync)
            {
                long bytes = _index.AllocatedBytes + _policy.AllocatedBytes + ((long)_slabs.Length * IntPtr.Size);
                bytes += _nextSlab?.Slab?.LongLength ?? 0;

                foreach (var slab in _slabs)
                {
                    bytes += slab?.LongLength ?? 0;
                }

                return bytes;
            }
        }
    }

    /// <summary>The eviction policy, for tests that check the order (read under no concurrency).</summary>
    internal TPolicy EvictionPolicy => _policy;

    /// <summary>The key stored in a slot, for tests that check the order.</summary>
    internal long KeyAt(int slot) => KeyOfSlot(slot);

    public override bool TryRead(long userId, long now, long ttl, Span<float> destination, out long writtenAt)
    {
        for (int attempt = 0; attempt < 2; attempt++)
        {
            int version = _index.ShiftVersion;
            var probe = _index.StartProbe(userId);
            while (probe.MoveNext(out int slot))
            {
                var outcome = ReadSlot(slot, userId, now, ttl, destination, out writtenAt);
                if (outcome == SlotRead.Hit)
                {
                    if (_policy.RecordHit(slot))
                    {
                        TryDrainHits();
                    }

                    return true;
                }

                if (outcome == SlotRead.Expired)
                {
                    return false; // the key is here but too old; a key is indexed once, so stop
                }
            }

            if ((version & 1) == 0 && _index.ShiftVersion == version)
            {
                writtenAt = 0;
                return false; // no removal moved buckets during the probe: a true miss
            }
        }

        return TryReadLocked(userId, now, ttl, destination, out writtenAt);
    }

    public override void ForEachEntry(TierEntryVisitor visitor, bool withRows)
    {
        var row = withRows ? new byte[_rowBytes] : [];
        int used = Volatile.Read(ref _counters.Used);
        for (int slot = 0; slot < used; slot++)
        {
            if (Page(slot).TryCopy(slot & _pageMask, out long key, out long writtenAt, row))
            {
                visitor(key, writtenAt, row);
            }
        }
    }

    /// <summary>Sorts the slots by their write stamps, read without the lock, then visits them newest first; a slot
    /// rewritten since it was sorted is visited with what it holds then (a duplicate user's older copy is kept out
    /// at restore). Sorted, the slots are read out of order, so each is prefetched a few visits ahead.</summary>
    public override void ForEachEntryNewestFirst(TierEntryVisitor visitor)
    {
        int used = Volatile.Read(ref _counters.Used);
        var stamps = new long[used];
        var slots = new int[used];
        int held = 0;
        for (int slot = 0; slot < used; slot++)
        {
            if (Page(slot).TryCopy(slot & _pageMask, out _, out long writtenAt, []))
            {
                stamps[held] = -writtenAt; // ascending order of the negated stamp: newest first
                slots[held++] = slot;
            }
        }

        Array.Sort(stamps, slots, 0, held);
        var row = new byte[_rowBytes];
        for (int i = 0; i < held; i++)
        {
            if (i + SnapshotPrefetchDistance < held)
            {
                int ahead = slots[i + SnapshotPrefetchDistance];
                Page(ahead).PrefetchSlot(ahead & _pageMask, _slotLines);
            }

            int slot = slots[i];
            if (Page(slot).TryCopy(slot & _pageMask, out long key, out long writtenAt, row))
            {
                visitor(key, writtenAt, row);
            }
        }
    }

    public override bool TryGetWrittenAt(long userId, long now, long ttl, out long writtenAt)
    {
        writtenAt = 0;
        lock (_sync)
        {
            // Under the lock: a rare peek (the urgency of a miss, the warm share of a rollout) needs no lock-free path.
            int slot = _index.Find(userId);
            return slot >= 0 && Page(slot).TryReadStamp(slot & _pageMask, userId, out writtenAt) && SlotPage.IsFresh(now, writtenAt, ttl);
        }
    }

    /// <summary>Two rounds of prefetches: every user's home bucket, then (the buckets now arriving) each first
    /// candidate's slot: in a large tier the whole slot into the second-level cache, in a smaller one its header and the
    /// start of its row (see <see cref="MinWholeSlotPrefetchTierBytes"/>). The candidates are what the second round
    /// found.</summary>
    public override void Prefetch(ReadOnlySpan<long> users, Span<int> candidates)
    {
        int n = Math.Min(users.Length, PrefetchBatch);
        Unsafe.SkipInit(out PrefetchBuffer<ulong> hashBuffer); // not stackalloc (see PrefetchBuffer); each hash read is written first
        Span<ulong> hashes = hashBuffer;
        for (int i = 0; i < n; i++)
        {
            hashes[i] = _index.PrefetchHome(users[i]);
        }

        int rowLines = Math.Min(SmallTierPrefetchLines, _slotLines);
        for (int i = 0; i < n; i++)
        {
            int slot = _index.FirstCandidate(hashes[i]);
            if (TryPageOf(slot, out var page))
            {
                if (_prefetchWholeSlots)
                {
                    page.PrefetchWholeSlot(slot & _pageMask);
                }
                else
                {
                    page.PrefetchSlot(slot & _pageMask, rowLines);
                }

                _policy.PrefetchHit(slot); // the hit's own bookkeeping (LRU's recent moves, SIEVE's bit) misses too
                candidates[i] = slot;
            }
            else
            {
                candidates[i] = NoCandidate;
            }
        }
    }

    /// <summary>
    /// Prefetches the user's home bucket (the write's lookup and insert probe it), and in a full tier the slot the
    /// eviction order would take now, the home bucket of the key it holds (the eviction unindexes it) and the header of
    /// the oldest entry (the write checks whether it expired). Racy reads of the order and of that key, without the lock:
    /// a slot that is no longer the victim by the time of the write, or a key read while it changed, only wastes a hint,
    /// and a slot number outside the tier's pages is skipped.
    /// </summary>
    public override void PrefetchWrite(long userId)
    {
        _index.PrefetchHome(userId);
        if (Volatile.Read(ref _counters.Used) < _capacity)
        {
            return; // still filling: the write takes a fresh slot
        }

        int oldest = _policy.OldestWritten;
        if (TryPageOf(oldest, out var oldestPage))
        {
            oldestPage.PrefetchSlot(oldest & _pageMask, lines: 1);
        }

        int victim = _policy.VictimHint;
        if (TryPageOf(victim, out var victimPage))
        {
            victimPage.PrefetchWholeSlot(victim & _pageMask);
            _index.PrefetchHome(victimPage.Key(victim & _pageMask));
        }
    }

    /// <summary>The page of <paramref name="slot"/>, when it is one of this tier's slots and its page exists (a slot
    /// number from a racy read or a prefetch's candidate may be neither).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryPageOf(int slot, out SlotPage page)
    {
        if ((uint)slot < (uint)_capacity && Volatile.Read(ref _slabs[slot >> _pageShift]) is { } slab)
        {
            page = new SlotPage(slab, _rowBytes, _stride);
            return true;
        }

        page = default;
        return false;
    }

    public override bool TryReadFrom(int candidate, long userId, long now, long ttl, Span<float> destination, out long writtenAt)
    {
        if (candidate >= 0) // a slot this tier's Prefetch found, so one whose page exists
        {
            // A slot is only ever the home of one key, and the read checks the key under the slot's sequence lock: a slot
            // that reads as this user holds the user's current entry, however old the candidate. Another key, an empty or
            // a busy slot sends the user through the full lookup (a tag collision, or a write since the prefetch).
            var outcome = ReadSlot(candidate, userId, now, ttl, destination, out writtenAt);
            if (outcome == SlotRead.Hit)
            {
                if (_policy.RecordHit(candidate))
                {
                    TryDrainHits();
                }

                return true;
            }

            if (outcome == SlotRead.Expired)
            {
                return false;
            }
        }

        return TryRead(userId, now, ttl, destination, out writtenAt);
    }

    public override void Write(long userId, ReadOnlySpan<float> vector, long writtenAt, long ttl = long.MaxValue)
    {
        EnterAsRequest();
        try
        {
            _policy.DrainHits();
            int slot = _index.Find(userId);
            if (slot >= 0)
            {
                WriteSlot(slot, userId, vector, writtenAt); // the key's index entry stays; only the row changes
                _policy.OnUpdate(slot);
                return;
            }

            slot = TakeSlot(writtenAt, ttl);
            WriteNewKey(slot, userId, vector, writtenAt);
            _policy.OnInsert(slot);
            Volatile.Write(ref _counters.Count, _counters.Count + 1);
        }
        finally
        {
            _sync.Exit();
        }
    }

    public override bool TryWriteNewer(long userId, ReadOnlySpan<float> vector, long writtenAt, long ttl, Func<long, bool>? removed = null)
    {
        EnterAsRequest();
        try
        {
            return WriteIfNewer(userId, vector, writtenAt, ttl, removed);
        }
        finally
        {
            _sync.Exit();
        }
    }

    public override RestoreResult Restore(long userId, ReadOnlySpan<float> vector, long writtenAt, long ttl, Func<long, bool>? removed = null)
    {
        // Let waiting request writes take the lock first. Each one counted here is waiting for the lock, which this
        // thread does not hold, so it takes it and stops counting. Requests that keep the lock busy without a break hold
        // the load back for at most HandOffSpins turns per entry: it is slowed, never stopped.
        var spin = new SpinWait();
        while (Volatile.Read(ref _requestWritesWaiting) != 0 && spin.Count < HandOffSpins)
        {
            spin.SpinOnce(sleep1Threshold: -1);
        }

        _restoreHandOffSpins += spin.Count;

        if (_hugePages)
        {
            FaultInAhead();
        }

        // Set before the lock is taken, so that no request write finds the lock held without it and blocks.
        _restoreHoldsLock = true;
        try
        {
            lock (_sync)
            {
                return RestoreIfNewer(userId, vector, writtenAt, ttl, removed);
            }
        }
        finally
        {
            _restoreHoldsLock = false;
        }
    }

    /// <summary><see cref="Restore"/>'s checks and write. Under the lock. A snapshot is written newest first
    /// (<see cref="ForEachEntryNewestFirst"/>), and the requests' writes meanwhile are newer still, so a restored entry is
    /// older than every entry the tier holds: it goes where the next victim is (<see cref="IEvictionOrder.OnRestore"/>),
    /// which keeps the order in write order, and a full tier keeps what it holds rather than evict it for something
    /// older.</summary>
    private RestoreResult RestoreIfNewer(long userId, ReadOnlySpan<float> vector, long writtenAt, long ttl, Func<long, bool>? removed)
    {
        _policy.DrainHits();
        int slot = _index.Find(userId);
        if (removed?.Invoke(userId) == true || (slot >= 0 && Page(slot).WrittenAt(slot & _pageMask) >= writtenAt))
        {
            return RestoreResult.Kept;
        }

        if (slot >= 0)
        {
            // An older copy of the user (a regional hit's): rewritten in place, so readers never miss the user. It moves
            // as a write does, which only makes this one rare entry later to go.
            Write(userId, vector, writtenAt, ttl);
            return RestoreResult.Restored;
        }

        if (!TryTakeUnusedSlot(out slot))
        {
            return RestoreResult.TierFull; // every entry held is newer; an expired one is left for the requests' writes to reclaim
        }

        WriteNewKey(slot, userId, vector, writtenAt);
        _policy.OnRestore(slot);
        Volatile.Write(ref _counters.Count, _counters.Count + 1);
        return RestoreResult.Restored;
    }

    public override bool Remove(long userId)
    {
        EnterAsRequest();
        try
        {
            _policy.DrainHits();
            int slot = _index.Find(userId);
            if (slot < 0)
            {
                return false;
            }

            Empty(slot);
            return true;
        }
        finally
        {
            _sync.Exit();
        }
    }

    public override int Clear()
    {
        lock (_sync)
        {
            _policy.DrainHits();
            int removed = 0;
            for (int slot = 0; slot < _counters.Used; slot++)
            {
                if (SlotPage.HoldsEntry(Volatile.Read(ref Page(slot).Sequence(slot & _pageMask))))
                {
                    Empty(slot);
                    removed++;
                }
            }

            return removed;
        }
    }

    /// <summary>
    /// A restore's writes fill the tier faster than its slabs are prepared, so they would fault each huge page in under
    /// the lock (4–25 ms each here) while requests wait for it. Outside the lock, whenever the next fresh slot ends past
    /// what it faulted in, this faults in up to the 2 MB boundary after that slot's end and 2 MB more, each byte once; the
    /// writes then find their memory mapped. Racy by design: the next
    /// slot is read without the lock and only names memory to touch, which changes no value (see
    /// <see cref="HugePages.TouchEveryPage"/>). A full tier reuses slots already mapped; a slab not installed yet is left
    /// to the write that installs it.
    /// </summary>
    private void FaultInAhead()
    {
        int next = Volatile.Read(ref _counters.Used);
        if (next >= _capacity || Volatile.Read(ref _slabs[next >> _pageShift]) is not { } slab)
        {
            return;
        }

        long reached = (long)((next & _pageMask) + 1) * _stride;
        if (!ReferenceEquals(slab, _restoreTouchedSlab))
        {
            (_restoreTouchedSlab, _restoreTouchedTo) = (slab, 0);
        }

        if (reached <= _restoreTouchedTo)
        {
            return;
        }

        int from = (int)_restoreTouchedTo;
        int to = (int)Math.Min(slab.Length, ((reached + HugePages.PageBytes - 1) & ~(HugePages.PageBytes - 1L)) + HugePages.PageBytes);
        HugePages.TouchEveryPage(slab.AsSpan(from, to - from));
        _restoreTouchedTo = to;
        _restoreFaultedInBytes += to - from;
    }

    /// <summary>Takes the lock for a request's write or removal, counted in <see cref="_requestWritesWaiting"/> while it
    /// has to wait (see <see cref="Restore"/>). The caller exits the lock.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void EnterAsRequest()
    {
        if (!_sync.TryEnter())
        {
            EnterAsWaitingRequest();
        }
    }

    /// <summary>The lock is taken: waits for it, counted in <see cref="_requestWritesWaiting"/>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void EnterAsWaitingRequest()
    {
        Interlocked.Increment(ref _requestWritesWaiting);
        try
        {
            // While a restore holds the lock, spin: it holds it for one write and then lets this one go first, and a
            // thread that blocked instead took 2–5 ms to be woken on this machine's virtual CPUs (docs/benchmarks.md).
            var spin = new SpinWait();
            while (_restoreHoldsLock && spin.Count < HandOffSpins)
            {
                if (_sync.TryEnter())
                {
                    return;
                }

                spin.SpinOnce(sleep1Threshold: -1);
            }

            _sync.Enter();
        }
        finally
        {
            Interlocked.Decrement(ref _requestWritesWaiting);
        }
    }

    /// <summary><see cref="TryWriteNewer"/>'s checks and write. Under the lock.</summary>
    private bool WriteIfNewer(long userId, ReadOnlySpan<float> vector, long writtenAt, long ttl, Func<long, bool>? removed)
    {
        int slot = _index.Find(userId);
        if (removed?.Invoke(userId) == true || (slot >= 0 && Page(slot).WrittenAt(slot & _pageMask) >= writtenAt))
        {
            return false;
        }

        Write(userId, vector, writtenAt, ttl); // the lock is re-entrant
        return true;
    }

    /// <summary>Takes an entry out of the order and the index and keeps its slot for the next write. Under the lock.</summary>
    private void Empty(int slot)
    {
        _policy.Remove(slot);
        _index.Remove(KeyOfSlot(slot), slot);
        Page(slot).Clear(slot & _pageMask);
        _free.Push(slot);
        Volatile.Write(ref _counters.Count, _counters.Count - 1);
    }

    /// <summary>A slot for a new key: a free one, a fresh one while the tier fills, else an expired entry's, else
    /// the policy's victim's. Under the lock.</summary>
    private int TakeSlot(long now, long ttl)
    {
        if (TryTakeUnusedSlot(out int slot))
        {
            return slot;
        }

        int oldest = _policy.OldestWritten;
        bool expired = !SlotPage.IsFresh(now, Page(oldest).WrittenAt(oldest & _pageMask), ttl);
        slot = expired ? oldest : _policy.SelectVictim();
        _policy.Remove(slot);
        _index.Remove(KeyOfSlot(slot), slot);
        Volatile.Write(ref _counters.Count, _counters.Count - 1);
        Interlocked.Increment(ref _counters.Evictions);
        if (expired)
        {
            Interlocked.Increment(ref _counters.Expired);
        }

        RecordEvictions(1, expired);
        return slot;
    }

    /// <summary>A free slot, or a fresh one while the tier fills. Under the lock.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryTakeUnusedSlot(out int slot)
    {
        if (_free.TryPop(out slot))
        {
            return true;
        }

        if (_counters.Used < _capacity)
        {
            slot = _counters.Used;
            EnsurePage(slot);
            _fillingSlab?.Wrote(slot & _pageMask);
            _counters.Used++;
            if (_hugePages && (slot & _pageMask) == (_pageMask + 1) / 2 && (slot >> _pageShift) + 1 < _slabs.Length)
            {
                PrepareSlab((slot >> _pageShift) + 1); // half of this slab is filled: start on the next
            }

            return true;
        }

        return false;
    }

    private bool TryReadLocked(long userId, long now, long ttl, Span<float> destination, out long writtenAt)
    {
        writtenAt = 0;
        lock (_sync)
        {
            int slot = _index.Find(userId);
            return slot >= 0 && ReadSlot(slot, userId, now, ttl, destination, out writtenAt) == SlotRead.Hit;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private SlotRead ReadSlot(int slot, long userId, long now, long ttl, Span<float> destination, out long writtenAt) =>
        Page(slot).Read<TCodec>(slot & _pageMask, userId, now, ttl, destination, out writtenAt);

    /// <summary>Writes a key not in the tier into the empty <paramref name="slot"/> it took, and indexes it; the caller
    /// then places it in the order. A failed write gives the slot back. Under the lock.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteNewKey(int slot, long userId, ReadOnlySpan<float> vector, long writtenAt)
    {
        try
        {
            WriteSlot(slot, userId, vector, writtenAt);
        }
        catch
        {
            _free.Push(slot); // the slot reads as empty (sequence 0); keep it for the next write
            throw;
        }

        _index.Add(userId, slot);
    }

    private void WriteSlot(int slot, long userId, ReadOnlySpan<float> vector, long writtenAt) =>
        Page(slot).Write<TCodec>(slot & _pageMask, userId, vector, writtenAt);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private SlotPage Page(int slot) => new(Volatile.Read(ref _slabs[slot >> _pageShift])!, _rowBytes, _stride);

    /// <summary>The key in a slot; the index calls it under the lock to rehash and to compare keys in full.</summary>
    private long KeyOfSlot(int slot) => Page(slot).Key(slot & _pageMask);

    private void EnsurePage(int slot)
    {
        int page = slot >> _pageShift;
        ref byte[]? slab = ref _slabs[page];
        if (slab is null)
        {
            // Not prepared in time: the first slab goes on ordinary pages (its preparation started when the tier was built,
            // so the tier is filled the moment it exists, and each huge page would stall this write); a later one on huge
            // pages as before, since ordinary pages for the rest of a fast-filling tier would cost every hit on them.
            var next = TakePreparation(page);
            var taken = next?.TryTake();
            _fillingSlab = taken is null ? null : next; // told how far the writes come, while it faults the slab in
            var (allocated, advised) = taken
                ?? (SlotPage.AllocateSlab(SlotsOnPage(page), _rowBytes, _hugePages && page > 0, out long advisedNow), advisedNow);
            Volatile.Write(ref slab, allocated);
            _advisedSlabBytes += advised;
        }
    }

    /// <summary>The last page holds only what capacity needs.</summary>
    private int SlotsOnPage(int page) => Math.Min(_pageMask + 1, _capacity - (page << _pageShift));

    /// <summary>Starts allocating and faulting in page <paramref name="page"/>'s slab on the preparation scheduler.
    /// Under the lock.</summary>
    private void PrepareSlab(int page) => _nextSlab = SlabPreparation.Start(page, SlotsOnPage(page), _rowBytes, _slabPreparation);

    /// <summary>The preparation of the next slab if it is for <paramref name="page"/>, taken from
    /// <see cref="_nextSlab"/>; its <see cref="SlabPreparation.TryTake"/> says whether the slab is allocated yet (if not,
    /// the writer allocates rather than wait under the lock, and the late one is dropped). Under the lock.</summary>
    private SlabPreparation? TakePreparation(int page)
    {
        var next = _nextSlab;
        if (next is null || next.Page != page)
        {
            return null;
        }

        _nextSlab = null;
        return next;
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
