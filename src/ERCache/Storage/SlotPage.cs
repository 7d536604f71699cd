using System.Runtime.CompilerServices;

namespace ERCache.Storage;

/// <summary>
/// A page of slots in one contiguous slab. Each slot is a 24-byte header followed by the row:
/// <c>[sequence:int32][unused:int32][key:int64][writtenAt:int64][row bytes]</c>, so a hit touches one
/// region of memory (the header and its row are adjacent) rather than several parallel arrays.
/// Pages are allocated lazily as a tier fills, so a large capacity costs memory only once it is used,
/// and a page is never reallocated, so lock-free readers can hold on to it.
/// </summary>
/// <remarks>
/// The sequence is a per-slot sequence lock: zero = never written, odd = a write is in progress, even = stable.
/// A reader copies a slot and accepts it only if the sequence was even and unchanged around the copy.
/// </remarks>
internal sealed class SlotPage
{
    /// <summary>Bytes of the header before each row (keeps the key and stamp 8-byte aligned).</summary>
    public const int HeaderBytes = 24;

    private readonly byte[] _slab;

    public SlotPage(int slots, int rowBytes)
    {
        RowBytes = rowBytes;
        Stride = HeaderBytes + ((rowBytes + 7) & ~7);
        _slab = new byte[checked(slots * Stride)]; // zeroed: every sequence starts at 0 (never written)
    }

    /// <summary>Bytes per row.</summary>
    public int RowBytes { get; }

    /// <summary>Bytes from one slot to the next.</summary>
    public int Stride { get; }

    /// <summary>Bytes the slab holds.</summary>
    public long SlabBytes => _slab.LongLength;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref int Sequence(int index) => ref Unsafe.As<byte, int>(ref _slab[index * Stride]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref long Key(int index) => ref Unsafe.As<byte, long>(ref _slab[(index * Stride) + 8]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref long WrittenAt(int index) => ref Unsafe.As<byte, long>(ref _slab[(index * Stride) + 16]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<byte> Row(int index) => _slab.AsSpan((index * Stride) + HeaderBytes, RowBytes);
}
