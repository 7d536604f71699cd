using System.Runtime.CompilerServices;

namespace ERCache.Storage;

/// <summary>
/// A page of slots in one contiguous slab. Each slot is a 20-byte header followed by the row:
/// <c>[sequence:int32][key:int64][writtenAt:int64][row bytes]</c>, so a hit touches one region of memory (the
/// header and its row are adjacent) rather than several parallel arrays. The key and stamp are 4-byte aligned
/// (x64 loads them unaligned at no cost; the sequence lock, not atomicity, makes them consistent).
/// Pages are allocated lazily as a tier fills, so a large capacity costs memory only once it is used,
/// and a page is never reallocated, so lock-free readers can hold on to it. A page is a view over its slab: the tier
/// keeps the slabs themselves, so a hit goes from the index's bucket to the slab without loading a page object first.
/// </summary>
/// <remarks>
/// The sequence is a per-slot sequence lock: odd = a write is in progress, even = stable. A stable slot holds an entry
/// when its sequence is a non-zero multiple of 4; zero (never written) and 2 modulo 4 (emptied: removed, or a write
/// that failed) hold none. Every write moves the sequence forward, so a reader that copies a slot and finds the same
/// value after the copy has seen one stable state (a slot emptied and refilled never repeats a value a reader saw).
/// </remarks>
internal readonly struct SlotPage
{
    /// <summary>Bytes of the header before each row.</summary>
    public const int HeaderBytes = 20;

    private readonly byte[] _slab;

    /// <summary>A view over <paramref name="slab"/> (from <see cref="AllocateSlab"/> with the same
    /// <paramref name="rowBytes"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public SlotPage(byte[] slab, int rowBytes, int stride)
    {
        _slab = slab;
        RowBytes = rowBytes;
        Stride = stride;
    }

    /// <summary>A slab of <paramref name="slots"/> slots for rows of <paramref name="rowBytes"/>, zeroed: every sequence
    /// starts at 0 (never written). With <paramref name="hugePages"/>, a large slab asks for huge pages
    /// (<see cref="HugePages"/>); <paramref name="advisedBytes"/> says for how many of its bytes.</summary>
    public static byte[] AllocateSlab(int slots, int rowBytes, bool hugePages, out long advisedBytes) =>
        HugePages.Allocate<byte>(checked(slots * StrideOf(rowBytes)), hugePages, out advisedBytes);

    /// <summary>Bytes from one slot to the next for rows of <paramref name="rowBytes"/>: the header, then the row
    /// padded so the next header (and every row's floats) stay 4-byte aligned.</summary>
    public static int StrideOf(int rowBytes) => HeaderBytes + ((rowBytes + 3) & ~3);

    /// <summary>Bytes per row.</summary>
    public int RowBytes { get; }

    /// <summary>Bytes from one slot to the next.</summary>
    public int Stride { get; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref int Sequence(int index) => ref Unsafe.As<byte, int>(ref _slab[index * Stride]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long Key(int index) => Unsafe.ReadUnaligned<long>(ref _slab[(index * Stride) + 4]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long WrittenAt(int index) => Unsafe.ReadUnaligned<long>(ref _slab[(index * Stride) + 12]);

    /// <summary>Writes the key and stamp (inside the writer's odd sequence).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetHeader(int index, long key, long writtenAt)
    {
        Unsafe.WriteUnaligned(ref _slab[(index * Stride) + 4], key);
        Unsafe.WriteUnaligned(ref _slab[(index * Stride) + 12], writtenAt);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<byte> Row(int index) => _slab.AsSpan((index * Stride) + HeaderBytes, RowBytes);

    /// <summary>Starts loading the first <paramref name="lines"/> cache lines of slot <paramref name="index"/> (header
    /// and row) into the first-level cache; the hardware prefetcher follows the rest of the row as it is read.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchSlot(int index, int lines)
    {
        int start = index * Stride;
        for (int line = 0; line < lines; line++)
        {
            int offset = start + (line * Prefetch.LineBytes);
            if ((uint)offset < (uint)_slab.Length)
            {
                Prefetch.Line(ref _slab[offset]);
            }
        }
    }

    /// <summary>Starts loading every cache line of slot <paramref name="index"/> (header and row) into the second-level
    /// cache (<see cref="Prefetch.LineToSecondLevel"/>): a reader about to copy several rows from memory has all their
    /// lines in flight at once instead of the hardware prefetcher's few lines ahead of each copy.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchWholeSlot(int index)
    {
        int start = index * Stride;
        int last = Math.Min(start + Stride, _slab.Length) - 1; // a slot need not start on a line: its last byte's line too
        for (int offset = start; offset < last; offset += Prefetch.LineBytes)
        {
            Prefetch.LineToSecondLevel(ref _slab[offset]);
        }

        if (last >= start)
        {
            Prefetch.LineToSecondLevel(ref _slab[last]);
        }
    }

    /// <summary>Whether an entry written at <paramref name="writtenAt"/> is younger than <paramref name="ttl"/> at
    /// <paramref name="now"/> (its age clamped at zero, should a clock ever step back).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsFresh(long now, long writtenAt, long ttl) => Math.Max(0, now - writtenAt) < ttl;

    /// <summary>
    /// The reader's side of the sequence lock: copies slot <paramref name="index"/> into <paramref name="destination"/>
    /// when it holds <paramref name="userId"/> younger than <paramref name="ttl"/>, and accepts the copy only when the
    /// sequence was even before it and unchanged after it. Spins while a writer holds the slot (one row copy).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public SlotRead Read<TCodec>(int index, long userId, long now, long ttl, Span<float> destination, out long writtenAt)
        where TCodec : struct, IRowCodec
    {
        ref int sequence = ref Sequence(index);
        var spin = default(SpinWait);
        while (true)
        {
            int before = Volatile.Read(ref sequence);
            if ((before & 1) == 0)
            {
                long key = Key(index);
                long written = WrittenAt(index);
                bool mine = HoldsEntry(before) && key == userId;
                bool fresh = mine && IsFresh(now, written, ttl);
                if (fresh)
                {
                    TCodec.Decode(Row(index), destination);
                }

                // Every load above completes before the sequence is read again (a compiler-only fence on x86/x64).
                Volatile.ReadBarrier();
                if (Volatile.Read(ref sequence) == before)
                {
                    writtenAt = written;
                    return fresh ? SlotRead.Hit : mine ? SlotRead.Expired : SlotRead.OtherKey;
                }
            }

            spin.SpinOnce(); // a writer holds the slot; it finishes one row copy and releases
        }
    }

    /// <summary>The header of slot <paramref name="index"/> under the sequence lock, without its row: whether it holds
    /// <paramref name="userId"/>, and when that entry was written.</summary>
    public bool TryReadStamp(int index, long userId, out long writtenAt) =>
        TryCopy(index, out long key, out writtenAt, []) && key == userId;

    /// <summary>Whatever slot <paramref name="index"/> holds, under the sequence lock: its key, write time and (when
    /// <paramref name="row"/> is not empty) its encoded row. False when the slot holds no entry.</summary>
    public bool TryCopy(int index, out long key, out long writtenAt, Span<byte> row)
    {
        ref int sequence = ref Sequence(index);
        var spin = default(SpinWait);
        while (true)
        {
            int before = Volatile.Read(ref sequence);
            if ((before & 1) == 0)
            {
                key = Key(index);
                writtenAt = WrittenAt(index);
                bool holds = HoldsEntry(before);
                if (holds && !row.IsEmpty)
                {
                    Row(index).CopyTo(row);
                }

                Volatile.ReadBarrier();
                if (Volatile.Read(ref sequence) == before)
                {
                    return holds;
                }
            }

            spin.SpinOnce();
        }
    }

    /// <summary>The writer's side (under the tier's lock): marks the slot odd, writes header and row, marks it even.
    /// A write that throws leaves the slot empty (sequence 0), never half written.</summary>
    public void Write<TCodec>(int index, long userId, ReadOnlySpan<float> vector, long writtenAt)
        where TCodec : struct, IRowCodec
    {
        ref int sequence = ref Sequence(index);
        int current = sequence;

        // Odd = write in progress. Interlocked makes the odd value visible before any byte of the row changes.
        Interlocked.Exchange(ref sequence, current + 1);
        try
        {
            SetHeader(index, userId, writtenAt);
            TCodec.Encode(vector, Row(index));
        }
        catch
        {
            Volatile.Write(ref sequence, Emptied(current)); // a half-written row must read as empty, never spin readers forever
            throw;
        }

        Volatile.Write(ref sequence, Filled(current)); // release: the row is visible before the even value
    }

    /// <summary>Empties a slot (under the tier's lock): a reader that copied it before sees the sequence move and
    /// retries, then finds no entry.</summary>
    public void Clear(int index)
    {
        ref int sequence = ref Sequence(index);
        Volatile.Write(ref sequence, Emptied(sequence));
    }

    /// <summary>Whether a stable sequence value means the slot holds an entry.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool HoldsEntry(int sequence) => sequence != 0 && (sequence & 3) == 0;

    /// <summary>The next "holds an entry" value after <paramref name="current"/>: the next non-zero multiple of 4.</summary>
    private static int Filled(int current)
    {
        int next = unchecked((current | 3) + 1);
        return next == 0 ? 4 : next;
    }

    /// <summary>The next "empty" value after <paramref name="current"/> (2 modulo 4, never zero).</summary>
    private static int Emptied(int current) => unchecked(Filled(current) + 2);
}

/// <summary>What a sequence-locked read of a slot found.</summary>
internal enum SlotRead
{
    /// <summary>The slot holds another user (or nothing).</summary>
    OtherKey,

    /// <summary>The slot holds the user, too old.</summary>
    Expired,

    /// <summary>The slot holds the user, fresh; the row was copied.</summary>
    Hit,
}
