using ERCache.Internal;

namespace ERCache.Tests;

/// <summary>The System.IO.Hashing stand-in against xxHash's published XXH3-64 sanity vectors (xsum_sanity_check.c:
/// the input is the generated sanity buffer; the 4..8-byte entries below are the ones the stand-in implements).</summary>
public sealed class XxHash3Tests
{
    private const ulong Prime32 = 2654435761UL;
    private const ulong Prime64 = 11400714785074694797UL;
    private const ulong Seed = 0x9E3779B185EBCA8DUL; // the PRIME64 seed of the published table

    private static byte[] SanityBuffer(int length)
    {
        var buffer = new byte[length];
        ulong generator = Prime32;
        for (int i = 0; i < length; i++)
        {
            buffer[i] = (byte)(generator >> 56);
            generator *= Prime64;
        }

        return buffer;
    }

    [Fact]
    public void The_sanity_buffer_starts_as_published() =>
        Assert.Equal(new byte[] { 0x00, 0x52, 0x92, 0x9b, 0xb7, 0x32, 0xa3, 0x24 }, SanityBuffer(8));

    [Theory]
    [InlineData(4, 0UL, 0xE5DC74BC51848A51UL)]
    [InlineData(4, Seed, 0xAA2E7ECCB0C8F747UL)]
    [InlineData(5, 0UL, 0xE4243F00720306BBUL)]
    [InlineData(5, Seed, 0x5A67C87E50ED80EDUL)]
    [InlineData(6, 0UL, 0x27B56A84CD2D7325UL)]
    [InlineData(6, Seed, 0x84589C116AB59AB9UL)]
    [InlineData(7, 0UL, 0x9941E0007F555E50UL)]
    [InlineData(7, Seed, 0x75BDAB43463F0151UL)]
    [InlineData(8, 0UL, 0x24CCC9ACAA9F65E4UL)]
    [InlineData(8, Seed, 0x8F973410999B8F6BUL)]
    public void Matches_the_published_vectors(int length, ulong seed, ulong expected) =>
        Assert.Equal(expected, XxHash3.Hash4To8(SanityBuffer(length), seed));

    [Fact]
    public void A_64_bit_key_hashes_as_its_8_little_endian_bytes()
    {
        var rng = new Random(7);
        for (int i = 0; i < 1000; i++)
        {
            long key = rng.NextInt64(long.MinValue, long.MaxValue);
            ulong seed = (ulong)rng.NextInt64();
            Assert.Equal(XxHash3.Hash4To8(BitConverter.GetBytes(key), seed), XxHash3.HashInt64(key, seed));
        }

        Assert.Equal(0x24CCC9ACAA9F65E4UL, XxHash3.HashInt64(BitConverter.ToInt64(SanityBuffer(8)), 0));
    }

    [Fact]
    public void Other_lengths_are_refused_rather_than_hashed_wrongly()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => XxHash3.Hash4To8(new byte[3], 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => XxHash3.Hash4To8(new byte[9], 0));
    }
}
