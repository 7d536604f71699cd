using System.Buffers.Binary;
using System.Numerics;

namespace ERCache.Internal;

/// <summary>
/// Stand-in for <c>System.IO.Hashing.XxHash3.HashToUInt64</c> (the System.IO.Hashing package is not in this
/// machine's NuGet registry). It implements only what ERCache hashes: one 64-bit user id, i.e. XXH3-64 of an
/// 8-byte little-endian input (the algorithm's 4-to-8-byte path), with a seed. Checked against xxHash's published
/// sanity vectors in <c>XxHash3Tests</c>; swap in the package when it is available and the results are identical.
/// </summary>
internal static class XxHash3
{
    // Bytes 8..23 of XXH3's default secret, read as two little-endian 64-bit words.
    private const ulong Secret8 = 0x1cad21f72c81017cUL;
    private const ulong Secret16 = 0xdb979083e96dd4deUL;
    private const ulong RrmxmxMultiplier = 0x9FB21C651E98DF25UL;

    /// <summary>XXH3-64 of the 8 little-endian bytes of <paramref name="key"/> with <paramref name="seed"/>: the
    /// same value as <c>XxHash3.HashToUInt64(BitConverter.GetBytes(key), (long)seed)</c>.</summary>
    public static ulong HashInt64(long key, ulong seed = 0)
    {
        ulong k = (ulong)key;
        return Hash4To8((uint)k, (uint)(k >> 32), 8, seed);
    }

    /// <summary>XXH3-64 of a 4 to 8 byte input (exposed for the published test vectors, which use 4..8 bytes).</summary>
    internal static ulong Hash4To8(ReadOnlySpan<byte> input, ulong seed)
    {
        if (input.Length is < 4 or > 8)
        {
            throw new ArgumentOutOfRangeException(nameof(input), input.Length, "This stand-in hashes 4 to 8 bytes only.");
        }

        // XXH3 reads the first and the last four bytes (they overlap below 8 bytes).
        uint first = BinaryPrimitives.ReadUInt32LittleEndian(input);
        uint last = BinaryPrimitives.ReadUInt32LittleEndian(input[^4..]);
        return Hash4To8(first, last, (uint)input.Length, seed);
    }

    private static ulong Hash4To8(uint first, uint last, uint length, ulong seed)
    {
        seed ^= (ulong)BinaryPrimitives.ReverseEndianness((uint)seed) << 32;
        ulong bitflip = (Secret8 ^ Secret16) - seed;
        ulong input64 = last + ((ulong)first << 32);
        return Rrmxmx(input64 ^ bitflip, length);
    }

    private static ulong Rrmxmx(ulong h, uint length)
    {
        h ^= BitOperations.RotateLeft(h, 49) ^ BitOperations.RotateLeft(h, 24);
        h *= RrmxmxMultiplier;
        h ^= (h >> 35) + length;
        h *= RrmxmxMultiplier;
        return h ^ (h >> 28);
    }
}
