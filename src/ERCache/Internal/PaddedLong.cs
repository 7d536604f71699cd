using System.Runtime.InteropServices;

namespace ERCache.Internal;

/// <summary>
/// A <see cref="long"/> 64 bytes into 128: two of them side by side, in a class or an array, are 128 bytes apart, so never
/// on one cache line, nor on the pair of lines a processor may fetch together. For counters that different threads
/// change at once.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct PaddedLong
{
    [FieldOffset(64)]
    public long Value;
}
