using System.Numerics;
using System.Runtime.CompilerServices;
using System.IO.Hashing;
using System.Runtime.InteropServices;

namespace ERCache.Storage;

/// <summary>
/// The index of a slab tier: user id to slot, as an open-addressing (linear probing) table of 32-bit buckets.
/// No object per entry: a bucket holds the slot number plus 1 in its low bits and a tag (the top bits of the
/// key's hash) in the rest, so a probe skips other keys' buckets without touching their slots. The key itself is
/// compared in full in the slot header, which is the only place it is stored.
/// </summary>
/// <remarks>
/// <para>Writers (add, remove) run under the owning tier's lock; readers take no lock. A reader may see a
/// bucket that names a slot since reused by another key, which the slot's key check rejects; it can never be
/// handed another key's vector by the index.</para>
/// <para>Removal shifts later buckets of the probe run back (no tombstones, so the table never silts up). A reader
/// probing during a shift could step past a key that is moving behind it and report a miss that is not one, so
/// shifts are bracketed by <see cref="ShiftVersion"/> (odd while shifting): a reader that finds nothing confirms the
/// miss only when the version was even and unchanged across its probe. A removal that moves nothing leaves the version
/// alone: no probe for another key passes the bucket it empties.</para>
/// <para>Beside each bucket, the writer keeps how far it sits from its key's home (one byte; 255 = further, rare), so a
/// removal's shift knows where each later bucket may move without reading its key back from its slot (a cache miss
/// and a hash per bucket of the run, most of an eviction's cost before).</para>
/// <para>The table is allocated at its final size when the tier is built, 4/3 of the capacity (at most three quarters
/// full): about 6.7 bytes per entry of capacity, paid up front so that no rehash ever runs on the write path (a
/// rehash must read every key back from its slot, a cache miss each).</para>
/// </remarks>
internal sealed class SlotIndex
{
    /// <summary>Largest capacity the bucket encoding supports while keeping at least 4 tag bits.</summary>
    public const int MaxCapacity = ERCacheLimits.MaxTierCapacity;

    private readonly Func<int, long> _keyOfSlot;
    private readonly uint[] _buckets;
    private readonly byte[] _distances; // writer only: bucket i holds a key whose home is i - _distances[i] (255: look it up)
    private readonly int _slotBits;
    private readonly uint _slotMask;
    private readonly int _tagShift;
    private readonly ulong _seed;
    private WriterFields _writer; // the entry count and the shift version, away from the fields above (see WriterFields)

    /// <param name="capacity">Most entries the index will hold.</param>
    /// <param name="keyOfSlot">Reads the key stored in a slot (called under the writer lock only).</param>
    /// <param name="seed">Hash seed; a random one per tier keeps crafted user ids from piling into one run.</param>
    /// <param name="tableLength">Buckets, for tests that need a short table with long shared runs; by default 4/3 of
    /// <paramref name="capacity"/>. A shorter table must always keep at least one bucket empty.</param>
    /// <param name="hugePages">Ask for huge pages for the buckets (<see cref="HugePages"/>): every probe lands at random.</param>
    public SlotIndex(int capacity, Func<int, long> keyOfSlot, ulong seed, int? tableLength = null, bool hugePages = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, MaxCapacity);
        _keyOfSlot = keyOfSlot;
        _seed = seed;
        _slotBits = 32 - BitOperations.LeadingZeroCount((uint)capacity); // enough bits for slot + 1 <= capacity
        _slotMask = (1u << _slotBits) - 1;
        _tagShift = 32 + _slotBits; // the tag is the hash's top (32 - slotBits) bits; the home uses its low 32
        _buckets = HugePages.Allocate<uint>(tableLength ?? (int)Math.Max(8, ((capacity * 4L) + 2) / 3), hugePages, out long advised);
        AdvisedBytes = advised;
        _distances = new byte[_buckets.Length];
    }

    /// <summary>Entries held.</summary>
    public int Count => _writer.Count;

    /// <summary>Bytes of the buckets backed by huge pages on request (see <see cref="HugePages"/>); 0 when not asked or
    /// not possible.</summary>
    public long AdvisedBytes { get; }

    /// <summary>Bytes of the bucket array.</summary>
    public long AllocatedBytes => (long)_buckets.Length * (sizeof(uint) + sizeof(byte));

    /// <summary>Bytes per entry when the index is full (4/3 of a bucket and its distance).</summary>
    public double BytesPerEntryAtCapacity(int capacity) => (double)AllocatedBytes / capacity;

    /// <summary>Odd while a removal shifts buckets; read it before and after a probe that found nothing.</summary>
    public int ShiftVersion => Volatile.Read(ref _writer.ShiftVersion);

    /// <summary>XXH3-64 of the user id's 8 bytes (little-endian, as on every platform .NET runs this on) with the
    /// tier's seed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong Hash(long userId, ulong seed) =>
        XxHash3.HashToUInt64(MemoryMarshal.AsBytes(new ReadOnlySpan<long>(in userId)), (long)seed);

    /// <summary>Starts a lock-free probe for <paramref name="userId"/>: yields the slots whose tag matches.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Probe StartProbe(long userId)
    {
        ulong hash = Hash(userId, _seed);
        return new Probe(_buckets, hash, (uint)(hash >> _tagShift), _slotBits, _slotMask);
    }

    /// <summary>Hints the processor to load <paramref name="userId"/>'s home bucket; returns the key's hash for
    /// <see cref="FirstCandidate"/>. No lock: only a hint.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong PrefetchHome(long userId)
    {
        ulong hash = Hash(userId, _seed);
        Prefetch.Line(ref _buckets[Home(hash, _buckets.Length)]);
        return hash;
    }

    /// <summary>The first slot whose bucket tag matches <paramref name="hash"/>, or -1: a racy look for prefetching,
    /// never a result (the reader checks the slot's key under its sequence lock as always).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int FirstCandidate(ulong hash)
    {
        var probe = new Probe(_buckets, hash, (uint)(hash >> _tagShift), _slotBits, _slotMask);
        return probe.MoveNext(out int slot) ? slot : -1;
    }

    /// <summary>The slot holding <paramref name="userId"/>, or -1. Writer lock only.</summary>
    public int Find(long userId)
    {
        var probe = StartProbe(userId);
        while (probe.MoveNext(out int slot))
        {
            if (_keyOfSlot(slot) == userId)
            {
                return slot;
            }
        }

        return -1;
    }

    /// <summary>Adds a key that is not present, stored in <paramref name="slot"/>. Writer lock only.</summary>
    public void Add(long userId, int slot)
    {
        ulong hash = Hash(userId, _seed);
        int home = Home(hash, _buckets.Length);
        int i = home;
        while (_buckets[i] != 0)
        {
            i = Next(i, _buckets.Length);
        }

        _distances[i] = DistanceByte(home, i);
        Volatile.Write(ref _buckets[i], Bucket(hash, slot));
        _writer.Count++;
    }

    /// <summary>Removes <paramref name="userId"/>, stored in <paramref name="slot"/>. Writer lock only.</summary>
    public void Remove(long userId, int slot)
    {
        var buckets = _buckets;
        ulong hash = Hash(userId, _seed);
        uint wanted = Bucket(hash, slot);
        int i = Home(hash, buckets.Length);
        while (buckets[i] != wanted)
        {
            if (buckets[i] == 0)
            {
                throw new InvalidOperationException($"Index corrupted: user {userId} in slot {slot} is not indexed.");
            }

            i = Next(i, buckets.Length);
        }

        int mover = FirstMover(buckets, i);
        if (mover < 0)
        {
            // No later bucket of the run moves into this one, so no probe for another key passes it: emptying it needs no
            // warning, and the version's line stays in the readers' caches. At the index's full load (three quarters) about
            // one removal in four, by a simulation of its probing; more below it.
            Volatile.Write(ref buckets[i], 0u);
        }
        else
        {
            Interlocked.Increment(ref _writer.ShiftVersion); // odd: readers re-check a miss
            try
            {
                ShiftBack(buckets, i, mover);
            }
            finally
            {
                Volatile.Write(ref _writer.ShiftVersion, _writer.ShiftVersion + 1);
            }
        }

        _writer.Count--;
    }

    /// <summary>The first later bucket of <paramref name="hole"/>'s run that moves back when it empties
    /// (<see cref="ShiftBack"/>), or -1 when none does. Moves nothing.</summary>
    private int FirstMover(uint[] buckets, int hole)
    {
        for (int j = Next(hole, buckets.Length); buckets[j] is var b && b != 0; j = Next(j, buckets.Length))
        {
            if (!Stays(hole, HomeOf(j, b), j))
            {
                return j;
            }
        }

        return -1;
    }

    /// <summary>Empties bucket <paramref name="hole"/> and moves back every later bucket of its run that may live
    /// there (Knuth's algorithm R), so probes never need tombstones. The buckets before <paramref name="mover"/> (from
    /// <see cref="FirstMover"/>) stay, so the walk starts there.</summary>
    private void ShiftBack(uint[] buckets, int hole, int mover)
    {
        for (int j = mover; buckets[j] is var b && b != 0; j = Next(j, buckets.Length))
        {
            int home = HomeOf(j, b);
            if (!Stays(hole, home, j))
            {
                _distances[hole] = DistanceByte(home, hole);
                Volatile.Write(ref buckets[hole], b); // copy first, then clear: a reader sees it at least once
                hole = j;
            }
        }

        Volatile.Write(ref buckets[hole], 0u);
    }

    /// <summary>Whether the entry in bucket <paramref name="at"/>, whose key's home is <paramref name="home"/>, stays when
    /// <paramref name="hole"/> (earlier in its run) empties: when its home lies cyclically in (hole, at], since moving it
    /// before its home would hide it from its own probe.</summary>
    private static bool Stays(int hole, int home, int at) =>
        hole <= at ? (hole < home && home <= at) : (hole < home || home <= at);

    /// <summary>How far bucket <paramref name="at"/> is from <paramref name="home"/> along the probe direction, as stored:
    /// 255 for 255 or more.</summary>
    private byte DistanceByte(int home, int at)
    {
        int distance = at >= home ? at - home : at + _buckets.Length - home;
        return (byte)Math.Min(distance, byte.MaxValue);
    }

    /// <summary>The home of the key in bucket <paramref name="at"/> (holding <paramref name="bucket"/>): from its stored
    /// distance, or from its key when the distance did not fit a byte.</summary>
    private int HomeOf(int at, uint bucket)
    {
        int distance = _distances[at];
        if (distance == byte.MaxValue)
        {
            return Home(Hash(_keyOfSlot((int)(bucket & _slotMask) - 1), _seed), _buckets.Length);
        }

        int home = at - distance;
        return home < 0 ? home + _buckets.Length : home;
    }

    private uint Bucket(ulong hash, int slot) => ((uint)(hash >> _tagShift) << _slotBits) | (uint)(slot + 1);

    /// <summary>Maps the hash's low 32 bits onto [0, length) with a multiply (no power-of-two size needed); the tests place
    /// keys with it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Home(ulong hash, int length) => (int)(((ulong)(uint)hash * (ulong)(uint)length) >> 32);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Next(int i, int length) => ++i == length ? 0 : i;

    /// <summary>
    /// The two fields a writer changes, each on 128 bytes of its own (a line and the one the processor may fetch with it):
    /// every probe reads the fields declared above, so a count changed by every add and remove must not share their line,
    /// or each write would take it from every reader's cache. The version is read by every probe too, but changes only
    /// when a removal shifts buckets.
    /// </summary>
    [StructLayout(LayoutKind.Explicit, Size = 3 * Prefetch.PairBytes)]
    private struct WriterFields
    {
        [FieldOffset(Prefetch.PairBytes)]
        public int Count;

        [FieldOffset(2 * Prefetch.PairBytes)]
        public int ShiftVersion;
    }

    /// <summary>A lock-free walk along one key's probe run, yielding the slots whose bucket tag matches.</summary>
    public struct Probe
    {
        private readonly uint[] _buckets;
        private readonly uint _tag;
        private readonly int _slotBits;
        private readonly uint _slotMask;
        private int _position;
        private int _remaining;

        internal Probe(uint[] buckets, ulong hash, uint tag, int slotBits, uint slotMask)
        {
            _buckets = buckets;
            _tag = tag;
            _slotBits = slotBits;
            _slotMask = slotMask;
            _position = Home(hash, buckets.Length);
            _remaining = buckets.Length; // the table always has empty buckets; this only guards against a bug
        }

        /// <summary>Advances to the next candidate slot; <see langword="false"/> at the end of the run.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool MoveNext(out int slot)
        {
            var buckets = _buckets;
            while (_remaining-- > 0)
            {
                uint b = Volatile.Read(ref buckets[_position]);
                _position = Next(_position, buckets.Length);
                if (b == 0)
                {
                    break;
                }

                if (b >> _slotBits == _tag)
                {
                    slot = (int)(b & _slotMask) - 1;
                    return true;
                }
            }

            slot = -1;
            return false;
        }
    }
}
