using System.Runtime.InteropServices;

namespace ERCache.Tiers.Eviction;

/// <summary>
/// A bounded, lossy, many-writer ring of slot numbers that readers hit. Readers never take the tier lock to
/// record recency; the order is updated from this buffer under the lock (before every eviction decision,
/// and by a reader that finds it half full and the lock free). When the buffer is full a hit is dropped:
/// LRU order becomes approximate only under heavy contention, never unbounded in memory.
/// </summary>
internal sealed class HitBuffer
{
    private const int Size = 256; // power of two
    private const int Mask = Size - 1;
    private readonly int[] _slots = new int[Size]; // slot + 1; 0 = empty or not yet published
    private PaddedLong _claimed;  // next position writers claim
    private PaddedLong _drained;  // next position the drainer reads

    /// <summary>Bytes a buffer holds (its ring and two padded counters).</summary>
    public static long AllocatedBytes => (Size * sizeof(int)) + (2 * 128);

    /// <summary>Records a hit; returns <see langword="true"/> when the buffer is at least half full.</summary>
    public bool Add(int slot)
    {
        long drained = Volatile.Read(ref _drained.Value);
        long position = Volatile.Read(ref _claimed.Value);
        if (position - drained >= Size)
        {
            return true; // full: drop the hit
        }

        if (Interlocked.CompareExchange(ref _claimed.Value, position + 1, position) != position)
        {
            return false; // another reader took this position: drop rather than spin on the hot path
        }

        Volatile.Write(ref _slots[position & Mask], slot + 1);
        return position + 1 - drained >= Size / 2;
    }

    /// <summary>Hands every published hit to <paramref name="apply"/>; call under the tier lock only.</summary>
    public void Drain<TApply>(ref TApply apply)
        where TApply : struct, IHitSink
    {
        long end = Volatile.Read(ref _claimed.Value);
        long position = _drained.Value;
        for (; position < end; position++)
        {
            ref int cell = ref _slots[position & Mask];
            int value = Volatile.Read(ref cell);
            if (value == 0)
            {
                break; // claimed but not yet written: pick it up next time
            }

            cell = 0;
            apply.Hit(value - 1);
        }

        Volatile.Write(ref _drained.Value, position);
    }

    [StructLayout(LayoutKind.Explicit, Size = 128)]
    private struct PaddedLong
    {
        // Padded to two cache lines so readers bumping one counter do not invalidate the other.
        [FieldOffset(64)]
        public long Value;
    }
}

/// <summary>Receives drained hits.</summary>
internal interface IHitSink
{
    void Hit(int slot);
}
