using System.Runtime.CompilerServices;

namespace ERCache.Storage;

/// <summary>
/// A page of slots in one contiguous slab. Each slot is a 20-byte header followed by the row:
/// <c>[sequence:int32][key:int64][writtenAt:int64][row bytes]</c>, so a hit touches one region of memory (the
/// header and its row are adjacent) rather than several parallel arrays. The key and stamp are 4-byte aligned
/// (x64 loads them unaligned at no cost; the sequence lock, not atomicity, makes them consistent).
/// Pages are allocated lazily as a tier fills, so a large capacity costs memory only once it is used,
/// and a page is never reallocated, so lock-free readers can hold on to it.
/// </summary>
/// <remarks>
/// The sequence is a per-slot sequence lock: zero = never written, odd = a write is in progress, even = stable.
/// A reader copies a slot and accepts it only if the sequence was even and unchanged around the copy.
/// </remarks>
internal sealed class SlotPage
{
    /// <summary>Bytes of the header before each row.</summary>
    public const int HeaderBytes = 20;

    private readonly byte[] _slab;

    public SlotPage(int slots, int rowBytes)
    {
        RowBytes = rowBytes;
        Stride = StrideOf(rowBytes);
        Slots = slots;
        _slab = new byte[checked(slots * Stride)]; // zeroed: every sequence starts at 0 (never written)
    }

    /// <summary>Bytes from one slot to the next for rows of <paramref name="rowBytes"/>: the header, then the row
    /// padded so the next header (and every row's floats) stay 4-byte aligned.</summary>
    public static int StrideOf(int rowBytes) => HeaderBytes + ((rowBytes + 3) & ~3);

    /// <summary>Slots in this page.</summary>
    public int Slots { get; }

    /// <summary>Bytes per row.</summary>
    public int RowBytes { get; }

    /// <summary>Bytes from one slot to the next.</summary>
    public int Stride { get; }

    /// <summary>Bytes the slab holds.</summary>
    public long SlabBytes => _slab.LongLength;

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
}
