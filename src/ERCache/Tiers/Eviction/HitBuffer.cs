using System.Numerics;
using System.Runtime.CompilerServices;
using ERCache.Internal;

namespace ERCache.Tiers.Eviction;

/// <summary>
/// A bounded, lossy, many-writer record of the slots readers hit, drained into the LRU order under the tier lock (before
/// every eviction decision, and by a reader that finds a stripe half full and the lock free). Readers never take the
/// lock and never execute an interlocked instruction: the buffer is split into rings (one per processor, up to 16), a
/// thread appends to the ring of its managed thread id (a thread-local read; asking the OS for the current processor
/// costs more than the rest of the append here) with plain loads and stores. Two threads that share a ring can race;
/// then a hit is lost or recorded late, which an LRU order tolerates (the buffer already drops hits when a ring is
/// full). What the drainer reads is always a slot number some reader wrote:
/// the order can be slightly stale, never corrupted, and memory stays bounded.
/// </summary>
internal sealed class HitBuffer
{
    private const int Size = 256; // per ring, a power of two
    private const int Mask = Size - 1;
    private const int MaxRings = 16;

    /// <summary>Hits a prefetching drain requests together: as many as a batch read prefetches.</summary>
    public const int DrainGroup = EmbeddingTier.PrefetchBatch;

    private static readonly int RingCount = (int)Math.Min(MaxRings, BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, Environment.ProcessorCount)));
    private readonly Ring[] _rings;
    private readonly int _ringMask;

    public HitBuffer()
    {
        _rings = new Ring[RingCount];
        for (int i = 0; i < RingCount; i++)
        {
            _rings[i] = new Ring();
        }

        _ringMask = RingCount - 1;
    }

    /// <summary>Bytes a buffer holds on this machine (its rings, each with two padded counters).</summary>
    public static long AllocatedBytes => RingCount * ((Size * sizeof(int)) + (2 * 128));

    /// <summary>Records a hit on <paramref name="slot"/>; returns <see langword="true"/> when the ring is half full or
    /// more (the caller should try to drain).</summary>
    public bool Add(int slot) => _rings[Environment.CurrentManagedThreadId & _ringMask].Add(slot);

    /// <summary>Applies every recorded hit to <paramref name="apply"/>, ring by ring. Under the tier lock.</summary>
    public void Drain<TApply>(ref TApply apply)
        where TApply : struct, IHitSink
    {
        foreach (var ring in _rings)
        {
            ring.Drain(ref apply);
        }
    }

    /// <summary>
    /// <see cref="Drain{TApply}"/> for an order whose bookkeeping is read from memory: the same hits, applied in the same
    /// order, but <see cref="DrainGroup"/> at a time, each group's state requested first (<see cref="IHitSink.Prefetch"/>,
    /// then <see cref="IHitSink.PrefetchNeighbours"/>), so that its cache misses overlap instead of following one another.
    /// Under the tier lock.
    /// </summary>
    public void DrainPrefetching<TApply>(ref TApply apply)
        where TApply : struct, IHitSink
    {
        foreach (var ring in _rings)
        {
            ring.DrainPrefetching(ref apply);
        }
    }

    private sealed class Ring
    {
        private readonly int[] _slots = new int[Size]; // slot + 1; 0 = empty or not yet written
        private PaddedLong _appended; // next position a reader writes (padded: readers moving one counter do not invalidate the other)
        private PaddedLong _drained;  // next position the drainer reads

        public bool Add(int slot)
        {
            long drained = Volatile.Read(ref _drained.Value);
            long position = _appended.Value;
            if ((ulong)(position - drained) >= Size)
            {
                // Full (or, after a preempted append moved the position back, behind the drainer): drop the hit,
                // and move the position up to the drainer so appends resume.
                _appended.Value = Math.Max(position, drained);
                return true;
            }

            _appended.Value = position + 1;
            Volatile.Write(ref _slots[position & Mask], slot + 1);
            return position + 1 - drained >= Size / 2;
        }

        public void Drain<TApply>(ref TApply apply)
            where TApply : struct, IHitSink
        {
            long end = Volatile.Read(ref _appended.Value);
            long position = _drained.Value;
            for (; position < end && TryTake(position, out int slot); position++)
            {
                apply.Hit(slot);
            }

            Volatile.Write(ref _drained.Value, position);
        }

        public void DrainPrefetching<TApply>(ref TApply apply)
            where TApply : struct, IHitSink
        {
            long end = Volatile.Read(ref _appended.Value);
            long position = _drained.Value;
            Unsafe.SkipInit(out PrefetchBuffer<int> groupBuffer); // not stackalloc (see PrefetchBuffer); each slot read is written first
            Span<int> group = groupBuffer;
            bool unwritten = false;
            while (!unwritten && position < end)
            {
                int count = 0;
                for (; count < group.Length && position < end; position++)
                {
                    if (!TryTake(position, out int slot))
                    {
                        unwritten = true;
                        break;
                    }

                    group[count++] = slot;
                    apply.Prefetch(slot);
                }

                // The group's own state has been requested; now what it points to (its neighbours' links), then the moves.
                for (int i = 0; i < count; i++)
                {
                    apply.PrefetchNeighbours(group[i]);
                }

                for (int i = 0; i < count; i++)
                {
                    apply.Hit(group[i]);
                }
            }

            Volatile.Write(ref _drained.Value, position);
        }

        /// <summary>Takes the hit appended at <paramref name="position"/> and empties its cell; false when that cell was
        /// appended but not yet written (the drain stops there and picks it up next time).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private bool TryTake(long position, out int slot)
        {
            ref int cell = ref _slots[position & Mask];
            int value = Volatile.Read(ref cell);
            slot = value - 1;
            if (value == 0)
            {
                return false;
            }

            cell = 0;
            return true;
        }
    }
}

/// <summary>Receives drained hits (a struct, so the drain loop is specialised and inlined).</summary>
internal interface IHitSink
{
    /// <summary>Starts loading the state <see cref="Hit"/> reads first for <paramref name="slot"/> (only a hint: any slot
    /// number, changes nothing).</summary>
    void Prefetch(int slot);

    /// <summary>Starts loading the state <see cref="Hit"/> reads next, found through <paramref name="slot"/>'s own (only a
    /// hint, read without relying on it: any slot number, changes nothing).</summary>
    void PrefetchNeighbours(int slot);

    void Hit(int slot);
}
