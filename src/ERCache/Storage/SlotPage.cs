namespace ERCache.Storage;

/// <summary>
/// A page of slots: their keys, write stamps, sequence counters and one contiguous slab of row bytes.
/// Pages are allocated lazily as a tier fills, so a large capacity costs memory only once it is used,
/// and a page is never reallocated, so lock-free readers can hold on to it.
/// </summary>
internal sealed class SlotPage
{
    public SlotPage(int slots, int rowBytes)
    {
        Keys = new long[slots];
        WrittenAt = new long[slots];
        Sequence = new int[slots];
        Rows = GC.AllocateUninitializedArray<byte>(checked(slots * rowBytes));
        RowBytes = rowBytes;
    }

    /// <summary>User id held by each slot (valid only while its sequence is even and non-zero).</summary>
    public long[] Keys { get; }

    /// <summary><see cref="TimeProvider.GetTimestamp"/> value at which each slot's row was written.</summary>
    public long[] WrittenAt { get; }

    /// <summary>
    /// Per-slot sequence lock: zero = never written, odd = a write is in progress, even = stable.
    /// A reader copies a slot and accepts it only if the sequence was even and unchanged around the copy.
    /// </summary>
    public int[] Sequence { get; }

    /// <summary>The slab: row <c>i</c> is <c>Rows[i * RowBytes .. (i + 1) * RowBytes]</c>.</summary>
    public byte[] Rows { get; }

    /// <summary>Bytes per row.</summary>
    public int RowBytes { get; }

    public Span<byte> Row(int index) => Rows.AsSpan(index * RowBytes, RowBytes);
}
